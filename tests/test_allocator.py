"""The allocator setting the command line uses: explanations in a row fault their
temporaries in again without it, and reuse them with it (measured in fresh processes,
so this test process keeps its own allocator)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import RETINA, ROOT

SCRIPT = """
import json, resource, sys
import core
from core.allocator import keep_large_blocks
applied = keep_large_blocks() if sys.argv[1] == "keep" else False
model = core.load_weights("idrid")
fundus = core.read_fundus(sys.argv[2])
core.explain(model, fundus).materialise()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    core.explain(model, fundus).materialise()
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(RETINA)], capture_output=True, text=True, cwd=ROOT,
                         timeout=300, check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_blocks_kept_cut_the_page_faults():
    plain, kept = _faults("plain"), _faults("keep")
    assert kept["applied"] and not plain["applied"]
    assert kept["faults"] < plain["faults"] / 4, (plain, kept)

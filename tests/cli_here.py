"""``python -m core ...`` run inside the test process: the same ``core.cli.main``, its exit
status and what it printed, without a fresh interpreter's 3.5 s of importing torch.

The entry point itself (``python -m core`` in a new process) keeps its own tests in
tests/cli/test_cli.py; everything else about a command's contract is checked here.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path


@contextlib.contextmanager
def _environment(changes: Mapping[str, str]):
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_cli_here(*args: object, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Like ``subprocess.run([python, -m, core, *args], capture_output=True, text=True)``."""
    from core.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    with (_environment(env or {}), contextlib.chdir(cwd or Path.cwd()), contextlib.redirect_stdout(out),
          contextlib.redirect_stderr(err)):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse: usage errors exit 2
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(["python", "-m", "core", *argv], code, out.getvalue(), err.getvalue())

"""Shared fixtures: the published weights (from ../shared/weights beside the project,
or $DR_WEIGHTS_DIR) and the real CC0 fundus photograph in tests/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
RETINA = DATA / "retina.jpg"
PAPER_FILE = "paper-eyepacs-qwk0814.pth.tar"

# The shared copy that developers and CI have beside the project.
if not os.environ.get("DR_WEIGHTS_DIR") and (ROOT.parent / "shared" / "weights" / PAPER_FILE).is_file():
    os.environ["DR_WEIGHTS_DIR"] = str(ROOT.parent / "shared" / "weights")

torch.set_num_threads(min(2, os.cpu_count() or 1))


def paper_weights_present() -> bool:
    d = os.environ.get("DR_WEIGHTS_DIR")
    return bool(d) and (Path(d) / PAPER_FILE).is_file()


def require_paper() -> None:
    """Skip without the published weights, as on a user's machine; fail in CI."""
    if paper_weights_present():
        return
    if os.environ.get("DR_REQUIRE_PAPER_WEIGHTS") == "1":
        pytest.fail("the published weights are required (DR_REQUIRE_PAPER_WEIGHTS=1) but were not found")
    pytest.skip("published weights not found (set DR_WEIGHTS_DIR)")


# The real photographs (IDRiD training splits, CC BY 4.0) beside the project: ../shared/data.
REAL_DATA = ROOT.parent / "shared" / "data"


def require_real_data() -> Path:
    """The shared IDRiD folder; skip without it on a user's machine, fail in CI."""
    if (REAL_DATA / "idrid-grading-train" / "Training_Labels.csv").is_file():
        return REAL_DATA
    if os.environ.get("DR_REQUIRE_PAPER_WEIGHTS") == "1":
        pytest.fail(f"the shared real photographs are required in CI but {REAL_DATA.name}/ was not found")
    pytest.skip("the shared real photographs (../shared/data) are not here")


@pytest.fixture(scope="session")
def paper_model():
    require_paper()
    import core

    return core.load_weights("paper")


@pytest.fixture(scope="session")
def retina_fundus():
    import core

    return core.read_fundus(RETINA, name=RETINA.name)


@pytest.fixture(scope="session")
def paper_explanation(paper_model, retina_fundus):
    import core

    return core.explain(paper_model, retina_fundus)


def pytest_configure(config):
    """The test process explains hundreds of photographs: keep glibc's large blocks, as
    ``python -m core`` does (core/allocator.py), instead of faulting them in again each time.
    Tests that measure the allocator run their own fresh processes."""
    if os.environ.get("DR_TEST_PLAIN_ALLOCATOR") != "1":
        from core.allocator import keep_large_blocks

        keep_large_blocks()

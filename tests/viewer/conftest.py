"""Shared helpers for the viewer's tests: where the published weights are, the real photograph.

The published weights are never part of the project: they are found through
``$DR_WEIGHTS_DIR`` or, as a fallback for developers and CI, in ``shared/weights``
beside the repository. Without them the tests that need them are skipped, unless
``DR_REQUIRE_PAPER_WEIGHTS=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "viewer" / "app.py"
RETINA = REPO / "tests" / "data" / "retina.jpg"
PAPER_FILE = "paper-eyepacs-qwk0814.pth.tar"
ENV = "DR_WEIGHTS_DIR"


def weights_dir() -> Path:
    """$DR_WEIGHTS_DIR, else the shared copy beside the repository."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    return (REPO / ".." / "shared" / "weights").resolve()


def require_paper_weights() -> Path:
    """The folder holding the published weights; skip (or fail in CI) when there is none."""
    d = weights_dir()
    if (d / PAPER_FILE).is_file():
        return d
    from core import weights as cw

    if (cw.cache_dir() / PAPER_FILE).is_file():  # downloaded earlier by the page or the CLI
        return cw.cache_dir()
    if os.environ.get("DR_REQUIRE_PAPER_WEIGHTS") == "1":
        pytest.fail(f"the published weights are required (DR_REQUIRE_PAPER_WEIGHTS=1) but {PAPER_FILE} is not in {ENV}")
    pytest.skip(f"published weights not found (set {ENV} to a folder holding {PAPER_FILE})")


@pytest.fixture(scope="session")
def paper_weights_dir():
    """Makes the published weights visible to the page (in this process) for the session."""
    d = require_paper_weights()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, str(d))
        yield d


@pytest.fixture(scope="session")
def retina_bytes() -> bytes:
    return RETINA.read_bytes()


@pytest.fixture(scope="session")
def core_result(paper_weights_dir, retina_bytes):
    """What core says about the photograph: the numbers the page must show."""
    import core

    model = core.load_weights("paper")
    return core.explain(model, core.read_fundus(retina_bytes, name=RETINA.name))

"""Shared helpers for the viewer's tests: which model the page uses, the real photograph.

The page picks its model itself (``core.default_name()``): the published weights when they
are on the machine, otherwise the bundled ``idrid`` model. The page tests take the fixture
``page_model``, parametrized over both:

- ``idrid``: no published weights anywhere the page looks (an empty ``$DR_WEIGHTS_DIR`` and an
  empty cache), as on a fresh clone; it always runs;
- ``paper`` (marked ``paper``): the published weights, found through ``$DR_WEIGHTS_DIR`` or,
  as a fallback for developers and CI, in ``shared/weights`` beside the repository. They are
  never part of the project; without them this variant is skipped, unless
  ``DR_REQUIRE_PAPER_WEIGHTS=1`` (CI), where it fails.
"""

from __future__ import annotations

import functools
import os

import pytest

from tests.viewer.page_models import ENV, PAPER_FILE, REPO, PageModel, find_paper_weights, model_env

APP = REPO / "viewer" / "app.py"
RETINA = REPO / "tests" / "data" / "retina.jpg"


def require_paper_weights():
    """The folder holding the published weights; skip (or fail in CI) when there is none."""
    d = find_paper_weights()
    if d is not None:
        return d
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


# ----------------------------------------------------------------------------- the page's model

MODELS = (pytest.param("idrid", id="idrid"), pytest.param("paper", id="paper", marks=pytest.mark.paper))


@pytest.fixture(params=MODELS)
def page_model(request, monkeypatch, tmp_path_factory) -> PageModel:
    """The page's model, "idrid" (always) and "paper" (where the published weights are).

    Sets its environment in this process (AppTest runs the page here) for the test only.
    A test for one of them only says ``@pytest.mark.parametrize("page_model", [...], indirect=True)``.
    """
    import core

    name = request.param
    paper_dir = require_paper_weights() if name == "paper" else None
    model = PageModel(name, model_env(name, tmp_path_factory.mktemp(f"{name}-env"), paper_dir))
    for key, value in model.env.items():
        monkeypatch.setenv(key, value)
    assert core.default_name() == model.name, f"with {model.env} the page would use {core.default_name()!r}"
    return model


@functools.cache
def explained(name: str, data: bytes):
    """core's Explanation of ``data`` with the weights ``name`` (made once per session)."""
    import core

    return core.explain(core.load_weights(name), core.read_fundus(data, name=RETINA.name))


@pytest.fixture
def core_result(page_model, retina_bytes):
    """What core says about the photograph with the page's model: the numbers the page must show."""
    return explained(page_model.name, retina_bytes)

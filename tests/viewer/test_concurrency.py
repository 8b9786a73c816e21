"""Issue 6, several clinicians at once.

How the viewer shares work between sessions (viewer/state.py):

- the model is loaded once per process (``st.cache_resource``) and used for inference only:
  ``core.explain`` reads its weights and writes nothing to it (no hooks, no buffers, no
  gradients, eval mode and ``requires_grad=False`` set once at load), so sessions share it
  without a lock;
- each session's Explanation and pictures live in its own ``st.session_state``: nothing
  per image or per patient is module-level or cached across sessions;
- a process-wide semaphore (``EXPLAIN_SLOTS``) lets at most ``MAX_CONCURRENT``
  explanations run at once, so many users at once queue instead of exhausting memory.

The tests check each point: threads explaining different images on one model give the
sequential results and leave every parameter and buffer untouched (values and version
counters); two AppTest sessions keep their own results; and three browser contexts on one
server (more than the explanation slots: one on 2 cores) upload different photographs at the same moment
and each sees its own scores. Both use the bundled model: sharing and isolation are the same
page code for any weights (the published weights' page path is test_browser's smoke test;
eight users with them: ``python -m tests.viewer.users_bench``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sys
import threading

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import core
from core.weights import save_checkpoint
from tests.direct_propagation import random_network
from tests.viewer.clinicians import all_at_once, eight_photographs
from tests.viewer.live_server import REPO, chromium_path, peak_rss_mb, serve
from tests.viewer.page_models import BANNER
from viewer import render

APP = REPO / "viewer" / "app.py"
RETINA = REPO / "tests" / "data" / "retina.jpg"
CLINICIANS = {"idrid": 3, "paper": 2}  # browser contexts at once, per model (more than the explanation slots)


fmt = render.fmt_score  # the page's formatter, pinned in test_pieces.py


# ----------------------------------------------------------------------------- the model is shared read-only


def _fingerprint(model: torch.nn.Module) -> dict[str, tuple[int, torch.Tensor]]:
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    return {name: (t._version, t.detach().clone()) for name, t in tensors}


def _module_state(model: torch.nn.Module) -> list[tuple]:
    return [(name, m.training, sorted(vars(m)), len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for name, m in model.named_modules()]


def test_threads_share_one_model_without_changing_it(tmp_path):
    """Explanations of different images from four threads at once equal the sequential ones,
    and the shared model is bit-for-bit and version-for-version what it was."""
    path = tmp_path / "narrow.pt"
    save_checkpoint(path, random_network((3,) * 15, seed=5).float(), {"title": "narrow random network"})
    model = core.load_weights(path)
    rng = np.random.default_rng(0)
    images = [core.read_fundus(RETINA)]
    images += [core.Fundus(image=rng.integers(0, 256, (640, 640, 3), dtype=np.uint8), fov=np.ones((640, 640), bool),
                           crop_box=(0, 0, 640, 640), original_size=(640, 640)) for _ in range(3)]
    before, state = _fingerprint(model.network), _module_state(model.network)

    def summary(exp: core.Explanation) -> list[np.ndarray]:
        return [exp.scores, exp.input_map, exp.layer(8).input_dependent, exp.in_input_space(12, "constant")]

    sequential = [summary(core.explain(model, f)) for f in images]
    results: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(images))

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = summary(core.explain(model, images[i]))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for i, expected in enumerate(sequential):
        for a, b in zip(results[i], expected, strict=True):
            np.testing.assert_array_equal(a, b)
    after = _fingerprint(model.network)
    assert before.keys() == after.keys()
    for name, (version, value) in before.items():
        assert after[name][0] == version, f"{name} was modified in place"
        assert torch.equal(after[name][1], value), name
    assert _module_state(model.network) == state  # no mode change, no new attributes, no hooks
    assert not any(p.requires_grad for p in model.network.parameters())


def _module_containers(modules) -> dict[str, str]:
    """repr of every module-level dict, list and set of the given modules (shared mutable state)."""
    out = {}
    for mod in modules:
        for name, value in vars(mod).items():
            if isinstance(value, (dict, list, set)) and not name.startswith("__"):
                out[f"{mod.__name__}.{name}"] = repr(value)
    return out


@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # session isolation is the same code for any weights
def test_two_sessions_keep_their_own_results(page_model):
    """Two sessions of one process (one cached model): each keeps its own image's scores."""
    import core.explanation
    import core.fundus
    import core.propagation
    import core.transport
    import core.weights
    from viewer import controls, pictures, render, state

    modules = [controls, pictures, render, state, core.explanation, core.fundus, core.propagation, core.transport, core.weights]
    photos = eight_photographs()
    names = ["original.jpg", "rotated.jpg"]
    model = core.load_weights(page_model.name)
    expected = {n: [fmt(float(s)) for s in core.explain(model, core.read_fundus(photos[n][0])).scores] for n in names}
    assert expected[names[0]] != expected[names[1]]
    before = _module_containers(modules)
    sessions = [AppTest.from_file(str(APP), default_timeout=180) for _ in names]
    for at in sessions:
        at.run()
    for at, n in zip(sessions, names, strict=True):
        at.file_uploader(key="upload").set_value((n, photos[n][0], photos[n][1]))
        at.run()
    for at, n in zip(sessions, names, strict=True):  # after the other session's upload, once more
        at.run()
        assert not at.exception
        assert [e.value for e in at.error if BANNER not in e.value] == []
        assert len(at.error) == (1 if page_model.bundled else 0)  # the bundled model's banner
        table = next(m.value for m in at.markdown if m.value.startswith("| Grade | Score |"))
        shown = [re.sub(r"\*", "", line.split("|")[2]).strip() for line in table.splitlines()[2:]]
        assert shown == expected[n], n
        assert any(f"{n} · original" in c for img in at.image for c in img.captions)
    assert _module_containers(modules) == before


# ----------------------------------------------------------------------------- several clinicians, one server


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("page_model", ["idrid"], indirect=True)  # the published weights' page path: test_browser's smoke
def test_clinicians_at_once(page_model, tmp_path):
    """Three at once (more than the two explanations that may run together), with the bundled model."""
    chromium = chromium_path()
    photos = eight_photographs()
    assert len(photos) == 8
    users = CLINICIANS[page_model.name]
    photos = dict(itertools.islice(photos.items(), users))
    env = dict(os.environ, **page_model.env)
    with serve(env, tmp_path / "server.log") as (proc, port):
        # core's numbers for each photograph, computed while the server warms up
        model = core.load_weights(page_model.name)
        expected = {}
        for name, (data, _) in photos.items():
            exp = core.explain(model, core.read_fundus(data, name=name))
            expected[name] = (exp.grade, [fmt(float(s)) for s in exp.scores], exp.fundus.original_size)
        assert len({tuple(v[1]) for v in expected.values()}) == users, "the inputs must have different scores"
        rss_idle, _ = peak_rss_mb(proc.pid)
        results, total = asyncio.run(all_at_once(chromium, f"http://127.0.0.1:{port}/", photos))
        rss_now, peak = peak_rss_mb(proc.pid)
    log = (tmp_path / "server.log").read_text(errors="replace")
    print(f"CONCURRENCY model={page_model.name} users={users} total_s={total:.1f} slowest_s={max(r['done_s'] for r in results):.1f} "
          f"fastest_s={min(r['done_s'] for r in results):.1f} upload_spread_s={max(r['uploaded_s'] for r in results):.2f} "
          f"server_rss_idle_mb={rss_idle:.0f} server_rss_after_mb={rss_now:.0f} server_peak_rss_mb={peak:.0f} "
          f"cpus={os.cpu_count()} python={sys.version.split()[0]}")
    for r in results:
        grade, scores, (w, h) = expected[r["name"]]
        assert r["exceptions"] == 0 and "Traceback" not in r["body"] and "cannot be graded" not in r["body"], r["name"]
        for g, cells in enumerate(r["rows"]):
            assert cells[0] == f"{g} · {core.GRADE_NAMES[g]}"
            assert cells[1] == scores[g], (r["name"], g, cells, scores)
        assert f"The model's grade: {grade} · {core.GRADE_NAMES[grade]}" in r["body"], r["name"]
        assert f"{r['name']} · original {w}×{h} px" in r["body"], r["name"]  # its own file, no one else's
    assert "Traceback" not in log, log[-3000:]

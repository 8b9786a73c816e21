"""The weights registry: metadata as data, sha256 checks, safe and strict loading."""

import dataclasses
import os
import re
from pathlib import Path

import pytest
import torch

from core import weights as W
from core.model import DRNet, count_parameters

REQUIRED_META = W.REQUIRED_META


@pytest.mark.parametrize("entry", list(W.REGISTRY.values()), ids=lambda e: e.name)
def test_every_entry_has_a_card(entry):
    assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    assert set(entry.meta) >= REQUIRED_META
    assert len(entry.normalisation.mean) == 3 and all(s > 0 for s in entry.normalisation.std)
    assert entry.url or entry.bundled
    widths = entry.meta.get("widths")
    assert count_parameters(DRNet(widths)) == entry.meta["num_params"]


def test_register_refuses_an_incomplete_card():
    good = W.REGISTRY["demo"]
    for bad, words in [
        (dataclasses.replace(good, name="x", meta={"title": "x"}), "meta lacks"),
        (dataclasses.replace(good, name="x", sha256="730173b0"), "sha256 must be 64"),
        (dataclasses.replace(good, name="x", bundled=None, url=None), "download address"),
        (dataclasses.replace(good, name="x", meta={**good.meta, "evaluations": [{"quadratic_weighted_kappa": 0.9}]}),
         "figures with their data"),  # a figure without its data
    ]:
        with pytest.raises(W.WeightsError, match=words):
            W.register(bad)
        assert "x" not in W.REGISTRY


def test_paper_entry_is_the_published_file():
    e = W.REGISTRY["paper"]
    assert e.sha256 == "730173b044540b24c3c7c150248f624a728de2c6167d0baed1e46ffb49b9a206"
    assert e.meta["metrics"]["validation_quadratic_weighted_kappa"] == 0.814
    assert e.meta["metrics"]["test_quadratic_weighted_kappa"] == 0.801
    assert [(ev["n"], ev["real"]) for ev in e.meta["evaluations"]] == [(413, True), (10_000, True)]
    assert e.normalisation.mean == (0.485, 0.456, 0.406)


@pytest.fixture
def tiny_checkpoint(tmp_path):
    model = DRNet((2,) * 15)
    path = tmp_path / "tiny.pt"
    W.save_checkpoint(path, model, {"title": "tiny", "synthetic": True})
    return path, model


def test_own_checkpoint_round_trip(tiny_checkpoint):
    path, model = tiny_checkpoint
    lm = W.load_weights(path)
    assert lm.network.widths == (2,) * 15 and lm.is_synthetic
    assert lm.sha256 == W.sha256_of(path)
    for k, v in model.state_dict().items():
        assert torch.equal(lm.network.state_dict()[k], v)
    assert not any(p.requires_grad for p in lm.network.parameters()) and not lm.network.training


def test_tampered_registry_file_is_refused(tmp_path, monkeypatch, tiny_checkpoint):
    path, _ = tiny_checkpoint
    entry = W.WeightsEntry(name="t", filename="t.pt", sha256=W.sha256_of(path), normalisation=W.IMAGENET, meta={})
    monkeypatch.setitem(W.REGISTRY, "t", entry)
    monkeypatch.setenv(W.ENV_DIR, str(tmp_path))
    data = bytearray(path.read_bytes())
    (tmp_path / "t.pt").write_bytes(bytes(data))
    assert W.load_weights("t").network.widths == (2,) * 15
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "t.pt").write_bytes(bytes(data))
    with pytest.raises(W.WeightsError, match="fails its sha256 check"):
        W.load_weights("t")
    assert not W.is_available("t") and W.locate(entry) is None


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = _Payload()
    payload.target = marker
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "x": payload}, path)
    with pytest.raises(W.WeightsError, match="refused"):
        W.load_weights(path)
    assert not marker.exists()


def test_wrong_shapes_missing_keys_and_truncation_are_refused(tmp_path, tiny_checkpoint):
    path, model = tiny_checkpoint
    sd = model.state_dict()
    bad = dict(sd)
    bad["output.0.weight"] = torch.zeros(3, 2)
    torch.save({"state_dict": bad}, tmp_path / "shape.pt")
    with pytest.raises(W.WeightsError, match="does not match"):
        W.load_weights(tmp_path / "shape.pt")
    missing = {k: v for k, v in sd.items() if not k.startswith("output")}
    torch.save({"state_dict": missing}, tmp_path / "missing.pt")
    with pytest.raises(W.WeightsError, match="does not match"):
        W.load_weights(tmp_path / "missing.pt")
    (tmp_path / "trunc.pt").write_bytes(path.read_bytes()[:500])
    with pytest.raises(W.WeightsError, match="unreadable"):
        W.load_weights(tmp_path / "trunc.pt")
    with pytest.raises(W.WeightsError, match="no such file"):
        W.load_weights(tmp_path / "absent.pt")


def test_fetch_downloads_verifies_and_caches(tmp_path, monkeypatch, tiny_checkpoint):
    path, _ = tiny_checkpoint
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(W.ENV_DIR, raising=False)
    entry = W.WeightsEntry(name="f", filename="f.pt", sha256=W.sha256_of(path), normalisation=W.IMAGENET,
                           url=path.as_uri(), meta={})
    monkeypatch.setitem(W.REGISTRY, "f", entry)
    seen = []
    got = W.fetch("f", progress=lambda done, total: seen.append(done))
    assert got == tmp_path / "cache" / "dr-grader" / "weights" / "f.pt"
    assert got.read_bytes() == path.read_bytes() and seen[-1] == path.stat().st_size
    # a corrupted download never lands in the cache
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"x" * 100)
    monkeypatch.setitem(W.REGISTRY, "g", W.WeightsEntry(name="g", filename="g.pt", sha256=entry.sha256,
                                                       normalisation=W.IMAGENET, url=bad.as_uri(), meta={}))
    with pytest.raises(W.WeightsError, match="sha256"):
        W.fetch("g")
    assert sorted(p.name for p in got.parent.iterdir()) == ["f.pt"]


def test_fetch_offline_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(W.ENV_DIR, raising=False)
    monkeypatch.setitem(W.REGISTRY, "o", W.WeightsEntry(name="o", filename="o.pt", sha256="0" * 64, normalisation=W.IMAGENET,
                                                       url="http://127.0.0.1:9/o.pt", meta={}))
    with pytest.raises(W.WeightsError) as err:
        W.fetch("o", timeout=5)
    assert "cannot download" in str(err.value) and "\n" not in str(err.value)
    assert not any(Path(tmp_path).rglob("*.pt"))


def test_paper_weights_load_strictly(paper_model):
    assert paper_model.name == "paper" and paper_model.sha256 == W.PAPER.sha256
    assert paper_model.meta["num_params"] == 385_877
    assert not paper_model.is_synthetic


def _with_contents(path, tmp_path, name, **changes):
    ckpt = torch.load(path, weights_only=True)
    ckpt.update(changes)
    out = tmp_path / name
    torch.save(ckpt, out)
    return out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"normalisation": {"std": [0.2, 0.2, 0.2]}}, "normalisation must have a mean and a std"),
        ({"normalisation": {"mean": [0.5], "std": [0.2, 0.2, 0.2]}}, "mean must be 3 numbers"),
        ({"normalisation": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.0, 0.2]}}, "std must be finite and positive"),
        ({"normalisation": [0.5, 0.5, 0.5]}, "normalisation must have a mean and a std"),
        ({"widths": 7}, "widths must be 15 positive channel counts"),
        ({"widths": [2] * 14}, "widths must be 15 positive channel counts"),
        ({"meta": ["a", "list"]}, "meta must be a mapping"),
        ({"state_dict": [1, 2, 3]}, "state_dict must map parameter names to tensors"),
        ({"state_dict": {}}, "state_dict must map parameter names to tensors"),
    ],
)
def test_checkpoints_with_bad_contents_are_refused_in_one_line(tmp_path, tiny_checkpoint, changes, message):
    bad = _with_contents(tiny_checkpoint[0], tmp_path, "bad.pt", **changes)
    with pytest.raises(W.WeightsError, match=message) as err:
        W.load_weights(bad)
    assert "\n" not in str(err.value)


def test_weights_verify_of_a_bad_checkpoint_prints_one_line(tmp_path, tiny_checkpoint, capsys):
    from core.cli import main

    for i, changes in enumerate(({"normalisation": {"std": [1, 1, 1]}}, {"widths": 7}, {"meta": []}, {"state_dict": []})):
        bad = _with_contents(tiny_checkpoint[0], tmp_path, f"bad{i}.pt", **changes)
        assert main(["weights", "verify", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def _cached_entry(tmp_path, monkeypatch, source):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(W.ENV_DIR, raising=False)
    entry = W.WeightsEntry(name="c", filename="c.pt", sha256=W.sha256_of(source), normalisation=W.IMAGENET,
                           url=source.as_uri(), meta={})
    monkeypatch.setitem(W.REGISTRY, "c", entry)
    cached = tmp_path / "cache" / "dr-grader" / "weights" / "c.pt"
    cached.parent.mkdir(parents=True)
    return entry, cached


def test_a_corrupt_cached_copy_is_not_available_and_fetch_replaces_it(tmp_path, monkeypatch, tiny_checkpoint):
    path, _ = tiny_checkpoint
    entry, cached = _cached_entry(tmp_path, monkeypatch, path)
    cached.write_bytes(path.read_bytes()[:1000])  # truncated
    assert not W.is_available("c") and W.locate(entry) is None
    monkeypatch.setattr(W, "DEFAULT", entry)
    assert W.default_name() == "idrid"  # the bundled model, not the broken preferred entry
    with pytest.raises(W.WeightsError, match="fails its sha256 check.*fetch c"):
        W.load_weights("c")
    assert W.fetch("c") == cached
    assert cached.read_bytes() == path.read_bytes() and W.is_available("c") and W.default_name() == "c"
    assert sorted(p.name for p in cached.parent.iterdir()) == ["c.pt"]  # no partial file left behind


def test_a_failed_download_leaks_no_file_descriptor(tmp_path, monkeypatch, tiny_checkpoint):
    import urllib.request

    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    entry, cached = _cached_entry(tmp_path, monkeypatch, tiny_checkpoint[0])
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(W.WeightsError, match="cannot download"):
            W.fetch("c")
    assert len(os.listdir("/proc/self/fd")) == before
    assert list(cached.parent.iterdir()) == []


def test_default_entries_are_registry_entries():
    assert W.DEFAULT is W.REGISTRY["paper"] and W.FALLBACK is W.REGISTRY["idrid"]
    assert W.DEFAULT.url and W.FALLBACK.bundled

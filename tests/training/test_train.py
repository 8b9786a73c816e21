"""Training: a tiny run lowers the loss and writes a registry-format checkpoint,
resuming continues the very same run, and torchrun (2 CPU processes, gloo) works."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core import weights as W
from core.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--widths", "2x15", "--device", "cpu", "--workers", "0", "--quiet"]


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.with_name(out.stem + ".log.jsonl").read_text().splitlines()]


def test_tiny_run_lowers_the_loss_and_saves_a_checkpoint(tmp_path):
    out = tmp_path / "tiny.pt"
    # the same 10 images every epoch, one batch, no augmentation: the loss must fall
    args = ["train", "--synthetic", "10", "--seed", "3", "--val", "5", "--epochs", "3", "--batch-size", "10",
            "--samples-per-epoch", "10", "--no-balance", "--no-augment", "--lr", "0.02", "--preload", "cpu",
            "--out", str(out), *TINY]
    assert main(args) == 0
    hist = _history(out)
    assert [h["epoch"] for h in hist] == list(range(1, 4))
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.01
    assert all("val_quadratic_weighted_kappa" in h for h in hist)
    lm = W.load_weights(out)
    assert lm.network.widths == (2,) * 15 and lm.is_synthetic
    m = lm.meta
    assert m["synthetic"] is True and m["clinical_use"] is False
    assert m["widths"] == [2] * 15 and m["seed"] == 3 and m["loss"] == "kappa"
    assert m["data"]["train"] == {**m["data"]["train"], "dataset": "synthetic", "n": 10, "seed": 3}
    assert m["data"]["validation"]["seed"] == 4
    assert 1 <= m["epochs"] <= 3 and m["metrics"]["best_epoch"] == m["epochs"]
    assert "validation_quadratic_weighted_kappa" in m["metrics"]
    assert m["normalisation"] == W.IMAGENET.as_dict()


def test_resume_continues_the_same_run(tmp_path):
    common = ["--synthetic", "4", "--seed", "1", "--val", "0", "--batch-size", "2", "--max-steps", "2", *TINY]
    straight, halves = tmp_path / "a" / "m.pt", tmp_path / "b" / "m.pt"
    assert main(["train", *common, "--epochs", "2", "--out", str(straight)]) == 0
    assert main(["train", *common, "--epochs", "1", "--out", str(halves)]) == 0
    assert main(["train", *common, "--epochs", "2", "--out", str(halves), "--resume"]) == 0
    a, b = W.read_checkpoint(straight), W.read_checkpoint(halves)
    for k, v in a["state_dict"].items():
        assert torch.allclose(v.float(), b["state_dict"][k].float(), atol=1e-6), k
    assert [h["epoch"] for h in _history(halves)] == [1, 2]
    assert b["meta"]["epochs"] == 2


def test_time_limit_stops_after_the_current_epoch(tmp_path):
    out = tmp_path / "t.pt"
    args = ["train", "--synthetic", "4", "--val", "0", "--epochs", "5", "--batch-size", "2", "--max-steps", "1",
            "--time-limit", "0.001", "--out", str(out), *TINY]
    assert main(args) == 0
    assert [h["epoch"] for h in _history(out)] == [1] and W.read_checkpoint(out)["meta"]["epochs"] == 1


def test_resume_without_state_is_a_user_error(tmp_path, capsys):
    code = main(["train", "--synthetic", "5", "--epochs", "1", "--out", str(tmp_path / "x.pt"), "--resume", *TINY])
    assert code == 2 and "no training state" in capsys.readouterr().err


@pytest.mark.parametrize("bad, match", [
    (["--synthetic", "5", "--dataset", "aptos", "--data", "x"], "not both"),
    (["--epochs", "1"], "name the data"),
    (["--synthetic", "5", "--widths", "3x14"], "15 positive"),
    (["--synthetic", "5", "--widths", "abc"], "give channel counts"),
    (["--synthetic", "5", "--val-seed", "0"], "must differ"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, bad, match):
    assert main(["train", "--out", str(tmp_path / "x.pt"), *TINY, *bad]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "core", "train",
           "--synthetic", "8", "--seed", "2", "--val", "3", "--epochs", "1", "--batch-size", "2", "--max-steps", "2",
           "--out", str(out), *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("trained 1 epochs") == 1  # rank 0 alone reports
    ck = W.read_checkpoint(out)
    assert ck["meta"]["world_size"] == 2 and ck["meta"]["data"]["validation"]["n"] == 3
    assert len(_history(out)) == 1

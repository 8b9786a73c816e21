"""Training the paper's network (``python -m core train``; docs/method.md section 3).

Adam at 3e-4, batch 15, the quadratic weighted kappa loss (or cross-entropy),
class-balanced sampling, rotation/flip/brightness/contrast augmentation, validation
kappa every epoch and the best checkpoint kept in the registry's format (so
``--weights PATH`` works everywhere at once). One process, or several through
``torchrun`` (DistributedDataParallel: NCCL on CUDA, gloo on CPU; rank 0 alone
writes). Everything random is drawn from (seed, epoch, rank), so a run is
reproducible on CPU, and a resumed run continues the very sequence it left.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..device import resolve as resolve_device
from ..errors import OptionError
from ..model import CONV_LAYERS, DRNet, count_parameters
from ..provenance import command_line
from ..serialise import dumps, json_safe
from ..weights import IMAGENET, PAPER, load_weights, save_checkpoint
from . import metrics
from .augment import BatchTransform
from .datasets import (
    DataError,
    FundusDataset,
    SyntheticDataset,
    check_data_arguments,
    describe_path,
    describe_synthetic,
    read_selected,
    split_by_group,
)
from .evaluate import predict
from .losses import make_loss
from .sampling import BalancedSampler, batches, preload

PAPER_WIDTHS = tuple(s.channels for s in CONV_LAYERS)


# ------------------------------------------------------------------ processes


@dataclass(frozen=True)
class Dist:
    """This process's place among ``torchrun``'s (rank 0 of 1 without it)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        if self.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if it is true on one (so all ranks stop together)."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        torch.distributed.all_reduce(t)
        return bool(t.item() > 0)


def setup_processes(device_name: str) -> tuple[Dist, torch.device]:
    """Join torchrun's process group if launched by it; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world <= 1:
        return Dist(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local), device


# ------------------------------------------------------------------------ data


def build_data(args: argparse.Namespace) -> tuple[Dataset, Dataset | None, dict[str, Any]]:
    """Training and validation sets named by the options, and their description."""
    check_data_arguments(args)
    if args.synthetic is not None:
        n_val = _val_count(args.val, args.synthetic, default=min(500, max(5, args.synthetic // 10)))
        val_seed = args.val_seed if args.val_seed is not None else args.seed + 1
        if val_seed == args.seed:
            raise DataError("--val-seed must differ from --seed (validation images must be unseen)")
        train = SyntheticDataset(args.synthetic, args.seed)
        val = SyntheticDataset(n_val, val_seed) if n_val else None
        desc = {"train": describe_synthetic(args.synthetic, args.seed),
                "validation": describe_synthetic(n_val, val_seed) if n_val else None, "synthetic": True}
        return train, val, desc
    data = read_selected(args)
    desc: dict[str, Any] = {"train": data.describe() | {"source": describe_path(args.data)}, "synthetic": False}
    if args.val_data:
        val_data = read_selected(args, args.val_data)
        train_records, val_records = data.records, val_data.records
        desc["validation"] = val_data.describe() | {"source": describe_path(args.val_data)}
    else:
        share = 0.1 if args.val is None else args.val
        train_records, val_records = split_by_group(data.records, share, args.seed)
        unit = "patient" if args.dataset == "eyepacs" else "image"
        desc["validation"] = {"split": f"by {unit}, seed {args.seed}, val {share:g}", "n": len(val_records)}
    desc["train"]["n_used"] = len(train_records)
    if not train_records:
        raise DataError("no training images left after the validation split")
    return FundusDataset(train_records), (FundusDataset(val_records) if val_records else None), desc


def _val_count(val: float | None, n: int, default: int) -> int:
    if val is None:
        return default
    return int(round(val * n)) if val < 1 else int(val)


def parse_widths(text: str | None) -> tuple[int, ...] | None:
    """15 channel counts ('8,8,16,...'), 'WxK' for K copies of W, or None for the paper's."""
    if not text:
        return None
    out: list[int] = []
    try:
        for part in text.replace(" ", ",").split(","):
            if not part:
                continue
            if "x" in part:
                w, k = part.split("x")
                out += [int(w)] * int(k)
            else:
                out.append(int(part))
    except ValueError:
        raise OptionError(f"--widths '{text}': give channel counts such as '8,8,16,...' or '8x2,16x13'") from None
    if len(out) != 15 or min(out) < 1:
        raise OptionError(f"--widths needs 15 positive channel counts, got {len(out)}")
    return None if tuple(out) == PAPER_WIDTHS else tuple(out)


def initialise(model: DRNet, weights: str) -> dict[str, Any]:
    """Start ``model`` from another checkpoint of ours (fine-tuning); return what it was.

    The published weights carry no licence: nothing trained from them may be bundled or
    shared, so they (by name or by their sha256) are refused as a starting point.
    """
    lm = load_weights(weights)
    if lm.sha256 == PAPER.sha256:
        raise OptionError("--init: the published weights carry no licence; a model trained from them "
                          "could not be shared. Start from your own checkpoint (e.g. --init demo) or from scratch")
    if lm.network.widths != model.widths:
        raise OptionError(f"--init {weights}: its layer widths differ from --widths")
    model.load_state_dict(lm.network.state_dict())
    return {"weights": lm.name, "sha256": lm.sha256, "training_data": lm.meta.get("training_data")}


# ----------------------------------------------------------------- the loop


def _state_path(args: argparse.Namespace) -> Path:
    if isinstance(args.resume, str):
        return Path(args.resume)
    out = Path(args.out)
    return out.with_name(out.stem + ".state.pt")


def _epoch_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_009 + rank)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run the training the options describe; return the final summary (rank 0's)."""
    dist, device = setup_processes(args.device)
    try:
        return _train(args, dist, device)
    finally:
        if dist.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(args: argparse.Namespace, dist: Dist, device: torch.device) -> dict[str, Any]:
    return Trainer(args, dist, device).run()


class Trainer:
    """One training run: set up (data, model, optimiser, resumed state), then per epoch
    train, validate, and let rank 0 keep the best checkpoint, the state and the log."""

    def __init__(self, args: argparse.Namespace, dist: Dist, device: torch.device) -> None:
        self.t_start = time.monotonic()
        self.args, self.dist, self.device = args, dist, device
        torch.manual_seed(args.seed)
        np.random.seed(args.seed % 2**32)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        widths = parse_widths(args.widths)
        self.train_ds, self.val_ds, self.data_desc = build_data(args)
        if args.preload:
            where = device if args.preload == "device" else torch.device("cpu")
            show = dist.main and not args.quiet
            self.train_ds = preload(self.train_ds, args.workers, where, progress=show)
            if self.val_ds is not None:
                self.val_ds = preload(self.val_ds, args.workers, where, progress=show)
        self.model = DRNet(widths)
        if getattr(args, "init", None):
            self.data_desc["init"] = initialise(self.model, args.init)
        self.model = self.model.to(device, memory_format=torch.channels_last)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=args.lr)
        self.loss_fn = make_loss(args.loss)
        self.state: dict[str, Any] = {"epoch": 0, "best_kappa": -math.inf, "best_epoch": None, "history": [],
                                      "wall_time_s": 0.0, "data_time_s": 0.0}
        self.state_file = _state_path(args)
        if args.resume:
            self._resume()
        self.state["data_time_s"] += time.monotonic() - self.t_start  # reading, generating, preloading
        self.net: nn.Module = self.model
        if dist.world_size > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.sampler = BalancedSampler(self.train_ds.labels, args.samples_per_epoch, args.seed, dist.rank,
                                       dist.world_size, balanced=not args.no_balance)
        self.steps = len(self.sampler) // args.batch_size
        if args.max_steps:
            self.steps = min(self.steps, args.max_steps)
        if self.steps < 1:
            raise DataError(f"fewer training images per process ({len(self.sampler)}) than --batch-size ({args.batch_size})")
        self.tf = BatchTransform(IMAGENET, train=not args.no_augment)
        self.amp = args.amp and device.type == "cuda"
        self.deadline = self.t_start + args.time_limit if args.time_limit else None
        out = Path(args.out)
        self.log = out.with_name(out.stem + ".log.jsonl")

    def _resume(self) -> None:
        if not self.state_file.is_file():
            raise DataError(f"--resume: no training state at {self.state_file}")
        saved = torch.load(self.state_file, map_location="cpu", weights_only=True)
        if tuple(saved["widths"]) != self.model.widths:
            raise DataError("--resume: the saved run has other --widths")
        self.model.load_state_dict(saved["model"])
        self.opt.load_state_dict(saved["optimizer"])
        self.state = {k: saved[k] for k in self.state}

    def _past_deadline(self) -> bool:
        return self.deadline is not None and self.dist.any(time.monotonic() > self.deadline, self.device)

    def run(self) -> dict[str, Any]:
        from tqdm import tqdm

        args, summary = self.args, {}
        for epoch in range(self.state["epoch"], args.epochs):
            t_epoch = time.monotonic()
            losses, stop = self._epoch(epoch)
            stop = stop or self._past_deadline()
            row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else math.nan,
                                   "steps": len(losses)}
            row.update(self._validate())
            row["time_s"] = time.monotonic() - t_epoch
            self._record(row, time.monotonic() - t_epoch)
            summary = {"epochs": self.state["epoch"], "best_epoch": self.state["best_epoch"],
                       "history": self.state["history"], "checkpoint": str(args.out),
                       "wall_time_s": self.state["wall_time_s"]}
            if stop:
                if self.dist.main and not args.quiet:
                    tqdm.write(f"time limit of {args.time_limit:g} s reached: stopped after epoch {epoch + 1}", file=sys.stderr)
                break
        return summary

    def _epoch(self, epoch: int) -> tuple[list[float], bool]:
        """Train one epoch; returns the batch losses and whether the time limit stopped it."""
        from tqdm import tqdm

        args = self.args
        self.sampler.set_epoch(epoch)
        gen = _epoch_generator(args.seed, epoch, self.dist.rank)
        self.net.train()
        losses: list[torch.Tensor] = []
        stop = False
        with tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{args.epochs}", unit="step", file=sys.stderr,
                  disable=not self.dist.main or args.quiet, leave=False) as bar:
            data = batches(self.train_ds, self.sampler, args.batch_size, args.workers, self.device, drop_last=True)
            for step, (x, y) in enumerate(data):
                if step >= self.steps:
                    break
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    logits = self.net(self.tf(x, gen))
                loss = self.loss_fn(logits.float(), y)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                losses.append(loss.detach())
                bar.update(1)
                if step % 25 == 0:
                    bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
                if step % 10 == 9 and self._past_deadline():
                    stop = True
                    break
        return (torch.stack(losses).float().cpu().tolist() if losses else []), stop

    def _validate(self) -> dict[str, float]:
        if self.val_ds is None:
            return {}
        args, dist = self.args, self.dist
        pred, _ = predict(self.model, self.val_ds, batch_size=max(args.batch_size, 16), workers=args.workers,
                          device=self.device, rank=dist.rank, world_size=dist.world_size, gather=dist.gather)
        truth = np.asarray(self.val_ds.labels)
        return {"val_quadratic_weighted_kappa": metrics.quadratic_weighted_kappa(truth, pred),
                "val_accuracy": float((pred == truth).mean())}

    def _record(self, row: dict[str, Any], seconds: float) -> None:
        """Update the run's state; rank 0 saves an improved checkpoint, the state and the log."""
        from tqdm import tqdm

        st, args = self.state, self.args
        kappa = row.get("val_quadratic_weighted_kappa")
        improved = self.val_ds is None or (kappa is not None and not math.isnan(kappa) and kappa > st["best_kappa"])
        if improved:
            st["best_kappa"] = kappa if kappa is not None else float(row["epoch"])
            st["best_epoch"] = row["epoch"]
        st["history"].append(row)
        st["epoch"] = row["epoch"]
        st["wall_time_s"] += seconds
        if not self.dist.main:
            return
        if improved:
            meta = _meta(args, self.model, self.data_desc, st, self.device, self.dist)
            save_checkpoint(Path(args.out), self.model, json_safe(meta), IMAGENET)
        _save_state(self.state_file, self.model, self.opt, st)
        with open(self.log, "a") as fh:
            fh.write(dumps(row) + "\n")
        if not args.quiet:
            msg = f"epoch {row['epoch']}/{args.epochs}: loss {row['train_loss']:+.4f}"
            if kappa is not None:
                msg += f", val kappa {kappa:.4f} (acc {row['val_accuracy']:.3f}), best {st['best_kappa']:.4f} @ {st['best_epoch']}"
            tqdm.write(msg + f" [{row['time_s']:.0f} s]" + (" *saved" if improved else ""), file=sys.stderr)


def _save_state(path: Path, model: DRNet, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Everything --resume needs; written beside, then moved over, the previous one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(), "widths": list(model.widths), **state}, tmp)
    os.replace(tmp, path)


def _meta(args: argparse.Namespace, model: DRNet, data_desc: dict[str, Any], state: dict[str, Any],
          device: torch.device, dist: Dist) -> dict[str, Any]:
    best = state["history"][-1]
    synthetic = bool(data_desc.get("synthetic"))
    train_desc = data_desc["train"]
    metrics_: dict[str, Any] = {"best_epoch": state["best_epoch"], "train_loss": best["train_loss"]}
    if "val_quadratic_weighted_kappa" in best:
        metrics_["validation_quadratic_weighted_kappa"] = best["val_quadratic_weighted_kappa"]
        metrics_["validation_accuracy"] = best["val_accuracy"]
        metrics_["validation_n"] = (data_desc.get("validation") or {}).get("n")
    return {
        "title": f"DRNet trained with `python -m core train` on {train_desc['dataset']} data",
        "training_data": dumps(train_desc),
        "data": data_desc,
        "seed": args.seed,
        "command": command_line(),
        "options": {k: v for k, v in vars(args).items() if k != "func" and isinstance(v, (int, float, str, bool, type(None)))},
        "epochs": state["epoch"],
        "metrics": metrics_,
        "history": state["history"],
        "widths": list(model.widths) if model.widths != PAPER_WIDTHS else None,
        "num_params": count_parameters(model),
        "normalisation": IMAGENET.as_dict(),
        "loss": args.loss,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "world_size": dist.world_size,
        "device": str(device.type),
        "torch": str(torch.__version__),
        "wall_time_s": state["wall_time_s"] + state["data_time_s"],
        "training_time_s": state["wall_time_s"],
        "synthetic": synthetic,
        "clinical_use": False,
        "intended_use": "research" + ("; trained on synthetic images only: never for clinical use" if synthetic else ""),
    }

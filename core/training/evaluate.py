"""How well a checkpoint grades a labelled data set (``python -m core evaluate``).

Reports quadratic weighted kappa (percentile-bootstrap interval), the confusion
matrix, accuracy and referable-DR sensitivity/specificity (grades 2-4 vs 0-1, Wilson
intervals), on any supported data set or on a freshly generated synthetic one.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..model import GRADE_ABBREVIATIONS, N_GRADES
from ..weights import IMAGENET, Normalisation, load_weights
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
)
from .sampling import ShardSampler, batches


@torch.inference_mode()
def predict(model: nn.Module, dataset: Dataset, *, batch_size: int = 16, workers: int = 0,
            device: torch.device | None = None, norm: Normalisation = IMAGENET, rank: int = 0,
            world_size: int = 1, progress: bool = False,
            gather: Callable[[Any], list[Any]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grades (argmax of the scores) and scores (N, 5) for every image, in order.

    Under several processes each takes its ``ShardSampler`` share and ``gather``
    (e.g. ``all_gather_object``) brings all shares to every rank.
    """
    from tqdm import tqdm

    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    tf = BatchTransform(norm, train=False)
    sampler = ShardSampler(len(dataset), rank, world_size)
    scores = []
    with tqdm(total=len(sampler), desc="grading", unit="img", file=sys.stderr, disable=not progress, leave=False) as bar:
        for x, _ in batches(dataset, sampler, batch_size, workers, device):
            scores.append(model(tf(x)).float().cpu())
            bar.update(len(x))
    model.train(was_training)
    local = torch.cat(scores).numpy() if scores else np.zeros((0, N_GRADES), np.float32)
    idx = np.asarray(sampler.indices, dtype=np.int64)
    if gather is not None and world_size > 1:
        parts = gather((idx, local))
        idx = np.concatenate([p[0] for p in parts])
        local = np.concatenate([p[1] for p in parts])
    order = np.argsort(idx, kind="stable")
    s = local[order]
    return s.argmax(axis=1), s


def labelled_dataset(args: argparse.Namespace) -> tuple[Dataset, dict[str, Any]]:
    """The data set named by the shared data options, and its description."""
    check_data_arguments(args)
    if args.synthetic is not None:
        return SyntheticDataset(args.synthetic, args.seed), describe_synthetic(args.synthetic, args.seed)
    data = read_selected(args)
    if not data.records:
        raise DataError(f"{args.dataset}: no labelled images found")
    desc = data.describe()
    desc["source"] = describe_path(args.data)
    return FundusDataset(data.records), desc


def _fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _ci(lo_hi: list[float]) -> str:
    return f"[{_fmt(lo_hi[0])}, {_fmt(lo_hi[1])}]"


def format_report(r: dict[str, Any]) -> str:
    """Human-readable table of ``summarise``'s output."""
    confusion = np.asarray(r["confusion_matrix"])
    lines = [
        f"weights  {r['weights']} (sha256 {r['sha256'][:12]}...)",
        f"data     {r['data'].get('dataset')}: {r['n']} images"
        + "".join(f"; {n} left out ({why})" for why, n in (r["data"].get("excluded") or {}).items()),
        "",
        f"quadratic weighted kappa  {_fmt(r['quadratic_weighted_kappa'])}  {int(r['ci_level'] * 100)}% CI {_ci(r['quadratic_weighted_kappa_ci'])}",
        f"accuracy                  {_fmt(r['accuracy'])}  {int(r['ci_level'] * 100)}% CI {_ci(r['accuracy_ci'])}",
        f"referable DR sensitivity  {_fmt(r['sensitivity'])}  {int(r['ci_level'] * 100)}% CI {_ci(r['sensitivity_ci'])}",
        f"referable DR specificity  {_fmt(r['specificity'])}  {int(r['ci_level'] * 100)}% CI {_ci(r['specificity_ci'])}",
        f"  (referable: {r['referable_definition']}; CI: kappa {r['ci_methods']['quadratic_weighted_kappa']}, "
        f"proportions {r['ci_methods']['proportions']})",
        "",
        "confusion matrix (rows: true grade, columns: predicted grade)",
        "        " + " ".join(f"{j:>6d}" for j in range(confusion.shape[1])) + "   total",
    ]
    for i, row in enumerate(confusion):
        lines.append(f"  {i} {GRADE_ABBREVIATIONS[i]:>4s}" + " ".join(f"{v:>6d}" for v in row) + f"  {row.sum():>6d}")
    return "\n".join(lines)


def evaluate(weights: str | None, dataset: Dataset, data_desc: dict[str, Any], *, device: torch.device,
             batch_size: int = 16, workers: int = 0, n_boot: int = 2000, seed: int = 0,
             progress: bool = False) -> dict[str, Any]:
    """Metrics of ``weights`` (registry name, path, or None for the default) on ``dataset``."""
    lm = load_weights(weights)
    model = lm.network.to(device)
    labels = np.asarray(dataset.labels, dtype=np.int64)
    pred, _ = predict(model, dataset, batch_size=batch_size, workers=workers, device=device,
                      norm=lm.normalisation, progress=progress)
    report = metrics.summarise(labels, pred, n_boot=n_boot, seed=seed)
    report.update(weights=lm.name, sha256=lm.sha256, synthetic_weights=lm.is_synthetic, data=data_desc)
    return report



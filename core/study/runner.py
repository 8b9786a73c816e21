"""Running the study: every method on every image (in worker processes if asked), the
per-image tallies, and the JSON document with bootstrap intervals and the paired
comparisons with the paper's total map.

The numbers depend only on ``Settings`` (written into the document as they are), never
on the number of workers or the device beyond float rounding: every random choice is
seeded by (seed, image index).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..model import INPUT_SIZE, N_GRADES
from ..provenance import command_line, machine
from ..serialise import json_safe
from ..weights import LoadedModel, load_weights, read_checkpoint
from .candidates import candidate_methods, candidate_specs, method_name, select
from .lesions import KEEP, MOVES, Instances, lesion_metrics
from .measures import HIGHER_IS_BETTER, Key, Truth, faithfulness, mask_metrics, pearson
from .peers import DEFAULT_LAYERS, Context, Maps, Method, Peers, StudyError, methods
from .sources import Sample, Task, held_out, idrid_tasks, real_samples, sample_of, synthetic_tasks
from .statistics import paired_difference, ratio_ci, resample_weights

ROLES = ("predicted", "true")
FRACTIONS = (0.01, 0.02, 0.05, 0.10, 0.20, 0.50)  # intermediate steps; 0 and 1 are shared
REFERENCE = "paper_total"  # the method every other one is compared with
CORRELATED = (("paper_input", "gradient_x_input"), ("paper_input", "lrp_epsilon"))  # docs/method.md section 4


@dataclass(frozen=True)
class Settings:
    """Everything that decides the numbers; written into the output as is."""

    n: int = 500
    seed: int = 10_000_000
    faith_n: int = 50
    ig_n: int = 50
    ig_steps: int = 16
    fractions: tuple[float, ...] = FRACTIONS
    blur_sigma: float = 20.0
    min_gap: float = 1.0
    k: float = 2.0
    tolerance: float = 5.0
    bootstrap: int = 1000
    layers: tuple[int, ...] = DEFAULT_LAYERS
    batch: int = 8
    device: str = "cpu"

    def fitted(self, total: int, kind: str) -> Settings:
        """These settings for ``total`` images of ``kind``: the subsets no larger than the
        data, and every measure on every image for a handful of real photographs."""
        every = kind == "real"
        return dataclasses.replace(self, n=total, faith_n=total if every else min(self.faith_n, total),
                                   ig_n=total if every else min(self.ig_n, total))


# ------------------------------------------------------------------------------ one image
@dataclass
class ImageResult:
    """Everything measured on one image: (method, role, metric) -> (numerator, denominator)."""

    index: int
    name: str
    row: dict[Key, tuple[float, float]] = field(default_factory=dict)
    curves: dict[Key, np.ndarray] = field(default_factory=dict)  # (method, role, kind) -> normalised curve
    seconds: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    correlations: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    n_grades: int = 1


@dataclass
class Study:
    """The per-image results of a run, in image order."""

    images: list[ImageResult]

    def arrays(self, key: Key) -> tuple[np.ndarray, np.ndarray]:
        """Numerators and denominators of ``key`` over images (0, 0 where undefined)."""
        pairs = np.array([r.row.get(key, (0.0, 0.0)) for r in self.images], np.float64).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def keys(self) -> list[Key]:
        """Every (method, role, metric) measured on at least one image, sorted."""
        return sorted({k for r in self.images for k in r.row})

    def gather(self, attr: str) -> dict[Any, list[Any]]:
        """``attr`` (a per-image dict) as key -> the values of the images that have it."""
        out: dict[Any, list[Any]] = defaultdict(list)
        for r in self.images:
            for k, v in getattr(r, attr).items():
                out[k].append(v)
        return dict(out)


def evaluate_image(index: int, sample: Sample, peers: Peers, s: Settings, chosen: Sequence[Method]) -> ImageResult:
    """Every method's maps for the image's true and predicted grades, and their metrics.

    ``seconds`` holds each method's time; ``phases`` the image's time in maps, mask and
    lesion measures, and deletion/insertion (the study prints their totals)."""
    res = ImageResult(index, sample.name)
    ctx = Context(peers, sample.fundus, (), s.seed, index)
    pred = int(np.argmax(ctx.shared("scores", lambda: peers.scores(ctx.x))[0].numpy()))
    roles = {"predicted": pred} | ({"true": sample.grade} if sample.grade is not None else {})
    ctx.grades = tuple(sorted(set(roles.values())))
    res.n_grades = len(ctx.grades)
    truth = Truth.of(sample, s.tolerance)
    instances = {t: Instances.of(*lab) for t, lab in truth.labels.items()} if truth is not None else {}
    maps: dict[str, Maps] = {}
    for m in chosen:
        if m.subset and index >= s.ig_n:
            continue
        t = time.perf_counter()
        maps[m.name], res.seconds[m.name] = ctx.run(m)
        res.phases["maps"] = res.phases.get("maps", 0.0) + time.perf_counter() - t  # shared passes counted once here
        if truth is not None and truth.union.any():
            t = time.perf_counter()
            for role, g in roles.items():
                if role == "true" and g == pred and "predicted" in roles:
                    found = {k[2]: v for k, v in res.row.items() if k[0] == m.name and k[1] == "predicted"}
                else:
                    # the clumped chance only for the compared methods (candidate views are many)
                    rng = np.random.default_rng([s.seed, 3, index, zlib.crc32(m.name.encode()), g]) if m.family != "view" else None
                    found = mask_metrics(maps[m.name][g], truth, s.k) | lesion_metrics(
                        maps[m.name][g], truth.fov, truth.union, instances, s.k, rng)
                res.row.update({(m.name, role, metric): v for metric, v in found.items()})
            res.phases["measures"] = res.phases.get("measures", 0.0) + time.perf_counter() - t
    for a, b in CORRELATED:
        if a in maps and b in maps:
            res.correlations[f"{a}~{b}"] = pearson(maps[a][pred], maps[b][pred], sample.fundus.fov)
    if index < s.faith_n:
        t = time.perf_counter()
        # the predicted grade's map only: its curves are what the report reads, and they halve the forward passes
        faith = faithfulness(ctx, {m.name: maps[m.name] for m in chosen if m.faith and m.name in maps}, {"predicted": pred},
                             seed=s.seed, fractions=s.fractions, blur_sigma=s.blur_sigma, min_gap=s.min_gap, batch=s.batch)
        for role in faith.excluded:
            res.counts[f"faith_excluded_{role}"] = 1
        res.row.update({key: (area, 1.0) for key, area in faith.areas.items()})
        res.curves.update(faith.curves)
        res.phases["faithfulness"] = time.perf_counter() - t
    res.counts["with_lesions"] = int(truth is not None and bool(truth.union.any()))
    res.counts["true_equals_predicted"] = int(roles.get("true") == pred)
    return res


# ------------------------------------------------------------------------------ all images
_WORKER: dict[str, Any] = {}


def _init_worker(weights: str, s: Settings, names: list[str], threads: int | None = None) -> None:
    if threads is not None:  # a spawned worker: one torch thread, the processes share the cores
        from ..allocator import keep_large_blocks

        torch.set_num_threads(threads)
        cv2.setNumThreads(1)
        keep_large_blocks()  # one image after another: keep the large temporaries instead of faulting them in again
    known = {m.name: m for m in [*methods(s.layers), *candidate_methods()]}
    _WORKER.update(peers=Peers(load_weights(weights), s.device, s.ig_steps, s.batch), settings=s,
                   methods=[known[n] for n in names])


def _work(item: tuple[int, Task]) -> ImageResult:
    w = _WORKER
    return evaluate_image(item[0], sample_of(item[1]), w["peers"], w["settings"], w["methods"])


def evaluate(tasks: Sequence[Task], weights: str, s: Settings, chosen: Sequence[Method],
             workers: int = 1, quiet: bool = False) -> Study:
    """Run every method on every image and record the metrics (the slow part).

    ``workers > 1`` evaluates images in that many spawned processes, each with one torch
    thread (the processes share the cores); results do not depend on it.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm import tqdm

    items = list(enumerate(tasks))
    bar = tqdm(total=len(items), desc="quality", unit="img", file=sys.stderr, disable=quiet)
    names = [m.name for m in chosen]
    threads = 1
    results: list[ImageResult] = []
    if workers <= 1 or len(items) <= 1:
        _init_worker(weights, s, names)
        for item in items:
            results.append(_work(item))
            bar.update()
    else:
        with ProcessPoolExecutor(min(workers, len(items)), mp_context=get_context("spawn"), initializer=_init_worker,
                                 initargs=(weights, s, names, threads)) as ex:
            for r in ex.map(_work, items, chunksize=1):
                results.append(r)
                bar.update()
    bar.close()
    _WORKER.clear()
    return Study(sorted(results, key=lambda r: r.index))


# ------------------------------------------------------------------------------ the document
def summarise(study: Study, chosen: Sequence[Method], s: Settings) -> dict[str, Any]:
    """The JSON document: method -> metric -> {value, low, high, n}, paired comparisons
    with the paper's total map, mean curves, timings and counts.

    A comparison's verdict is "paper loses" or "paper wins" when the 95% interval of the
    paired difference excludes 0, else "tie"; it uses only images where both are defined.
    """
    n = len(study.images)
    w = resample_weights(n, s.bootstrap, s.seed)
    table: dict[str, dict[str, dict[str, Any]]] = {m.name: {} for m in chosen}
    comparisons: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    ref = REFERENCE
    families = {m.name: m.family for m in chosen}
    keys = study.keys()
    present = set(keys)
    for method, role, metric in keys:
        num, den = study.arrays((method, role, metric))
        value, low, high, _ = ratio_ci(num, den, w)
        table[method][f"{metric}_{role}"] = {"value": value, "low": low, "high": high, "n": int((den > 0).sum())}
        if (method == ref or (ref, role, metric) not in present or metric in ("mask_share", "lesion_share")
                or metric.startswith("chance_") or families.get(method) == "view"):
            continue
        paired = paired_difference(num, den, *study.arrays((ref, role, metric)), w)
        if paired is None:
            continue
        difference, lo, hi, both = paired
        verdict = "tie"
        if lo > 0 or hi < 0:
            better = HIGHER_IS_BETTER.get("hit" if metric.startswith("hit_") else metric, True)
            verdict = "paper loses" if (lo > 0) == better else "paper wins"
        comparisons[method][f"{metric}_{role}"] = {
            "difference": difference, "low": lo, "high": hi, "n": both, "verdict": verdict,
        }
    curves = {f"{m}|{role}|{kind}": {"mean": np.mean(ys, 0).tolist(), "n": len(ys)}
              for (m, role, kind), ys in sorted(study.gather("curves").items())}
    counts = {k: int(sum(v)) for k, v in study.gather("counts").items()}
    views = [m for m in chosen if m.family == "view"]
    selection = None
    if views:
        specs = [sp for sp in candidate_specs() if any(m.name == method_name(sp) for m in views)]
        selection = select(study.arrays, specs, n)
    return json_safe({
        "n_images": n,
        "n_with_lesions": counts.get("with_lesions", 0),
        "n_true_equals_predicted": counts.get("true_equals_predicted", 0),
        "mean_grades_per_image": float(np.mean([r.n_grades for r in study.images])) if n else None,
        "methods": table,
        "labels": {m.name: m.label for m in chosen},
        "comparisons_with_paper_total": dict(comparisons),
        "curves": curves,
        "timings_s": {m: {"mean_s": float(np.mean(v)), "n": len(v)} for m, v in study.gather("seconds").items()},
        "phases_s": {k: float(np.sum(v)) for k, v in study.gather("phases").items()},
        "families": {m.name: m.family for m in chosen},
        "signed": {m.name: m.signed for m in chosen},
        "view_selection": selection,
        "correlations": {k: float(np.nanmean(v)) for k, v in study.gather("correlations").items()},
        "faithfulness_excluded": {k.removeprefix("faith_excluded_"): v for k, v in counts.items() if k.startswith("faith_excluded")},
    })


def describe(lm: LoadedModel, s: Settings, kind: str, study: Study, seconds: float, workers: int = 1) -> dict[str, Any]:
    """Model, data and settings, as stated in the output."""
    data = {
        "synthetic": f"core.synthetic.generate_many(n={s.n}, seed={s.seed}), grades balanced in blocks of {N_GRADES}, each image "
                     "prepared as a file is read and its masks mapped alike",
        "idrid": "real images with IDRiD lesion masks (MA, HE, EX, SE; SE counted as cotton-wool spots)",
        "real": "real photographs without masks: deletion/insertion only, map of the predicted grade",
    }[kind]
    return {
        "model": {"name": lm.name, "sha256": lm.sha256, "widths": list(lm.network.widths),
                  "title": lm.meta.get("title", ""), "synthetic": lm.is_synthetic},
        "data": {"kind": kind, "description": data, "images": [r.name for r in study.images] if kind != "synthetic" else None},
        "command": command_line(default="python -m core quality"),
        "machine": machine(cuda=s.device.startswith("cuda")),
        "settings": dataclasses.asdict(s) | {
            "torch_threads": torch.get_num_threads(),
            "workers": workers,
            "threads_per_worker": 1 if workers > 1 else torch.get_num_threads(),
            "wall_s": round(seconds, 1),
            "mask_metrics": "within the FOV; images without lesions (grade 0) excluded; mean over images",
            "auc": "pixel AUC-ROC against the union of the lesion masks, ties counted half; 'auc' ranks the map's signed "
                   "values (evidence for the grade), 'auc_abs' their magnitude (where the map is strong, either sign)",
            "pointing": f"the map's FOV maximum within {s.tolerance:g} px (Euclidean) of a lesion pixel; ties: share of tied maxima",
            "k_sigma_mask": f"positive and > mean + {s.k:g} std of the map over the FOV (core.threshold_mask)",
            "hit_share": "lesion instances = 8-connected components of a type's mask; hit = shares >= 1 pixel with the mask; pooled over images",
            "faithfulness_map": "deletion/insertion of the predicted grade's map only",
            "removal_baseline": f"the image blurred inside the FOV with a Gaussian of sigma {s.blur_sigma:g} px (normalised convolution)",
            "faithfulness_normalisation": "(score - score of the fully blurred image) / (original score - fully blurred score), "
                                          f"per image and grade; left out when that gap < {s.min_gap:g}",
            "score_change": "deletion drop: original score minus the mean score over the deletion steps; insertion gain: the "
                            "mean score over the insertion steps minus the fully blurred image's score; logits, no division, "
                            "every image (higher is better for both)",
            "clumped_chance": f"the method's own k-sigma mask rotated about the FOV centre by a random angle and mirrored at "
                              f"random ({MOVES} copies per map, each keeping >= {KEEP:.0%} of its pixels in the FOV): its "
                              "precision and lesion instances touched",
            "detection": "a lesion instance is detected when the map's sum over its pixels is > 0 (net evidence for the grade); "
                         "size classes by instance area in model-input pixels; trivially 1 for unsigned maps",
            "positive_share": "share of the map's positive mass in the FOV on lesion pixels; enrichment: that share / the "
                              "lesions' share of the FOV (ratio of sums over images; 1 = no preference for lesions)",
            "curve_area": "trapezoid over equally spaced steps (0, the fractions, 100%), divided by the number of intervals",
            "ranking_ties": "broken at random (seeded)",
            "bootstrap": f"{s.bootstrap} resamples of the images (seeded), 95% percentile intervals, paired across methods",
            "paper_layers": "layer L's unit scores, input-dependent + constant part (S_O), spread over receptive fields",
            "gradient": "|gradient| summed over RGB",
            "signed_sum_over_rgb": "gradient x input, Integrated Gradients, LRP-epsilon",
            "integrated_gradients": f"Captum, {s.ig_steps} steps (Gauss-Legendre), black image baseline, first {s.ig_n} images",
            "lrp": f"Captum LRP, default rules (epsilon 1e-9), on a deep copy of the network, first {s.ig_n} images (the same "
                   "subset as Integrated Gradients: its maps equal gradient x input, see the correlations, and it is the "
                   "slowest peer after Integrated Gradients)",
            "gradcam": f"layer 14 output (10x10), ReLU, bilinear upsampling to {INPUT_SIZE}",
            "random": "i.i.d. standard normal per pixel, seeded",
            "timing": "mean seconds per image to make the method's maps for the image's distinct true/predicted grades "
                      "(shared passes charged in full to each method that uses them)",
        },
    }


# ------------------------------------------------------------------------------ a whole run
def select_tasks(lm: LoadedModel, *, real: Sequence[str | os.PathLike] | None = None, augment: bool = False,
                 idrid: str | os.PathLike | None = None, n: int = Settings.n, seed: int = Settings.seed,
                 limit: int | None = None) -> tuple[list[Task], str, str]:
    """(tasks, data kind, held-out note): the real photographs, the IDRiD folder, or else
    ``n`` synthetic images minus those the model's card says it was trained on."""
    if real:
        return list(real_samples(real, augment)), "real", ""
    if idrid is not None:
        found = idrid_tasks(Path(idrid), limit)
        if not found:
            raise StudyError(f"{idrid}: no IDRiD_XX.jpg with lesion masks (IDRiD_XX_MA.tif, ...) found")
        return list(found), "idrid", ""
    card = dict(lm.meta)
    if not isinstance(card.get("data"), dict):  # a registry entry's meta may omit it; the file has it
        card["data"] = (read_checkpoint(lm.path).get("meta") or {}).get("data")
    tasks, check = held_out(synthetic_tasks(n, seed), card)
    return tasks, "synthetic", check


def run_study(lm: LoadedModel, name: str, tasks: Sequence[Task], kind: str, settings: Settings, chosen: Sequence[Method],
              *, workers: int = 1, quiet: bool = False, held_out_note: str = "") -> dict[str, Any]:
    """Evaluate, summarise and describe: the whole JSON document of one run.

    ``name`` is how ``lm`` was asked for: worker processes reload a registry entry by
    name and anything else by its path.
    """
    started = time.perf_counter()
    weights = str(lm.path) if name not in ("paper", "demo") else name
    study = evaluate(tasks, weights, settings, chosen, workers=workers, quiet=quiet)
    doc = summarise(study, chosen, settings)
    doc.update(describe(lm, settings, kind, study, time.perf_counter() - started, workers))
    doc["data"]["held_out"] = held_out_note or None
    return doc


__all__ = [
    "FRACTIONS", "REFERENCE", "ROLES", "ImageResult", "Settings", "Study", "describe", "evaluate",
    "evaluate_image", "run_study", "select_tasks", "summarise",
]

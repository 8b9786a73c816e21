"""Speed and memory (``python -m core bench``) of the explanation beside a forward pass
and beside Captum's LRP and Integrated Gradients, measured in one process on one image.

Figures on a shared machine are noisy: compare the ratios printed by one run.
"""

from __future__ import annotations

import copy
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .explanation import explain
from .fundus import read_fundus
from .model import INPUT_SIZE, plain_copy
from .weights import ASSETS, load_weights

DEFAULT_IMAGE = ASSETS / "samples" / "retina-normal.jpg"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _timed(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: allocator, kernels, caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(weights: str, image: Path, repeats: int = 5, captum: bool = True) -> dict[str, Any]:
    lm = load_weights(weights)
    fundus = read_fundus(image, name=image.name)
    x = lm.normalisation.to_tensor(fundus.image)
    rss_loaded = _peak_rss_mb()

    plain = plain_copy(lm.network)  # PyTorch's default (contiguous) layout
    with torch.inference_mode():
        forward = _timed(lambda: plain(x), repeats)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        forward_cl = _timed(lambda: lm.network(x_cl), repeats)

    def full() -> None:
        exp = explain(lm, fundus)
        exp.materialise()  # all 15 layers x 2 parts x 5 grades in input space, totals
        if not exp.conservation()["ok"]:
            raise RuntimeError("conservation check failed")

    hidden = _timed(lambda: explain(lm, fundus), repeats)
    explanation = _timed(full, repeats)
    rss_explain = _peak_rss_mb()
    out: dict[str, Any] = {
        "weights": lm.name,
        "image": image.name,
        "threads": torch.get_num_threads(),
        "forward_s": forward,
        "forward_channels_last_s": forward_cl,
        "propagation_s": hidden,
        "explanation_s": explanation,
        "ratio_to_forward": explanation / forward,
        "ratio_to_forward_channels_last": explanation / forward_cl,
        "peak_rss_mb": rss_explain,
        "rss_after_loading_mb": rss_loaded,
    }
    if captum:
        from captum.attr import LRP, IntegratedGradients

        grade = int(explain(lm, fundus).grade)
        xg = x.clone().requires_grad_(True)
        lrp_model = copy.deepcopy(plain)
        out["captum_lrp_one_grade_s"] = _timed(lambda: LRP(lrp_model).attribute(xg, target=grade), max(1, repeats // 2))
        ig = IntegratedGradients(copy.deepcopy(plain))
        t = time.perf_counter()
        ig.attribute(x, target=grade, n_steps=50, internal_batch_size=5)
        out["captum_ig50_one_grade_s"] = time.perf_counter() - t
        out["ratio_to_captum_lrp"] = explanation / out["captum_lrp_one_grade_s"]
        out["ratio_to_captum_ig50"] = explanation / out["captum_ig50_one_grade_s"]
    return out


def report(r: dict[str, Any]) -> str:
    lines = [
        f"bench: weights '{r['weights']}', image {r['image']}, {INPUT_SIZE}x{INPUT_SIZE}, {r['threads']} threads",
        f"  forward (default layout)           {r['forward_s']:8.3f} s",
        f"  forward (channels_last)            {r['forward_channels_last_s']:8.3f} s",
        f"  propagation, 5 grades, 15 layers   {r['propagation_s']:8.3f} s",
        "  full explanation (all in input space, totals, conservation)",
        f"                                     {r['explanation_s']:8.3f} s   = {r['ratio_to_forward']:.1f}x forward, "
        f"{r['ratio_to_forward_channels_last']:.1f}x channels_last forward",
        f"  peak RSS                           {r['peak_rss_mb']:8.0f} MB  (after loading: {r['rss_after_loading_mb']:.0f} MB)",
    ]
    if "captum_lrp_one_grade_s" in r:
        lines += [
            f"  Captum LRP, one grade              {r['captum_lrp_one_grade_s']:8.3f} s   explanation/LRP = {r['ratio_to_captum_lrp']:.2f}",
            f"  Captum IG (50 steps), one grade    {r['captum_ig50_one_grade_s']:8.3f} s   explanation/IG  = {r['ratio_to_captum_ig50']:.3f}",
        ]
    return "\n".join(lines)

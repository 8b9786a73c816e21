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
from PIL import Image

from .device import describe
from .explanation import explain
from .fundus import read_fundus
from .model import CONV_LAYERS, INPUT_SIZE, plain_copy
from .weights import ASSETS, load_weights

DEFAULT_IMAGE = ASSETS / "samples" / "retina-normal.jpg"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _sync() -> None:
    """Wait for the GPU's queued work, so that a timed call is timed whole (nothing on a CPU)."""
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median of ``repeats`` timed calls after one warm-up; ``repeats=0``: one call, timed."""
    if repeats == 0:
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        return time.perf_counter() - t
    fn()  # warm-up: allocator, kernels, caches
    times = []
    for _ in range(repeats):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def floor_fn(network: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """The floor of this method, as autograd does it: a forward pass, then the five grades'
    gradients at every batch norm's output (what the propagation needs, S = lambda * a, with
    lambda the gradient of a ReLU-gated network), in channels_last."""
    network = network.to(memory_format=torch.channels_last)
    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
             for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def floor() -> None:
        outputs.clear()
        with torch.enable_grad():
            xg = x_cl.clone().requires_grad_(True)  # the input's gradient too: the pixels' map
            scores = network(xg)
            for c in range(scores.shape[1]):
                torch.autograd.grad(scores[0, c], [xg, *outputs], retain_graph=c < scores.shape[1] - 1)

    floor.hooks = hooks  # type: ignore[attr-defined]  # kept alive with the closure
    return floor


PAGE_LAYER_MAPS = 10  # single-layer maps a page's session keeps (viewer/state.py MAX_LAYER_MAPS; a test checks)


def session_bytes(exp: Any, grade: int, limit: int | None = None) -> dict[str, float]:
    """What the page keeps for one explained photograph with one grade shown and every layer
    visited (its total, constants, every layer's two maps in input space, at most ``limit``
    single-layer maps of them), in MB."""
    exp.limit_layer_maps(limit)
    exp.total(grade)
    exp.conservation([grade])
    for spec in CONV_LAYERS:
        for part in ("input_dependent", "constant"):
            exp.in_input_space(spec.index, part, grade)
    hidden = sum(a.nbytes for maps in (exp.layer(s.index) for s in CONV_LAYERS) for a in (maps.input_dependent, maps.constant))
    base = hidden + exp.input_map.nbytes + exp.fundus.image.nbytes + exp.fundus.fov.nbytes
    cached = exp.cached_bytes()
    return {"hidden_maps_mb": hidden / 2**20, "explanation_mb": base / 2**20, "input_space_mb": cached / 2**20,
            "session_mb": (base + cached) / 2**20}


def _usage() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def run(weights: str, image: Path, repeats: int = 5, captum: bool = True, device: str = "cpu") -> dict[str, Any]:
    lm = load_weights(weights, device=device)
    fundus = read_fundus(image, name=image.name)
    x = lm.normalisation.to_tensor(fundus.image).to(lm.device)
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
    floor = _timed(floor_fn(plain_copy(lm.network), x), repeats)
    u0 = _usage()
    explanation = _timed(full, repeats)
    u1 = _usage()
    rss_explain = _peak_rss_mb()
    exp = explain(lm, fundus)
    memory = session_bytes(exp, exp.grade)
    bounded = session_bytes(explain(lm, fundus), exp.grade, PAGE_LAYER_MAPS)
    out: dict[str, Any] = {
        "weights": lm.name,
        "image": image.name,
        "device": describe(lm.device),
        "threads": torch.get_num_threads(),
        "forward_s": forward,
        "forward_channels_last_s": forward_cl,
        "propagation_s": hidden,
        "explanation_s": explanation,
        "ratio_to_forward": explanation / forward,
        "ratio_to_forward_channels_last": explanation / forward_cl,
        "floor_s": floor,
        "propagation_to_floor": hidden / floor,
        "user_s": u1[0] - u0[0],
        "system_s": u1[1] - u0[1],
        "system_share": (u1[1] - u0[1]) / max(u1[0] - u0[0] + u1[1] - u0[1], 1e-9),
        "minor_faults": u1[2] - u0[2],
        "explanations_measured": repeats + 1,
        "peak_rss_mb": rss_explain,
        "rss_after_loading_mb": rss_loaded,
        **memory,
        "session_page_mb": bounded["session_mb"],
        "page_layer_maps": PAGE_LAYER_MAPS,
    }
    if captum:
        from captum.attr import LRP, IntegratedGradients

        grade = int(explain(lm, fundus).grade)
        xg = x.clone().requires_grad_(True)
        lrp_model = copy.deepcopy(plain)
        lrp = LRP(lrp_model)
        out["captum_lrp_one_grade_s"] = _timed(lambda: lrp.attribute(xg, target=grade), max(1, repeats // 2))
        # Paired: each full explanation right beside one LRP, so that the machine's load changes both alike.
        pairs = []
        for _ in range(5):
            a = _timed(full, 0)
            b = _timed(lambda: lrp.attribute(xg, target=grade), 0)
            pairs.append(a / b)
        out["ratio_to_captum_lrp_paired_median"] = statistics.median(pairs)
        ig = IntegratedGradients(copy.deepcopy(plain))
        t = time.perf_counter()
        ig.attribute(x, target=grade, n_steps=50, internal_batch_size=5)
        out["captum_ig50_one_grade_s"] = time.perf_counter() - t
        out["ratio_to_captum_lrp"] = explanation / out["captum_lrp_one_grade_s"]
        out["ratio_to_captum_ig50"] = explanation / out["captum_ig50_one_grade_s"]
    return out


def report(r: dict[str, Any]) -> str:
    lines = [
        f"bench: weights '{r['weights']}', image {r['image']}, {INPUT_SIZE}x{INPUT_SIZE}, {r['threads']} threads, "
        f"device {r.get('device', 'cpu')}",
        f"  forward (default layout)           {r['forward_s']:8.3f} s",
        f"  forward (channels_last)            {r['forward_channels_last_s']:8.3f} s",
        f"  propagation, 5 grades, 15 layers   {r['propagation_s']:8.3f} s",
        "  full explanation (all in input space, totals, conservation)",
        f"                                     {r['explanation_s']:8.3f} s   = {r['ratio_to_forward']:.1f}x forward, "
        f"{r['ratio_to_forward_channels_last']:.1f}x channels_last forward",
        "  floor: forward + 5 autograd gradients at every BN output (channels_last)",
        f"                                     {r['floor_s']:8.3f} s   propagation / floor = {r['propagation_to_floor']:.2f}",
        f"  kernel time over {r['explanations_measured']} full explanations: system {r['system_s']:.2f} s beside user "
        f"{r['user_s']:.2f} s ({100 * r['system_share']:.1f} %), {r['minor_faults']:,} minor page faults",
        f"  peak RSS                           {r['peak_rss_mb']:8.0f} MB  (after loading: {r['rss_after_loading_mb']:.0f} MB)",
        f"  one explained session (one grade, every layer visited): {r['session_mb']:.0f} MB = explanation "
        f"{r['explanation_mb']:.0f} MB (hidden maps {r['hidden_maps_mb']:.0f} MB) + input-space maps {r['input_space_mb']:.0f} MB;"
        f" as the page keeps it (at most {r['page_layer_maps']} single-layer maps): {r['session_page_mb']:.0f} MB",
    ]
    if "captum_lrp_one_grade_s" in r:
        lines += [
            f"  Captum LRP, one grade              {r['captum_lrp_one_grade_s']:8.3f} s   explanation/LRP = {r['ratio_to_captum_lrp']:.2f}"
            f" (median of 5 paired runs: {r['ratio_to_captum_lrp_paired_median']:.2f})",
            f"  Captum IG (50 steps), one grade    {r['captum_ig50_one_grade_s']:8.3f} s   explanation/IG  = {r['ratio_to_captum_ig50']:.3f}",
        ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ grading a folder
def grade_speed(weights: str, folder: Path, limit: int | None = None, workers: tuple[int, ...] = (1, 2),
                batch: int = 8, pattern: str = "*", device: str = "cpu") -> dict[str, Any]:
    """Images per second of ``grade``'s work (read, score) on the photographs of ``folder``:
    one at a time in this process (the old path), then with ``workers`` reading processes and
    batches of ``batch``, and reading alone. Process start-up is included: a user pays it."""
    from .fundus import IMAGE_SUFFIXES
    from .grading import grade_paths, read_ahead

    files = sorted(p for p in folder.rglob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise ValueError(f"{folder}: no images")
    lm = load_weights(weights, device=device)
    runs: list[dict[str, Any]] = []

    def timed(label: str, fn: Callable[[], int]) -> None:
        t = time.perf_counter()
        n = fn()
        seconds = time.perf_counter() - t
        runs.append({"label": label, "images": n, "seconds": seconds, "images_per_s": n / seconds})

    timed("one at a time, reading here", lambda: sum(1 for _ in grade_paths(lm, files, workers=0, batch=1)))
    for w in workers:
        timed(f"{w} reading process(es), batches of {batch}", lambda w=w: sum(1 for _ in grade_paths(lm, files, workers=w, batch=batch)))
    timed(f"one at a time, reading here, batches of {batch}", lambda: sum(1 for _ in grade_paths(lm, files, workers=0, batch=batch)))
    timed("reading alone, here (decode, field of view, gradability)", lambda: sum(1 for _ in read_ahead(files, 0)))
    return {"weights": weights, "folder": str(folder), "images": len(files), "threads": torch.get_num_threads(),
            "device": describe(lm.device), "runs": runs,
            "size": list(Image.open(files[0]).size)}


def grade_report(r: dict[str, Any]) -> str:
    base = r["runs"][0]["images_per_s"]
    lines = [f"bench --grade: weights '{r['weights']}', {r['images']} photographs (the first {r['size'][0]}x{r['size'][1]}), "
             f"{r['threads']} torch threads in this process, device {r.get('device', 'cpu')}"]
    lines += [f"  {run['label']:<58} {run['images_per_s']:6.2f} images/s  ({run['seconds']:.1f} s, "
              f"{run['images_per_s'] / base:.2f}x the first)" for run in r["runs"]]
    return "\n".join(lines)

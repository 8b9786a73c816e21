"""Sanity checks of the attribution maps (Adebayo et al., 2018, "Sanity Checks for
Saliency Maps"): does a map change when the model it claims to explain changes?

- **Cascading model-parameter randomisation.** Starting from the trained model, layer 16
  (the linear layer) is re-initialised, then layer 15 as well, and so on down to layer 1:
  stage s has layers 16..s random, layers s-1..1 as trained. At every stage each method
  maps the grade the *trained* model chose (fixed across stages, so only the weights
  change), and the map is compared with the trained model's map by the Spearman rank
  correlation of the absolute maps over the field of view (the signed correlation is
  recorded too). A map that stays correlated with the trained map while the weights it
  should explain are random is not explaining the model.
- **Random logit.** On the trained model, the map of a grade it did not choose (drawn at
  random, seeded) against the map of the grade it chose, absolute and signed: a map that
  hardly depends on the grade says little about why *this* grade was chosen.

Choices, stated once (they are written into the output too):

- A re-initialised layer gets PyTorch's default initialisation (``reset_parameters``)
  under a seed fixed per (seed, layer), so stage s's random layers are the same for every
  photograph and do not depend on the order of the stages.
- Batch norm (``batchnorm="reset"``, the default): the whole block is re-initialised, as
  Adebayo et al. re-initialise all weights of a layer: the conv's weights and bias, and
  the BN's affine parameters (gamma = 1, beta = 0) and running statistics (mean 0,
  variance 1, i.e. BN becomes the identity in eval mode). Trained running statistics
  describe the trained conv's outputs; kept under a random conv they would be one more
  trained quantity left in a "random" layer and would rescale its outputs arbitrarily.
  ``batchnorm="keep"`` re-draws only the conv and keeps the whole BN as trained.
- The random map is drawn afresh at every stage (its seed depends on the stage), so its
  correlation is the level of chance (about 0), the floor a real method's correlation
  should fall to. A weight-independent map that is *not* re-drawn keeps correlation 1:
  the tests check that the measure detects that.
- Spearman: average ranks for ties (maps with many exact zeros, e.g. Grad-CAM's ReLU or
  inactive units); undefined (NaN, and left out of the mean) when a map is constant over
  the field of view. NumPy only (SciPy is not a dependency of the project).
- Intervals: 95% percentile bootstrap over photographs (``statistics.ratio_ci``), the
  same resamples for every method and stage.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..fundus import read_fundus
from ..model import LAYERS, N_GRADES, DRNet, plain_copy
from ..pictures import font
from ..provenance import command_line, machine
from ..serialise import dumps
from ..weights import LoadedModel
from .peers import Context, Method, Peers, StudyError
from .report import COLOURS, EXTRA_COLOURS, tag_of
from .sources import Sample
from .statistics import ratio_ci, resample_weights

BatchNorm = Literal["reset", "keep"]
STAGES: tuple[int, ...] = tuple(range(len(LAYERS), 0, -1))  # 16, 15, ..., 1
TRAINED = 0  # stage key of the trained model
KINDS = {"idrid": "IDRiD", "synthetic": "synthetic", "real": "real"}


# ------------------------------------------------------------------------------ Spearman
def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` (flattened), tied values sharing the mean of their
    positions: a map with many exact zeros must not rank them by memory order."""
    x = np.asarray(values).ravel()
    if x.size == 0:
        return np.zeros(0)
    order = np.argsort(x, kind="stable")
    s = x[order]
    new = np.empty(s.size, bool)
    new[0] = True
    np.not_equal(s[1:], s[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, s.size))
    ranks = np.empty(s.size, np.float64)
    ranks[order] = np.repeat(starts + (counts + 1) / 2.0, counts)
    return ranks


def _rank_pearson(ra: np.ndarray, rb: np.ndarray) -> float:
    a, b = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 else float("nan")


def spearman(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """Spearman's rank correlation of ``a`` and ``b`` (over ``where`` if given), with
    average ranks for ties; NaN when either is constant or a value is not finite."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    if where is not None:
        a, b = a[where], b[where]
    if a.size < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    return _rank_pearson(average_ranks(a), average_ranks(b))


# ------------------------------------------------------------------------------ randomisation
def layer_seed(seed: int, index: int) -> int:
    """The torch seed of layer ``index``'s re-initialisation (fixed per seed and layer)."""
    return int(np.random.SeedSequence([seed, 7, index]).generate_state(1)[0])


@torch.no_grad()
def randomise_layer(net: DRNet, index: int, seed: int, batchnorm: BatchNorm = "reset") -> None:
    """Re-initialise layer ``index`` (16: the linear layer; 1..15: conv + its BN) of ``net``
    in place with PyTorch's default initialisation, without touching the global RNG."""
    if batchnorm not in ("reset", "keep"):
        raise StudyError(f"batchnorm must be 'reset' or 'keep', not {batchnorm!r}")
    if not 1 <= index <= len(LAYERS):
        raise StudyError(f"layer must be 1..{len(LAYERS)}, not {index}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(layer_seed(seed, index))
        if index == len(LAYERS):
            net.linear.reset_parameters()
            return
        conv, bn = net.blocks()[index - 1]
        conv.reset_parameters()
        if batchnorm == "reset":
            bn.reset_parameters()  # gamma 1, beta 0, running mean 0, running variance 1


def cascade(lm: LoadedModel, seed: int, batchnorm: BatchNorm = "reset") -> Iterator[tuple[int, LoadedModel]]:
    """(stage, model) for stages 16, 15, ..., 1: stage s has layers 16..s re-initialised.

    Works on one copy of the caller's network (never on the caller's, which stays as it
    is) and randomises it further at each step: a yielded model is valid until the next.
    """
    net = plain_copy(lm.network)
    for stage in STAGES:
        randomise_layer(net, stage, seed, batchnorm)
        yield stage, dataclasses.replace(lm, network=net)


def frozen_cascade(lm: LoadedModel, seed: int, batchnorm: BatchNorm = "reset") -> list[tuple[int, LoadedModel]]:
    """Every stage's model at once (independent copies: 16 x a few MB for the paper's net)."""
    return [(s, dataclasses.replace(m, network=plain_copy(m.network))) for s, m in cascade(lm, seed, batchnorm)]


# ------------------------------------------------------------------------------ photographs
def idrid_photographs(folder: str | Path, n: int) -> list[Sample]:
    """The first ``n`` photographs ``IDRiD_XX.jpg`` under ``folder`` (by number), read as
    the quality study reads them; their lesion masks are not needed here."""
    root = Path(folder)
    if not root.is_dir():
        raise StudyError(f"{root}: not a folder")
    found = [p for p in root.rglob("*") if re.fullmatch(r"IDRiD_\d+\.jpe?g", p.name, re.I)]
    found.sort(key=lambda p: (int(re.search(r"\d+", p.name).group()), str(p)))  # type: ignore[union-attr]
    if not found:
        raise StudyError(f"{root}: no IDRiD_XX.jpg photographs found")
    return [Sample(p.name, read_fundus(p, name=p.name), None, None) for p in found[:n]]


# ------------------------------------------------------------------------------ the run
@dataclasses.dataclass
class _Timer:
    per_method: dict[str, float] = dataclasses.field(default_factory=dict)
    per_stage: dict[int, float] = dataclasses.field(default_factory=dict)

    def add(self, d: dict, key: Any, s: float) -> None:
        d[key] = d.get(key, 0.0) + s


def other_grade(chosen: int, seed: int, index: int) -> int:
    """The random-logit check's grade: one the model did not choose, seeded per photograph."""
    others = [g for g in range(N_GRADES) if g != chosen]
    return others[int(np.random.default_rng([seed, 11, index]).integers(len(others)))]


def _stage_seed(seed: int, stage: int) -> int:
    """Context seed (only the random map reads it): a fresh draw at every stage."""
    return seed if stage == TRAINED else int(np.random.SeedSequence([seed, 13, stage]).generate_state(1)[0])


def run_sanity(lm: LoadedModel, samples: Sequence[Sample], chosen: Sequence[Method], *, seed: int = 0,
               ig_steps: int = 8, batchnorm: BatchNorm = "reset", bootstrap: int = 1000, kind: str = "idrid",
               quiet: bool = False) -> dict[str, Any]:
    """Both checks on ``samples`` for every method in ``chosen``: the JSON document.

    The caller's ``lm`` is never modified (the stages are copies). Per photograph and
    method: Spearman of |map| (and of the signed map) at each stage against the trained
    model's map of the trained model's grade, and the random-logit correlations.
    """
    if not samples:
        raise StudyError("no photographs to check")
    started = time.perf_counter()
    timer = _Timer()
    trained = Peers(lm, ig_steps=ig_steps)
    stages = [(TRAINED, trained)] + [(s, Peers(m, ig_steps=ig_steps)) for s, m in frozen_cascade(lm, seed, batchnorm)]
    names = [m.name for m in chosen]
    images: list[dict[str, Any]] = []
    for i, sample in enumerate(samples):
        t_image = time.perf_counter()
        fov = sample.fundus.fov if sample.fundus.fov.any() else np.ones(sample.fundus.fov.shape, bool)
        grade = int(torch.argmax(trained.scores(trained.lm.normalisation.to_tensor(sample.fundus.image))[0]))
        other = other_grade(grade, seed, i)
        row: dict[str, Any] = {"name": sample.name, "grade": grade, "other_grade": other, "methods": {}}
        reference: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # method -> ranks of |map|, of map (FOV)
        for stage, peers in stages:
            t_stage = time.perf_counter()
            grades = (grade, other) if stage == TRAINED else (grade,)
            ctx = Context(peers, sample.fundus, grades, _stage_seed(seed, stage), i)
            for m in chosen:
                maps, seconds = ctx.run(m)
                timer.add(timer.per_method, m.name, seconds)
                v = np.asarray(maps[grade], np.float64)[fov]
                cell = row["methods"].setdefault(m.name, {"cascade_abs": {}, "cascade_signed": {}})
                if stage == TRAINED:
                    w = np.asarray(maps[other], np.float64)[fov]
                    reference[m.name] = (average_ranks(np.abs(v)), average_ranks(v))
                    cell["logit_abs"] = spearman(np.abs(w), np.abs(v))
                    cell["logit_signed"] = spearman(w, v)
                    continue
                ok = np.isfinite(v).all()
                ra, rs = reference[m.name]
                cell["cascade_abs"][stage] = _rank_pearson(average_ranks(np.abs(v)), ra) if ok else float("nan")
                cell["cascade_signed"][stage] = _rank_pearson(average_ranks(v), rs) if ok else float("nan")
            timer.add(timer.per_stage, stage, time.perf_counter() - t_stage)
        row["seconds"] = round(time.perf_counter() - t_image, 2)
        images.append(row)
        if not quiet:
            print(f"sanity: photograph {i + 1}/{len(samples)} {sample.name}: grade {grade} (random logit: {other}), "
                  f"{row['seconds']:.1f} s", file=sys.stderr, flush=True)
    doc = summarise(images, chosen, bootstrap, seed)
    doc.update({
        "model": {"name": lm.name, "sha256": lm.sha256, "widths": list(lm.network.widths), "title": lm.meta.get("title", "")},
        "data": {"kind": kind, "n": len(samples), "images": [r["name"] for r in images]},
        "command": command_line(default="python -m core sanity"),
        "machine": machine(),
        "settings": {
            "seed": seed, "ig_steps": ig_steps, "batchnorm": batchnorm, "bootstrap": bootstrap, "stages": list(STAGES),
            "torch_threads": torch.get_num_threads(),
            "methods": names,
            "grade": "the trained model's predicted grade, fixed across stages",
            "measure": "Spearman rank correlation over the field of view, average ranks for ties; 'abs': of |map| "
                       "(the headline, as Adebayo et al.), 'signed': of the map itself",
            "randomisation": "cumulative from layer 16 (linear) down to layer 1; PyTorch default init, seeded per layer; "
                             + ("conv weight and bias and the whole batch norm (gamma 1, beta 0, running mean 0, variance 1) "
                                "re-initialised" if batchnorm == "reset" else
                                "conv weight and bias re-initialised, batch norm (affine and running statistics) kept as trained"),
            "random_map": "re-drawn at every stage (seed depends on the stage): the level of chance",
            "random_logit": "map of a grade the model did not choose (uniform among the other four, seeded per photograph) "
                            "against the map of its grade, on the trained model",
            "intervals": "95% percentile bootstrap over photographs, the same resamples for every method and stage",
        },
        "labels": {m.name: m.label for m in chosen},
        "timings_s": {
            "wall": round(time.perf_counter() - started, 1),
            "per_photograph": round((time.perf_counter() - started) / len(samples), 1),
            "per_method_per_photograph": {k: round(v / len(samples), 2) for k, v in timer.per_method.items()},
            "per_stage_per_photograph": {str(k if k else "trained"): round(v / len(samples), 2) for k, v in timer.per_stage.items()},
        },
    })
    return doc


def _cell(values: Sequence[float], w: np.ndarray) -> dict[str, Any]:
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    value, low, high, _ = ratio_ci(np.where(ok, v, 0.0), ok.astype(np.float64), w)
    finite = np.isfinite([value, low, high])
    return {"value": value if finite[0] else None, "low": low if finite[1] else None,
            "high": high if finite[2] else None, "n": int(ok.sum())}


def summarise(images: list[dict[str, Any]], chosen: Sequence[Method], bootstrap: int, seed: int) -> dict[str, Any]:
    """Means over photographs with bootstrap intervals, per method and stage."""
    w = resample_weights(len(images), bootstrap, seed)
    out: dict[str, Any] = {}
    for m in chosen:
        cells = [r["methods"][m.name] for r in images]
        out[m.name] = {
            "family": m.family,
            "cascade_abs": {str(s): _cell([c["cascade_abs"][s] for c in cells], w) for s in STAGES},
            "cascade_signed": {str(s): _cell([c["cascade_signed"][s] for c in cells], w) for s in STAGES},
            "logit_abs": _cell([c["logit_abs"] for c in cells], w),
            "logit_signed": _cell([c["logit_signed"] for c in cells], w),
        }
    per_image = [r | {"methods": {k: {"cascade_abs": {str(s): v for s, v in c["cascade_abs"].items()},
                                      "cascade_signed": {str(s): v for s, v in c["cascade_signed"].items()},
                                      "logit_abs": c["logit_abs"], "logit_signed": c["logit_signed"]}
                                  for k, c in r["methods"].items()}} for r in images]
    return {"methods": out, "images": per_image}


# ------------------------------------------------------------------------------ report
def _fmt(c: dict[str, Any], total: int) -> str:
    """Value (interval); "[n=k]" when the map was constant (no correlation) on some images."""
    if c.get("value") is None:
        return "–"
    ci = f" ({c['low']:.2f}–{c['high']:.2f})" if c.get("low") is not None else ""
    return f"{c['value']:.2f}{ci}" + (f" [n={c['n']}]" if c["n"] < total else "")


def markdown(doc: dict[str, Any]) -> str:
    """Both tables, with the settings that decide the numbers."""
    s, labels, ms = doc["settings"], doc["labels"], doc["methods"]
    names, total = list(ms), doc["data"]["n"]
    lines = [
        f"### Sanity checks (Adebayo et al., 2018): model `{doc['model']['name']}`, {doc['data']['n']} "
        f"{KINDS.get(doc['data']['kind'], doc['data']['kind'])} images ({', '.join(doc['data']['images'])})",
        "",
        f"`{doc['command']}`. Randomisation: {s['randomisation']}. Each stage maps the trained model's grade; {s['measure']}. "
        f"Mean over photographs, 95% bootstrap interval in brackets ({s['bootstrap']} resamples). "
        f"Integrated Gradients with {s['ig_steps']} steps. The random map is {s['random_map']}.",
        "",
        "**Cascading randomisation**: Spearman of |map| against the trained model's |map| "
        "(1 = unchanged; a map that stays near 1 is not explaining the model). "
        "–: the map was constant over the field of view on every image (e.g. all zero), so no rank correlation; "
        "[n=k]: so on all but k images.",
        "",
        "| layers randomised | " + " | ".join(labels[n] for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for st in STAGES:
        what = "16" if st == 16 else f"16–{st}"
        lines.append(f"| {what} | " + " | ".join(_fmt(ms[n]["cascade_abs"][str(st)], total) for n in names) + " |")
    lines += [
        "",
        f"**Random logit**: {s['random_logit']}.",
        "",
        "| method | Spearman of \\|map\\| | Spearman of the signed map | cascade, all layers random (\\|map\\|) | "
        "cascade, all layers random (signed) |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        c = ms[n]
        lines.append(f"| {labels[n]} | {_fmt(c['logit_abs'], total)} | {_fmt(c['logit_signed'], total)} | "
                     f"{_fmt(c['cascade_abs']['1'], total)} | {_fmt(c['cascade_signed']['1'], total)} |")
    t = doc["timings_s"]
    per = ", ".join(f"{labels[k]} {v:.2f}" for k, v in t["per_method_per_photograph"].items())
    lines += ["", f"Timing: {t['wall']:.0f} s in all, {t['per_photograph']:.0f} s per photograph (17 models), on "
              f"{doc['machine']} with {s['torch_threads']} torch threads. Seconds per photograph over the 17 models, each method "
              f"charged in full for the passes it shares with others (as if run alone): {per}.", ""]
    return "\n".join(lines)


def plot(doc: dict[str, Any]) -> Image.Image:
    """Left: mean Spearman of |map| against the stage, one line per method, whiskers = 95%
    intervals. Right: the random-logit correlations (filled: |map|, open: signed)."""
    ms, labels = doc["methods"], doc["labels"]
    names = list(ms)
    colours = {n: COLOURS.get(n, EXTRA_COLOURS[j % len(EXTRA_COLOURS)]) for j, n in enumerate(names)}
    xs = ["trained", *map(str, STAGES)]
    vals = [c.get(k) for n in names for c in [*ms[n]["cascade_abs"].values(), ms[n]["logit_abs"], ms[n]["logit_signed"]]
            for k in ("low", "value", "high")]
    lo = min([-0.2, *[v for v in vals if v is not None]])
    lo = float(np.floor(lo / 0.2) * 0.2)
    hi = 1.0
    pw, ph, left, top, gap, lw = 760, 420, 80, 80, 90, 330
    rw = 300
    img = Image.new("RGB", (left + pw + gap + rw + 40 + lw, top + ph + 90), "white")
    d = ImageDraw.Draw(img)
    f_title, f_axis, f_tick = font(18), font(15), font(13)
    d.text((left, 12), f"Sanity checks: model {doc['model']['name']}, {doc['data']['n']} {KINDS.get(doc['data']['kind'], doc['data']['kind'])} "
           f"images (mean over images, whiskers: 95% bootstrap interval; a missing point: the map was constant, no correlation)",
           fill="black", font=f_title)
    d.text((left, 44), "cascading randomisation: Spearman of |map| with the trained model's", fill="black", font=f_axis)

    def y_of(v: float) -> float:
        return top + (hi - v) / (hi - lo) * ph

    def grid(x0: int, w: int) -> None:
        for tick in np.arange(lo, hi + 1e-9, 0.2):
            yy = y_of(tick)
            d.line([(x0, yy), (x0 + w, yy)], fill=(150, 150, 150) if abs(tick) < 1e-9 else (225, 225, 225))
            d.text((x0 - 8, yy), f"{tick:.1f}", fill="black", font=f_tick, anchor="rm")
        d.rectangle([x0, top, x0 + w, top + ph], outline="black")

    grid(left, pw)
    step = pw / len(xs)

    def x_of(i: int, j: float) -> float:  # methods side by side around each stage, so whiskers do not overlap
        return left + step * (i + 0.5) + (j - (len(names) - 1) / 2) * min(3.0, step / (2 * len(names)))

    for i, label in enumerate(xs):
        xx = x_of(i, (len(names) - 1) / 2)
        d.line([(xx, top + ph), (xx, top + ph + 5)], fill="black")
        d.text((xx, top + ph + 8), label, fill="black", font=f_tick, anchor="mt")
    d.text((left + pw / 2, top + ph + 30), "randomised down to layer (cumulative from 16)", fill="black", font=f_axis, anchor="mt")
    ylab = Image.new("RGB", (ph, 22), "white")
    ImageDraw.Draw(ylab).text((ph / 2, 11), "Spearman rank correlation", fill="black", font=f_axis, anchor="mm")
    img.paste(ylab.rotate(90, expand=True), (left - 75, top))
    for j, n in enumerate(names):
        c, width = colours[n], 4 if n == "paper_total" else 2
        cells = [{"value": 1.0, "low": 1.0, "high": 1.0}] + [ms[n]["cascade_abs"][str(s)] for s in STAGES]
        pts = [(x_of(i, j), y_of(cc["value"])) if cc["value"] is not None else None for i, cc in enumerate(cells)]
        run: list[tuple[float, float]] = []
        for p in [*pts, None]:
            if p is None:
                if len(run) > 1:
                    d.line(run, fill=c, width=width, joint="curve")
                run = []
            else:
                run.append(p)
        for i, cc in enumerate(cells):
            if cc["value"] is None:
                continue
            x = x_of(i, j)
            if cc.get("low") is not None:
                d.line([(x, y_of(cc["low"])), (x, y_of(cc["high"]))], fill=c, width=1)
            d.ellipse([x - 3, y_of(cc["value"]) - 3, x + 3, y_of(cc["value"]) + 3], fill=c)
    # right panel: random logit, one row per method
    x0 = left + pw + gap
    d.text((x0 - 30, 44), "random logit: other grade vs chosen", fill="black", font=f_axis)
    for tick in np.arange(lo, hi + 1e-9, 0.2):
        xx = x0 + (tick - lo) / (hi - lo) * rw
        d.line([(xx, top), (xx, top + ph)], fill=(150, 150, 150) if abs(tick) < 1e-9 else (225, 225, 225))
        d.text((xx, top + ph + 8), f"{tick:.1f}", fill="black", font=f_tick, anchor="mt")
    d.rectangle([x0, top, x0 + rw, top + ph], outline="black")
    d.text((x0 + rw / 2, top + ph + 30), "Spearman (filled: |map|, open: signed)", fill="black", font=f_axis, anchor="mt")
    row_h = ph / (len(names) + 1)
    for j, n in enumerate(names):
        y, c = top + row_h * (j + 1), colours[n]
        for key, dy, filled in (("logit_abs", -4, True), ("logit_signed", 4, False)):
            cc = ms[n][key]
            if cc["value"] is None:
                continue

            def xv(v: float) -> float:
                return x0 + (v - lo) / (hi - lo) * rw

            if cc.get("low") is not None:
                d.line([(xv(cc["low"]), y + dy), (xv(cc["high"]), y + dy)], fill=c, width=2)
            box = [xv(cc["value"]) - 4, y + dy - 4, xv(cc["value"]) + 4, y + dy + 4]
            d.ellipse(box, fill=c if filled else "white", outline=c, width=2)
    # legend
    lx = x0 + rw + 40
    for j, n in enumerate(names):
        y = top + row_h * (j + 1)
        d.line([(lx, y), (lx + 30, y)], fill=colours[n], width=4 if n == "paper_total" else 2)
        d.text((lx + 38, y), labels[n], fill="black", font=f_tick, anchor="lm")
    return img


def write_sanity(doc: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """sanity_<tag>.md, .json and .png in ``out`` (tag as the quality study's file names)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    tag = tag_of(doc)
    text = markdown(doc)
    files = [folder / f"sanity_{tag}.md", folder / f"sanity_{tag}.json", folder / f"sanity_{tag}.png"]
    files[0].write_text(text)
    files[1].write_text(dumps(doc, indent=1) + "\n")
    plot(doc).save(files[2], optimize=True)
    return {"markdown_text": text, "files": files}


__all__ = [
    "STAGES", "average_ranks", "cascade", "frozen_cascade", "idrid_photographs", "layer_seed", "markdown", "other_grade",
    "plot", "randomise_layer", "run_sanity", "spearman", "summarise", "write_sanity",
]

"""The study's report: the markdown tables with intervals, the comparisons with the
paper's total map, the plain-words summary paragraph (SUMMARY.md, one section per model
and data kind), and the mean deletion/insertion curves as PNG.

Everything here reads only the JSON document, so ``--render`` can redraw a report from
a JSON written earlier (on another machine) without running a model.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..pictures import font
from ..serialise import dumps
from .measures import HIGHER_IS_BETTER
from .peers import StudyError
from .report_lesions import cell, compared, faithfulness_table, lesion_tables, views_table
from .runner import ROLES

HEADLINE = ("auc", "auc_abs", "pointing", "precision", "recall", "mask_share")
FAITH = ("deletion_drop", "insertion_gain", "deletion", "insertion")
ARROW = {True: " ↑", False: " ↓"}
COLOURS = {
    "paper_total": (200, 30, 30), "paper_input": (240, 120, 20), "paper_layer5": (170, 110, 60),
    "paper_layer8": (225, 90, 160), "paper_layer11": (150, 40, 110), "gradient": (40, 110, 200),
    "gradient_x_input": (20, 170, 190), "integrated_gradients": (40, 150, 60), "lrp_epsilon": (120, 90, 200),
    "gradcam": (30, 40, 120), "random": (140, 140, 140),
}
EXTRA_COLOURS = [(90, 160, 30), (200, 160, 0), (0, 120, 120), (100, 100, 30)]


def _title(metric: str, s: dict[str, Any]) -> str:
    titles = {
        "auc": "pixel AUC", "auc_abs": "pixel AUC of magnitude", "pointing": f"pointing ≤{s['tolerance']:g} px", "precision": f"precision k={s['k']:g}",
        "recall": f"recall k={s['k']:g}", "mask_share": "mask share of FOV", "deletion": "deletion area",
        "insertion": "insertion area", "deletion_drop": "deletion drop (logits)", "insertion_gain": "insertion gain (logits)",
    }
    t = titles.get(metric, metric.replace("hit_", "").replace("_", " "))
    return t + ARROW.get(HIGHER_IS_BETTER[metric], "") if metric in HIGHER_IS_BETTER else t


def reproduce(command: str) -> str:
    """The recorded command without the options that only say where files go."""
    parts, out, skip = shlex.split(command), [], False
    for p in parts:
        if skip:
            skip = False
        elif p in ("--out", "--json"):
            skip = True
        elif p != "--quiet" and not p.startswith(("--out=", "--json=")):
            out.append(p)
    return shlex.join(out)


def tag_of(doc: dict[str, Any]) -> str:
    """File-name tag: the model's name (no extension) and, for real data, the data kind."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(doc["model"]["name"]).stem) or "model"
    kind = doc["data"]["kind"]
    return stem if kind == "synthetic" else f"{stem}_{kind}"


def _roles(doc: dict[str, Any]) -> list[str]:
    present = {k.rsplit("_", 1)[1] for cells in doc["methods"].values() for k in cells}
    return [r for r in ROLES if r in present]


def markdown(doc: dict[str, Any]) -> str:
    """The table with intervals, the comparisons with the paper's total map, timings, settings."""
    s, tag = doc["settings"], tag_of(doc)
    labels = doc["labels"]
    real = doc["data"]["kind"] == "real"
    lines = [
        f"## Explanation quality: model `{doc['model']['name']}`, {doc['data']['kind']} images",
        "",
        f"Command: `{reproduce(doc['command'])}`",
        "",
        f"Model `{doc['model']['name']}` (sha256 `{doc['model']['sha256']}`)"
        + (", trained on synthetic images only." if doc["model"]["synthetic"] else "."),
        f"Data: {doc['n_images']} images: {doc['data']['description']}."
        + (f" Held out: {doc['data']['held_out']}." if doc["data"].get("held_out") else ""),
    ]
    if real:
        names = doc["data"]["images"] or []
        distinct = sorted({n.rsplit(" (", 1)[0] for n in names})
        extra = len(names) - len(distinct)
        lines.append(f"Distinct real photographs: {len(distinct)} ({', '.join(distinct)})"
                     + (f"; the other {extra} images are flips/rotations of them, not new photographs, so the intervals "
                        "describe these variants, not a population." if extra else "."))
    else:
        lines.append(
            f"Mask metrics use the {doc['n_with_lesions']} images with lesions (grade-0 images have no positive pixels and are "
            f"left out); deletion/insertion use the first {s['faith_n']} images; Integrated Gradients ({s['ig_steps']} steps) "
            f"and Captum's LRP ran on the first {s['ig_n']} images only, so their rows come from those. "
            + (f"The true grade equalled the predicted one on {doc['n_true_equals_predicted']} of {doc['n_images']} images."
               if "true" in _roles(doc) else "No true grades (no grading file): only the predicted grade's map is measured.")
        )
    lines += ["Each cell: value (95% bootstrap interval over images). ↑ higher is better, ↓ lower is better.", ""]
    metrics = list(FAITH) if real else list(HEADLINE)
    for role in _roles(doc):
        lines += [f"### Map of the {role} grade", ""]
        cols = [_title(m, s) for m in metrics] + (["s / image"] if role == "predicted" else [])
        lines += ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for m in compared(doc):
            cells = doc["methods"][m]
            row = [cell(cells.get(f"{x}_{role}")) for x in metrics]
            if role == "predicted":
                t = doc["timings_s"].get(m)
                row.append(f"{t['mean_s']:.2f}" if t else "–")
            lines.append(f"| {labels[m]} | " + " | ".join(row) + " |")
        lines.append("")
    if not real:
        lines += faithfulness_table(doc)
        for role in _roles(doc):
            lines += lesion_tables(doc, role)
    lines += views_table(doc)
    lines += comparison_table(doc, metrics if real else [*metrics, *FAITH])
    lines += [
        f"![deletion curves](deletion_{tag}.png)", "", f"![insertion curves](insertion_{tag}.png)", "",
        f"![deletion, score change](deletion_raw_{tag}.png)", "", f"![insertion, score change](insertion_raw_{tag}.png)", "",
        "### How it was measured", "",
    ]
    keys = ("mask_metrics", "auc", "pointing", "k_sigma_mask", "hit_share", "clumped_chance", "detection",
            "positive_share")[8 if real else 0:] + ("faithfulness_map", "removal_baseline", "score_change", "faithfulness_normalisation",
            "curve_area", "bootstrap", "paper_layers", "gradient", "signed_sum_over_rgb", "integrated_gradients", "lrp",
            "gradcam", "random", "timing")
    lines += [f"- {k.replace('_', ' ')}: {s[k]}" for k in keys if k in s]
    lines.append(f"- steps (% of FOV pixels): 0, {', '.join(f'{100 * f:g}' for f in s['fractions'])}, 100")
    excluded = doc.get("faithfulness_excluded") or {}
    if excluded:
        lines.append("- left out of deletion/insertion (gap below the minimum): "
                     + ", ".join(f"{k.replace('faith_excluded_', '')}: {v}" for k, v in sorted(excluded.items())))
    for k, v in (doc.get("correlations") or {}).items():
        a, b = k.split("~")
        lines.append(f"- mean Pearson correlation over the FOV, {labels.get(a, a)} vs {labels.get(b, b)}: {v:.6f}")
    workers = s.get("workers", 1)
    threads = s.get("threads_per_worker") or (s["torch_threads"] // workers if workers > 1 else s["torch_threads"])
    lines.append(f"- run on {doc.get('machine', 'a machine not recorded')}: device {s['device']}, {workers} worker process(es) "
                 f"x {threads} torch threads, wall time {s['wall_s']:.0f} s")
    if s.get("timing_source"):
        lines.append(f"- timings (s / image) from: {s['timing_source']}")
    return "\n".join(lines) + "\n"


def comparison_table(doc: dict[str, Any], metrics: Sequence[str]) -> list[str]:
    """For each metric: which methods beat the paper's total map, tie with it, lose to it."""
    comp = doc.get("comparisons_with_paper_total") or {}
    if "paper_total" not in doc["methods"] or not comp:
        return []
    labels, s = doc["labels"], doc["settings"]
    lines = ["### Against the paper's total map (paired bootstrap of the difference, method − paper's total map)", "",
             "| map | metric | paper's total map | better than it | no clear difference | worse than it |", "|---|---|---|---|---|---|"]
    for role in _roles(doc):
        for metric in metrics:
            if metric == "mask_share":
                continue
            key = f"{metric}_{role}"
            groups: dict[str, list[str]] = {"paper loses": [], "tie": [], "paper wins": []}
            for m, cells in comp.items():
                c = cells.get(key) if m in labels else None
                if c:
                    groups[c["verdict"]].append(f"{labels[m]} ({c['difference']:+.3g})")
            if not any(groups.values()):
                continue
            ref = doc["methods"]["paper_total"].get(key)
            lines.append(f"| {role} | {_title(metric, s)} | {cell(ref)} | " + " | ".join(", ".join(g) or "–" for g in groups.values()) + " |")
    return [*lines, ""]


def summary_paragraph(doc: dict[str, Any]) -> str:
    """Plain words for the README: where the paper's method stands, where it loses."""
    s, labels, comp = doc["settings"], doc["labels"], doc.get("comparisons_with_paper_total") or {}
    real = doc["data"]["kind"] == "real"
    idrid = doc["data"]["kind"] == "idrid"
    role = "predicted"
    ref = doc["methods"].get("paper_total", {})
    metrics = (["deletion_drop", "insertion_gain"] if real else
               ["auc", "auc_abs", "pointing", "precision", "recall", "deletion_drop", "insertion_gain"])
    names = {"auc": "pixel AUC (signed map)", "auc_abs": "pixel AUC of the map's magnitude", "pointing": f"the pointing game (≤{s['tolerance']:g} px)", "precision": f"precision of the k={s['k']:g} mask",
             "recall": f"recall of the k={s['k']:g} mask", "deletion": "deletion area (lower is better)", "insertion": "insertion area",
             "deletion_drop": "deletion drop (logits)", "insertion_gain": "insertion gain (logits)"}
    if real:
        distinct = sorted({n.rsplit(" (", 1)[0] for n in doc["data"]["images"] or []})
        head = (f"**Faithfulness on real photographs** (`{reproduce(doc['command'])}`; model `{doc['model']['name']}`): "
                f"{len(distinct)} distinct real photograph{'s' if len(distinct) != 1 else ''} ({', '.join(distinct)})"
                + (f", measured as {doc['n_images']} images with its flips and rotations (not independent samples)" if doc["n_images"] > len(distinct) else "")
                + ", map of the predicted grade, blurred removal baseline. ")
    else:
        what = (f"{doc['n_images']} IDRiD photographs with hand-drawn lesion masks" if idrid else
                f"{doc['n_images']} held-out synthetic images, {doc['n_with_lesions']} with lesions")
        head = (f"**Do the highlighted pixels sit on the lesions?** (`{reproduce(doc['command'])}`; model `{doc['model']['name']}`"
                + (", trained on synthetic images only" if doc["model"]["synthetic"] else "")
                + f"): {what}; "
                f"deletion/insertion on the first {s['faith_n']}, Integrated Gradients and LRP on the first {s['ig_n']} "
                f"({s['ig_steps']} steps). Map of the predicted grade; 95% bootstrap intervals in brackets. ")
    parts = [head]
    figures = ", ".join(f"{names[m]} {cell(ref.get(f'{m}_{role}'))}" for m in metrics if ref.get(f"{m}_{role}"))
    if figures:
        parts.append(f"The paper's total map: {figures}. ")
    for m in metrics:
        key = f"{m}_{role}"
        verdicts = {x: c[key]["verdict"] for x, c in comp.items() if key in c}
        cells = {x: doc["methods"][x].get(key) for x in compared(doc)
                 if doc["methods"][x].get(key) and doc["methods"][x][key].get("value") is not None}
        best = max(cells, key=lambda x: cells[x]["value"] * (1 if HIGHER_IS_BETTER[m] else -1), default=None)
        losses = [labels[x] for x, v in verdicts.items() if v == "paper loses"]
        if losses:
            parts.append(f"**On {names[m]} it loses** to {', '.join(losses)}"
                         + (f" (best: {labels[best]}, {cell(cells[best])})" if best else "") + ". ")
        elif verdicts and all(v == "paper wins" for v in verdicts.values()):
            parts.append(f"On {names[m]} it beats every other method. ")
        elif verdicts:
            wins = [labels[x] for x, v in verdicts.items() if v == "paper wins"]
            parts.append(f"On {names[m]} no method is clearly better" + (f"; it is clearly better than {', '.join(wins)}" if wins else "") + ". ")
        if verdicts.get("random") in ("tie", "paper loses"):
            parts.append(f"**It does not beat the random map on {names[m]}.** ")
            if m in ("deletion", "insertion", "deletion_drop", "insertion_gain"):
                parts.append("(Scattered random pixels alone move this network's score that much: pixel-wise "
                             f"{m} rewards scattered maps as well as faithful ones.) ")
    corr = doc.get("correlations") or {}
    if corr:
        same = all(v > 0.999 for v in corr.values())
        parts.append(("The paper's input map is, up to rounding and its 1e-5 activity threshold, the same map as "
                      if same else "Correlation of the paper's input map with ")
                     + " and ".join(f"{labels.get(k.split('~')[1], k)} (correlation {v:.5f})" for k, v in corr.items()) + ". ")
    t = doc["timings_s"]
    if t and not real:
        parts.append("Seconds per image: " + ", ".join(f"{labels[m]} {t[m]['mean_s']:.2f}" for m in compared(doc) if m in t) + ".")
    return "".join(parts).strip()


def update_summary(path: Path, tag: str, text: str) -> None:
    """Replace this tag's section of SUMMARY.md (other runs' sections are kept)."""
    begin, end = f"<!-- quality:{tag} -->", f"<!-- /quality:{tag} -->"
    old = path.read_text() if path.is_file() else ""
    block = f"{begin}\n{text}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: block, old) if begin in old else (old.rstrip() + "\n\n" + block if old.strip() else block)
    path.write_text(new.strip() + "\n")


def plot_curves(doc: dict[str, Any], kind: str) -> Image.Image:
    """Mean deletion or insertion curves, one panel per role, one line per method."""
    s, labels = doc["settings"], doc["labels"]
    xs = ["0", *(f"{100 * f:g}" for f in s["fractions"]), "100"]
    panels = [(r, {m: doc["curves"][f"{m}|{r}|{kind}"] for m in doc["methods"] if f"{m}|{r}|{kind}" in doc["curves"]})
              for r in ROLES]
    panels = [(r, c) for r, c in panels if c]
    if not panels:
        panels = [("predicted", {})]
    raw = kind.endswith("_raw")
    base_kind = kind.removesuffix("_raw")
    ys = [v for _, c in panels for cur in c.values() for v in cur["mean"]] + [0.0, 1.0]
    span = max(ys) - min(ys)
    step = next((t for t in (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0) if span / t <= 10),
                10.0 ** np.ceil(np.log10(max(span, 1e-9) / 10)))
    lo, hi = np.floor(min(ys) / step) * step, np.ceil(max(ys) / step) * step
    pw, ph, left, top, gap, legend_w = 520, 380, 80, 70, 100, 300
    width = left + len(panels) * pw + (len(panels) - 1) * gap + 40 + legend_w
    img = Image.new("RGB", (width, top + ph + 80), "white")
    d = ImageDraw.Draw(img)
    f_title, f_axis, f_tick = font(18), font(15), font(13)
    what = "replaced by" if base_kind == "deletion" else "revealed on"
    d.text((left, 12), f"{base_kind.capitalize()}: top-scoring FOV pixels {what} the blurred image; model {doc['model']['name']}, "
           f"{doc['data']['kind']} images", fill="black", font=f_title)
    colours: dict[str, tuple[int, int, int]] = {}
    shown = set(compared(doc))
    panels = [(r, {m: c for m, c in curves.items() if m in shown}) for r, curves in panels]
    for pi, (role, curves) in enumerate(panels):
        x0 = left + pi * (pw + gap)
        n = next(iter(curves.values()))["n"] if curves else 0
        d.text((x0, 42), f"map of the {role} grade (mean over {n} images)", fill="black", font=f_axis)

        def px(i: float, y: float, x0: int = x0) -> tuple[float, float]:
            return x0 + i / (len(xs) - 1) * pw, top + (hi - y) / (hi - lo) * ph

        for tick in np.arange(lo, hi + step / 2, step):
            _, yy = px(0, tick)
            strong = abs(tick) < 1e-9 or (not raw and abs(tick - 1) < 1e-9)
            d.line([(x0, yy), (x0 + pw, yy)], fill=(170, 170, 170) if strong else (225, 225, 225))
            d.text((x0 - 8, yy), f"{tick:g}", fill="black", font=f_tick, anchor="rm")
        for i, label in enumerate(xs):
            xx, _ = px(i, lo)
            d.line([(xx, top + ph), (xx, top + ph + 5)], fill="black")
            d.text((xx, top + ph + 8), f"{label}%", fill="black", font=f_tick, anchor="mt")
        d.rectangle([x0, top, x0 + pw, top + ph], outline="black")
        d.text((x0 + pw / 2, top + ph + 30), f"share of FOV pixels {'removed' if base_kind == 'deletion' else 'revealed'} (top-scoring first)",
               fill="black", font=f_axis, anchor="mt")
        ylab = Image.new("RGB", (ph, 22), "white")
        ylabel = ("score change, logits (from the " + ("photograph's" if base_kind == "deletion" else "blurred image's") + " score)"
                  if raw else "normalised score of the grade")
        ImageDraw.Draw(ylab).text((ph / 2, 11), ylabel, fill="black", font=f_axis, anchor="mm")
        img.paste(ylab.rotate(90, expand=True), (x0 - 75, top))
        for j, (m, cur) in enumerate(curves.items()):
            c = colours.setdefault(m, COLOURS.get(m, EXTRA_COLOURS[j % len(EXTRA_COLOURS)]))
            pts = [px(i, y) for i, y in enumerate(cur["mean"])]
            d.line(pts, fill=c, width=4 if m == "paper_total" else 2, joint="curve")
            for p in pts:
                d.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill=c)
    lx = left + len(panels) * pw + (len(panels) - 1) * gap + 40
    for j, (m, c) in enumerate(colours.items()):
        y = top + 10 + 24 * j
        d.line([(lx, y), (lx + 30, y)], fill=c, width=4 if m == "paper_total" else 2)
        d.text((lx + 38, y), labels[m], fill="black", font=f_tick, anchor="lm")
    return img


def write_report(doc: dict[str, Any], out: Path, json_path: Path | None = None) -> dict[str, Any]:
    """quality_<tag>.md/.json, deletion_<tag>.png, insertion_<tag>.png and SUMMARY.md in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    tag = tag_of(doc)
    text = markdown(doc)
    files = [out / f"quality_{tag}.md", out / f"quality_{tag}.json"]
    files[0].write_text(text)
    blob = dumps(doc, indent=1)
    files[1].write_text(blob + "\n")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(blob + "\n")
        files.append(json_path)
    for kind in ("deletion", "insertion", "deletion_raw", "insertion_raw"):
        files.append(out / f"{kind}_{tag}.png")
        plot_curves(doc, kind).save(files[-1], optimize=True)
    update_summary(out / "SUMMARY.md", tag, summary_paragraph(doc))
    files.append(out / "SUMMARY.md")
    return {"markdown_text": text, "files": files}


def read_document(path: str | Path) -> dict[str, Any]:
    """A JSON document this study wrote (for ``--render`` and ``--timings-from``)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise StudyError(f"{path}: not a quality JSON ({type(e).__name__})") from None
    if not isinstance(doc, dict):
        raise StudyError(f"{path}: not a quality JSON (not an object)")
    return doc


def with_timings(doc: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the timings of ``other`` (a run made to time the methods), saying so."""
    o = other["settings"]
    n = max((t["n"] for t in other["timings_s"].values()), default=0)
    return doc | {
        "timings_s": other["timings_s"],
        "settings": doc["settings"] | {
            "timing_source": f"`{reproduce(other['command'])}`: {n} images on device {o['device']} with {o['torch_threads']} torch "
                             f"threads in {o.get('workers', 1)} process, on a machine with {other.get('machine', 'CPUs not recorded')}",
        },
    }


__all__ = [
    "COLOURS", "HEADLINE", "comparison_table", "markdown", "plot_curves", "read_document", "reproduce", "summary_paragraph",
    "tag_of", "update_summary", "with_timings", "write_report",
]

"""The report's lesion-level tables (hits against the clumped chance, detection by type
and size, positive evidence on lesions), the score-change faithfulness table, and the
candidate views with the rule's choice. Reads only the JSON document, as ``report``."""

from __future__ import annotations

from typing import Any

from .lesions import SIZE_BINS


def cell(c: dict[str, Any] | None, digits: int = 3) -> str:
    """value (low–high), or – where undefined."""
    if not c or c.get("value") is None:
        return "–"
    lo, hi = c.get("low"), c.get("high")
    ci = f" ({lo:.{digits}f}–{hi:.{digits}f})" if lo is not None and hi is not None else ""
    return f"{c['value']:.{digits}f}{ci}"


def compared(doc: dict[str, Any]) -> list[str]:
    """The methods of the main tables: everything but the candidate views."""
    fam = doc.get("families") or {}
    return [m for m in doc["methods"] if fam.get(m) != "view"]


def _types(doc: dict[str, Any], prefix: str, role: str) -> list[str]:
    return sorted({k[len(prefix):].rsplit("_", 1)[0] for cells in doc["methods"].values() for k in cells
                   if k.startswith(prefix) and k.endswith(f"_{role}")})


def lesion_tables(doc: dict[str, Any], role: str = "predicted") -> list[str]:
    """Hits per type against the clumped chance; detection by type and by size; positive share."""
    labels, s = doc["labels"], doc["settings"]
    signed = doc.get("signed") or {}
    rows = compared(doc)
    types = _types(doc, "hit_", role)
    lines: list[str] = []
    if types and any(f"chance_hit_{types[0]}_{role}" in doc["methods"][m] for m in rows):
        lines += [f"### Lesions touched by the k = {s['k']:g} mask, against the clumped chance (map of the {role} grade)", "",
                  "Each cell: share of lesion instances the mask touches / the share its own mask touches when moved at "
                  "random within the field of view (rotated about the centre and mirrored: same pixels, same clumps). "
                  "A method beats chance where the first figure clearly exceeds the second.", "",
                  "| method | " + " | ".join(t.replace("_", " ") for t in types) + " | precision / chance |",
                  "|---" * (len(types) + 2) + "|"]
        for m in rows:
            c = doc["methods"][m]

            def pair(key: str, c: dict[str, Any] = c) -> str:
                a, b = c.get(f"{key}_{role}"), c.get(f"chance_{key}_{role}")
                if not a or a.get("value") is None:
                    return "–"
                return f"{cell(a, 2)} / {b['value']:.2f}" if b and b.get("value") is not None else cell(a, 2)

            lines.append(f"| {labels[m]} | " + " | ".join(pair(f"hit_{t}") for t in types) + f" | {pair('precision')} |")
        lines.append("")
    det_types = _types(doc, "det_", role)
    det_types = [t for t in det_types if not t.startswith("size_")]
    sizes = [name for _, _, name in SIZE_BINS if any(f"det_size_{name}_{role}" in doc["methods"][m] for m in rows)]
    if det_types:
        ref = doc["methods"].get("paper_total") or doc["methods"][rows[0]]
        count = {t: (ref.get(f"det_{t}_{role}") or {}).get("n", 0) for t in det_types}
        lines += [f"### Lesions with net positive evidence, by type and size (map of the {role} grade)", "",
                  "Share of lesion instances over which the map sums to more than 0: for the exact maps, lesions whose "
                  "own contribution to the score is positive. Pooled over images; sizes in model-input pixels "
                  "(640 px side). Unsigned maps (gradient magnitude, Grad-CAM) are positive everywhere: left out. "
                  "A map blind to lesions scores about 0.5 (the random row).", "",
                  "| method | " + " | ".join(f"{t.replace('_', ' ')} (images {count[t]})" for t in det_types)
                  + "".join(f" | size {z}" for z in sizes) + " | positive evidence on lesions | enrichment |",
                  "|---" * (len(det_types) + len(sizes) + 3) + "|"]
        for m in rows:
            if signed.get(m) is False:
                continue
            c = doc["methods"][m]
            lines.append(f"| {labels[m]} | " + " | ".join(cell(c.get(f"det_{t}_{role}"), 2) for t in det_types)
                         + "".join(f" | {cell(c.get(f'det_size_{z}_{role}'), 2)}" for z in sizes)
                         + f" | {cell(c.get(f'pos_share_{role}'), 3)} | {cell(c.get(f'enrichment_{role}'), 2)} |")
        share = ref.get(f"lesion_share_{role}")
        lines += ["", "Positive evidence on lesions: the share of the map's positive mass in the field of view that lies on "
                  "lesion pixels; enrichment: that share over the lesions' share of the field of view"
                  + (f" ({share['value']:.3f} on average)" if share else "") + "; 1 means no preference for lesions.", ""]
    return lines


def faithfulness_table(doc: dict[str, Any]) -> list[str]:
    """Deletion drop and insertion gain in logits beside the normalised areas, with counts."""
    role = "predicted"
    rows = [m for m in compared(doc) if f"deletion_drop_{role}" in doc["methods"][m]]
    if not rows:
        return []
    labels = doc["labels"]
    excluded = (doc.get("faithfulness_excluded") or {}).get(role, 0)
    n = (doc["methods"][rows[0]].get(f"deletion_drop_{role}") or {}).get("n", 0)
    lines = ["### Faithfulness: deletion and insertion (map of the predicted grade)", "",
             f"Score change in logits, on all {n} images: **deletion drop** = original score − mean score while the "
             "top-ranked pixels are replaced by the blurred image; **insertion gain** = mean score while they are revealed "
             "on the blurred image − its score. Higher is better for both. The normalised areas (1 = original score, 0 = "
             "fully blurred) exist only where blurring the whole field of view lowers the score by at least "
             f"{doc['settings']['min_gap']:g}: " + (f"{n - excluded} of {n} images here. " if n else "")
             + "Elsewhere the division by that gap flips or explodes the curve.", "",
             "| method | deletion drop (logits) ↑ | insertion gain (logits) ↑ | normalised deletion area ↓ | normalised insertion area ↑ |",
             "|---|---|---|---|---|"]
    for m in rows:
        c = doc["methods"][m]
        lines.append(f"| {labels[m]} | {cell(c.get(f'deletion_drop_{role}'), 2)} | {cell(c.get(f'insertion_gain_{role}'), 2)} | "
                     f"{cell(c.get(f'deletion_{role}'))} | {cell(c.get(f'insertion_{role}'))} |")
    return [*lines, ""]


def views_table(doc: dict[str, Any]) -> list[str]:
    """The candidate views ranked by the rule, the winner, and the two-fold check."""
    sel = doc.get("view_selection")
    if not sel:
        return []
    role = "predicted"
    lines = ["### Candidate lesion-scale views", "",
             f"Rule (fixed before the run): {sel['rule']}. **Chosen: {sel['winner_label']}** (`{sel['winner']}`); "
             f"`core.views.LESION_VIEW` is `{sel['in_core']}`"
             + (" (the same)." if sel["winner"] == sel["in_core"] else " (**not the same: update core.views.LESION_VIEW**)."),
             ""]
    for f in sel.get("folds") or []:
        lines.append(f"- Chosen on {len(f['chosen_on'])} of the photographs (every other one): `{f['chosen']}`; on the other "
                     f"half it scores {f['score_on_other_half']:.3f} (the overall choice there: "
                     f"{f['overall_winner_on_other_half']:.3f}).")
    lines += ["", "| view | sums to the score | score of the rule | pixel AUC ↑ | pointing ↑ | precision k=2 ↑ | recall k=2 ↑ "
              "| positive evidence on lesions ↑ |", "|---|---|---|---|---|---|---|---|"]
    for r in sel["ranking"]:
        c = doc["methods"].get(r["method"], {})
        score = f"{r['score']:.3f}" if r["score"] is not None else "–"
        name = f"**{r['label']}**" if r["name"] == sel["winner"] else r["label"]
        lines.append(f"| {name} | {'yes' if r['exact'] else 'no'} | {score} | {cell(c.get(f'auc_{role}'))} | "
                     f"{cell(c.get(f'pointing_{role}'))} | {cell(c.get(f'precision_{role}'))} | {cell(c.get(f'recall_{role}'))} | "
                     f"{cell(c.get(f'pos_share_{role}'))} |")
    return [*lines, ""]


__all__ = ["cell", "compared", "faithfulness_table", "lesion_tables", "views_table"]

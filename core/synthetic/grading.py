"""The international clinical DR scale (docs/method.md section 7) as rules on lesions.

Why a module of its own: the grade of a synthetic image is *derived* from what was
painted, never a label, so the rules must stand apart from the painting (and be
testable on plain counts). Nothing here knows about pixels; everything else in the
package may import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

LESION_TYPES = (
    "microaneurysm",
    "haemorrhage",
    "hard_exudate",
    "cotton_wool_spot",
    "venous_beading",
    "irma",
    "neovascularisation",
    "preretinal_haemorrhage",
)
# Quadrants are taken around the fovea: a single macula-centred 45-degree field has
# little retina nasal to the disc, so disc-centred quadrants would be very unequal.
QUADRANTS = ("superotemporal", "superonasal", "inferonasal", "inferotemporal")


def grade_from_lesions(
    counts: Mapping[str, int],
    haemorrhages_per_quadrant: Sequence[int] = (0, 0, 0, 0),
    venous_beading_quadrants: int = 0,
) -> int:
    """The international clinical DR grade (0..4) implied by the lesions present.

    ``counts`` maps lesion types (``LESION_TYPES``; missing ones count 0) to their
    number of instances. The severe-NPDR rules need where the lesions are: the
    intraretinal haemorrhages in each of the 4 quadrants and the number of quadrants
    with venous beading; IRMA needs only a count (IRMA in one quadrant suffices).
    Rules, first that holds: 4 if any neovascularisation or pre-retinal/vitreous
    haemorrhage; 3 if more than 20 haemorrhages in each of the 4 quadrants, or venous
    beading in 2 or more quadrants, or any IRMA; 2 if any haemorrhage, hard exudate,
    cotton-wool spot or venous beading (more than microaneurysms only); 1 if any
    microaneurysm; else 0.
    """
    unknown = set(counts) - set(LESION_TYPES)
    if unknown:
        raise ValueError(f"unknown lesion types: {sorted(unknown)}")
    n = {t: int(counts.get(t, 0)) for t in LESION_TYPES}
    if any(v < 0 for v in n.values()):
        raise ValueError("lesion counts must be >= 0")
    hpq = tuple(int(v) for v in haemorrhages_per_quadrant)
    if len(hpq) != 4 or min(hpq) < 0:
        raise ValueError("haemorrhages_per_quadrant must be 4 counts >= 0")
    if sum(hpq) > n["haemorrhage"]:
        raise ValueError("more haemorrhages in the quadrants than counted")
    vbq = int(venous_beading_quadrants)
    if not 0 <= vbq <= min(4, n["venous_beading"]):
        raise ValueError("venous_beading_quadrants must be 0..min(4, venous beading count)")

    if n["neovascularisation"] > 0 or n["preretinal_haemorrhage"] > 0:
        return 4
    if min(hpq) > 20 or vbq >= 2 or n["irma"] > 0:
        return 3
    if n["haemorrhage"] or n["hard_exudate"] or n["cotton_wool_spot"] or n["venous_beading"]:
        return 2
    if n["microaneurysm"] > 0:
        return 1
    return 0

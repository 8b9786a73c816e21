"""Synthetic colour fundus photographs with exact lesion masks and clinical grades.

Why this exists: public DR data sets cannot be bundled, and they give a grade per
image but (almost) never a mask per lesion, so one cannot measure whether an
attribution map points at lesions (docs/method.md section 6: "lack of DR images with
manually marked lesions"). Here every lesion is painted by us, so its mask is known
to the pixel, and the grade is *derived* from what was painted by the international
clinical scale (docs/method.md section 7) instead of being a label. The same images
train the bundled demo model.

How an image is made (all randomness from ``numpy.random.Generator``s seeded from
the seed; OpenCV drawing is deterministic):

1. the eye (stream 0): field of view, choroidal background, macula, optic disc and a
   branching vessel tree grown by a random walk from the disc;
2. the lesions (stream 2, re-drawn with a fresh sub-stream until the grade is the
   requested one): each instance is rendered into an alpha patch, placed where it
   neither leaves the field of view nor touches another lesion *type*, and
   composited; its mask is ``alpha >= MASK_ALPHA`` inside the field of view;
3. the camera (stream 1): vignetting, uneven illumination, colour balance, gamma,
   blur and sensor noise, applied after the lesions so that lesions are imaged like
   the rest of the eye.

Because the streams are independent, ``generate(seed, lesions=False)`` renders the
very same eye and camera without lesions: the counterfactual that the tests use to
show that lesions are visible, and that attribution studies can use as a baseline.

The modules, each importing only those above it:

- ``grading``: the clinical rules (``grade_from_lesions``, ``LESION_TYPES``, ``QUADRANTS``);
- ``anatomy``: the eye (field of view, background, macula, disc, vessel tree);
- ``lesions``: lesion patches, their placement and compositing, the masks;
- ``camera``: the photograph of the painted eye;
- ``generator``: ``SyntheticFundus``, ``generate``, ``generate_many`` and their seeding;
- ``sheets``: outlines, the contact sheet and the README samples.
"""

from .generator import SIZE, SyntheticFundus, generate, generate_many, grade_of, image_seed
from .grading import LESION_TYPES, QUADRANTS, grade_from_lesions
from .lesions import MASK_ALPHA
from .sheets import OVERLAY_COLOURS, overlay, save_overview, save_samples

__all__ = [
    "LESION_TYPES",
    "MASK_ALPHA",
    "OVERLAY_COLOURS",
    "QUADRANTS",
    "SIZE",
    "SyntheticFundus",
    "generate",
    "generate_many",
    "grade_from_lesions",
    "grade_of",
    "image_seed",
    "overlay",
    "save_overview",
    "save_samples",
]

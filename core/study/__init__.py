"""``python -m core quality``: do the highlighted pixels sit on the lesions, and are they
what the score depends on? Measured beside peer attribution methods.

The images: synthetic ones (the generator paints every lesion, so its masks are exact),
real photographs with hand-drawn masks in the IDRiD segmentation layout (``--idrid``),
or real photographs without masks (``--real``: deletion/insertion only). For each image
and for the maps of its true and of its predicted grade, within the field of view (FOV):

- pixel AUC-ROC of the map against the union of the lesion masks (signed and |map|);
- pointing game: the map's maximum lies within ``tolerance`` px of a lesion;
- precision and recall of the k-sigma mask (``threshold_mask``: positive and above
  mean + k std over the FOV), and per lesion type the share of lesion instances
  (8-connected components of that type's mask) that the mask touches, beside the share
  the same mask touches when moved at random (rotated and mirrored: the clumped chance);
- per type and per size, the share of lesions over which the map sums to more than 0,
  and the share of the map's positive evidence that lies on lesions;
- deletion and insertion of the predicted grade's map (faithfulness): the top-scoring FOV
  pixels are replaced by a heavily blurred copy of the image (deletion), or revealed on
  that blurred copy (insertion); the score changes in logits, and the normalised areas
  where blurring the whole FOV lowers the score.

``--views`` adds the candidate exact lesion-scale views (``core.study.candidates``) and
the rule that chose ``core.views.LESION_VIEW``. Images without lesions (grade 0) have no
positives: they are left out of every mask metric, but not out of deletion/insertion.
Every figure comes with a 95% bootstrap interval over images (the same resamples for
every method, so differences are paired).

Cost on 2 CPU cores with ``--workers 2`` (one torch thread each): the published weights
on the 54 IDRiD photographs, every measure on every photograph, 948 s; the defaults on
synthetic images (500, deletion/insertion, Integrated Gradients and LRP on the first 50)
about 21 minutes. ``--quick`` checks the whole path in well under a minute. ``--device
cuda`` moves the peers and the forward passes to a GPU (the paper's method stays on the
CPU); neither option changes the numbers beyond float rounding.
"""

# Layout (imports go one way, top to bottom): peers (the compared methods), sources (the
# images), measures (per-image measures), statistics (bootstrap), runner (the run and its
# JSON document), report (markdown, plots, SUMMARY.md). Errors a user can fix are
# StudyError (a core.errors.CoreError). The command is core.cli.quality; this docstring
# is its --help description.

from .measures import (
    HIGHER_IS_BETTER,
    Faithfulness,
    Key,
    Truth,
    blurred,
    components,
    curve_area,
    descending_ranks,
    faithfulness,
    instances_hit,
    mask_metrics,
    mask_precision_recall,
    near,
    pearson,
    perturbation_scores,
    pixel_auc,
    pointing_hit,
)
from .peers import DEFAULT_LAYERS, Context, Maps, Method, Peers, StudyError, methods, random_map
from .report import markdown, plot_curves, read_document, reproduce, summary_paragraph, tag_of, with_timings, write_report
from .runner import (
    FRACTIONS,
    ROLES,
    ImageResult,
    Settings,
    Study,
    describe,
    evaluate,
    evaluate_image,
    run_study,
    select_tasks,
    summarise,
)
from .sources import (
    DIHEDRAL,
    IDRID_TYPES,
    Sample,
    Task,
    held_out,
    idrid_grades,
    idrid_samples,
    real_samples,
    sample_of,
    synthetic_samples,
    synthetic_tasks,
)
from .statistics import paired_difference, ratio_ci, resample_weights

__all__ = [
    "DEFAULT_LAYERS", "DIHEDRAL", "FRACTIONS", "HIGHER_IS_BETTER", "IDRID_TYPES", "ROLES", "Context", "Faithfulness",
    "ImageResult", "Key", "Maps", "Method", "Peers", "Sample", "Settings", "Study", "StudyError", "Task", "Truth",
    "blurred", "components", "curve_area", "describe", "descending_ranks", "evaluate", "evaluate_image", "faithfulness",
    "held_out", "idrid_grades", "idrid_samples", "instances_hit", "markdown", "mask_metrics", "mask_precision_recall",
    "methods", "near", "paired_difference", "pearson", "perturbation_scores", "pixel_auc", "plot_curves", "pointing_hit",
    "random_map", "ratio_ci", "read_document", "real_samples", "reproduce", "resample_weights", "run_study",
    "sample_of", "select_tasks", "summarise", "summary_paragraph", "synthetic_samples", "synthetic_tasks", "tag_of",
    "with_timings", "write_report",
]

"""Interpretable diabetic retinopathy grading: the network and score propagation of
de la Torre, Valls & Puig (2017/2020), with no user interface.

    model = core.load_weights("paper")        # or "idrid", "demo", or a path
    fundus = core.read_fundus("eye.jpg")
    exp = core.explain(model, fundus)
    exp.scores, exp.probabilities, exp.grade
    exp.layer(12).input_dependent              # 5 x 20 x 20
    exp.in_input_space(12, "constant")         # 5 x 640 x 640
    exp.total()                                # 5 x 640 x 640, sums to the scores
    exp.mask(grade=4, k=2.0)                   # pixels above k sigma
    core.feature_map(model, fundus, grade=4, feature=17).total  # where one layer-15 feature lies
"""

from . import card, device, marks, regions, views
from .device import DeviceError
from .errors import CoreError
from .explanation import PARTS, Explanation, FeatureMap, LayerMaps, explain, feature_map, threshold_mask
from .fundus import IMAGE_SUFFIXES, MAX_BYTES, Assessment, Check, Fundus, FundusReadError, read_fundus
from .model import CONV_LAYERS, GRADE_NAMES, INPUT_SIZE, LAYERS, DRNet, LayerSpec, layer
from .weights import (
    DEFAULT,
    REGISTRY,
    LoadedModel,
    WeightsEntry,
    WeightsError,
    default_name,
    fetch,
    is_available,
    load_weights,
)

__all__ = [
    "card",
    "device",
    "DeviceError",
    "marks",
    "regions",
    "views",
    "CONV_LAYERS",
    "Assessment",
    "Check",
    "CoreError",
    "DEFAULT",
    "GRADE_NAMES",
    "IMAGE_SUFFIXES",
    "INPUT_SIZE",
    "LAYERS",
    "MAX_BYTES",
    "PARTS",
    "REGISTRY",
    "DRNet",
    "Explanation",
    "FeatureMap",
    "Fundus",
    "FundusReadError",
    "LayerMaps",
    "LayerSpec",
    "LoadedModel",
    "WeightsEntry",
    "WeightsError",
    "default_name",
    "explain",
    "feature_map",
    "fetch",
    "is_available",
    "layer",
    "load_weights",
    "read_fundus",
    "threshold_mask",
]

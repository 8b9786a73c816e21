"""The Explanation: every number the viewer, the CLI and the exports show.

``explain`` runs the network and the propagation once for all five grades;
input-space maps, totals and masks are derived on demand and cached (the object
is read-only otherwise, so one instance may be shared between threads).
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import card
from .fundus import Assessment, Fundus
from .model import CONV_LAYERS, GRADE_NAMES, INPUT_SIZE, LayerSpec, softmax
from .propagation import Precision, Propagation, propagate
from .serialise import dumps
from .transport import to_input_space
from .weights import LoadedModel

Part = Literal["input_dependent", "constant"]
PARTS: tuple[Part, ...] = ("input_dependent", "constant")
TOLERANCE = 1e-4


@dataclass(frozen=True)
class LayerMaps:
    """Layer L's two hidden-space maps, channels summed, for all grades (5, H, W)."""

    spec: LayerSpec
    input_dependent: np.ndarray
    constant: np.ndarray


class Explanation:
    """Scores and their decomposition for one fundus image and one model."""

    def __init__(self, prop: Propagation, fundus: Fundus, weights_name: str, weights_sha256: str,
                 weights_meta: Mapping[str, Any] | None = None) -> None:
        self.fundus = fundus
        self.weights_name = weights_name
        self.weights_sha256 = weights_sha256
        self.weights_meta: Mapping[str, Any] = weights_meta or {}
        self.scores = prop.scores
        self.features = prop.features
        self.bias = prop.bias
        self.activations = prop.activations
        self.device = prop.device  # the transport to input space runs there too
        self.input_map = prop.input_map
        self._layers = {
            spec.index: LayerMaps(spec, prop.input_dependent[spec.index - 1], prop.constant[spec.index - 1])
            for spec in CONV_LAYERS
        }
        self.probabilities = softmax(self.scores)
        self.grade = int(np.argmax(self.scores))
        self._cache: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._lock = threading.RLock()
        self._max_layer_maps: int | None = None

    # -- hidden space ---------------------------------------------------------
    def layer(self, index: int) -> LayerMaps:
        """Hidden maps of layer ``index`` (1..15)."""
        if index not in self._layers:
            raise ValueError(f"hidden maps exist for layers 1..15, not {index}")
        return self._layers[index]

    @property
    def grade_name(self) -> str:
        return GRADE_NAMES[self.grade]

    @property
    def quality(self) -> Assessment | None:
        """The photograph's quality assessment, or None when the Fundus was built in code."""
        return self.fundus.quality

    @property
    def gradable(self) -> bool:
        """The photograph passed the quality assessment (``Fundus.gradable``)."""
        return self.fundus.gradable

    # -- input space ----------------------------------------------------------
    def _cached(self, key: Any, make) -> np.ndarray:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            arr = make()
            arr.setflags(write=False)
            self._cache[key] = arr
            self._evict()
            return arr

    def _evict(self) -> None:
        """Drop the least recently used layer maps beyond the limit (totals and constants stay)."""
        if self._max_layer_maps is None:
            return
        layer_keys = [k for k in self._cache if isinstance(k, tuple) and isinstance(k[0], int)]
        for k in layer_keys[: max(0, len(layer_keys) - self._max_layer_maps)]:
            del self._cache[k]

    def limit_layer_maps(self, n: int | None) -> None:
        """Keep at most ``n`` single layers' input-space maps (each 1.6 MB), the least recently used
        dropped first and made again if asked for (a few milliseconds each); None: keep all. A page
        sets it, so that a session walking every layer does not keep them all."""
        if n is not None and n < 0:
            raise ValueError(f"the limit must be >= 0 or None, not {n!r}")
        with self._lock:
            self._max_layer_maps = n
            self._evict()

    def _grade(self, grade: Any) -> int:
        if isinstance(grade, bool) or not isinstance(grade, (int, np.integer)) or not 0 <= grade < len(self.scores):
            raise ValueError(f"grade must be an integer 0..{len(self.scores) - 1}, not {grade!r}")
        return int(grade)

    def _all(self, one) -> np.ndarray:
        """The five grades' maps stacked (5, 640, 640), made from the per-grade ones (not kept twice)."""
        out = np.stack([one(g) for g in range(len(self.scores))])
        out.setflags(write=False)
        return out

    # Input-space maps are made and kept per grade: a page shows one grade at a time, and one
    # grade's maps of every layer are a fifth of all grades' (each (640, 640) float32 is 1.6 MB).
    def in_input_space(self, index: int, part: Part, grade: int | None = None) -> np.ndarray:
        """Layer ``index``'s map ``part`` spread over receptive fields: (640, 640) for ``grade``,
        (5, 640, 640) without."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, not {part!r}")
        maps = self.layer(index)
        if grade is None:
            return self._all(lambda g: self.in_input_space(index, part, g))
        g = self._grade(grade)
        return self._cached((index, part, g), lambda: to_input_space(getattr(maps, part)[g], maps.spec, device=self.device))

    def _constants_sum(self, first: int, g: int) -> np.ndarray:
        acc = np.zeros(self.input_map.shape[1:], np.float64)
        for spec in CONV_LAYERS:
            if spec.index >= first:
                acc += self.in_input_space(spec.index, "constant", g)
        return acc.astype(np.float32)

    def constants(self, grade: int | None = None) -> np.ndarray:
        """Sum of every layer's constant map in input space: (640, 640) for ``grade``, (5, 640, 640) without."""
        if grade is None:
            return self._all(self.constants)
        g = self._grade(grade)
        return self._cached(("constants", g), lambda: self._constants_sum(1, g))

    def constants_from(self, index: int, grade: int) -> np.ndarray:
        """The constant maps of layers ``index``..15 in input space, summed (640, 640): what the
        layers at and above ``index`` add that does not depend on the photograph. Kept like a
        layer's map (``limit_layer_maps``)."""
        self.layer(index)  # validates the index
        g = self._grade(grade)
        if index == 1:
            return self.constants(g)
        return self._cached((index, "constants_from", g), lambda: self._constants_sum(index, g))

    def bias_map(self, grade: int | None = None) -> np.ndarray:
        """Layer 16's bias, which has no place, spread evenly over the field of view."""
        if grade is None:
            return self._all(self.bias_map)
        g = self._grade(grade)

        def make() -> np.ndarray:
            fov = self.fundus.fov if self.fundus.fov.any() else np.ones_like(self.fundus.fov)
            return (fov * (float(self.bias[g]) / fov.sum())).astype(np.float32)

        return self._cached(("bias", g), make)

    def total(self, grade: int | None = None) -> np.ndarray:
        """Input map + all constant maps + the bias map, which sums to the score: (640, 640) for
        ``grade``, (5, 640, 640) without."""
        if grade is None:
            return self._all(self.total)
        g = self._grade(grade)
        return self._cached(
            ("total", g),
            lambda: (self.input_map[g].astype(np.float64) + self.constants(g) + self.bias_map(g)).astype(np.float32),
        )

    def cached_bytes(self) -> int:
        """Bytes held by the input-space maps made so far (what a page's session adds)."""
        with self._lock:
            return sum(a.nbytes for a in self._cache.values())

    def materialise(self) -> None:
        """Compute every grade's input-space maps now (benchmarks, exports)."""
        for g in range(len(self.scores)):
            self.total(g)

    # -- thresholds -----------------------------------------------------------
    def mask(self, grade: int, k: float = 2.0, values: np.ndarray | None = None) -> np.ndarray:
        """Pixels of the field of view whose score is positive and above mean + k std.

        The statistics are taken over the field of view of ``values`` (default:
        the grade's total map), as the blog's binary map.
        """
        m = self.total(grade) if values is None else values
        return threshold_mask(m, self.fundus.fov, k)

    # -- checks ---------------------------------------------------------------
    def conservation(self, grades: Iterable[int] | None = None) -> dict[str, Any]:
        """Per grade and layer: the score, the sums that must add up to it, the error
        (for ``grades``, default all five, in that order).

        At layer L: score = sum(input-dependent map of L) + sum(constants of layers
        >= L) + bias; at the input: the input map in place of layer L's map; at
        layer 16: the feature scores. Each relative error is |residual| divided by
        the largest magnitude among the score and the terms of its sum (so a score
        near 0 built from large parts is not mistaken for a broken check). Sums are
        accumulated in float64. ``total_map_sum`` checks the receptive-field
        transport too (it takes every constant map to input space); it is measured
        against the magnitudes of the input map, constants and bias it adds up.
        """

        def rel(score: float, *terms: float, parts: tuple[float, ...] = ()) -> float:
            return abs(score - sum(terms)) / max(abs(score), *(abs(t) for t in (*terms, *parts)), 1e-12)

        wanted = list(range(len(self.scores))) if grades is None else [self._grade(g) for g in grades]
        grades = []
        worst = 0.0
        for c in wanted:
            score, bias = float(self.scores[c]), float(self.bias[c])
            const_from = 0.0
            rows = []
            for spec in reversed(CONV_LAYERS):
                maps = self._layers[spec.index]
                const = float(maps.constant[c].sum(dtype=np.float64))
                const_from += const
                dep = float(maps.input_dependent[c].sum(dtype=np.float64))
                rows.append({
                    "layer": spec.index,
                    "input_dependent": dep,
                    "constant": const,
                    "constants_from_layer": const_from,
                    "reconstructed": dep + const_from + bias,
                    "relative_error": rel(score, dep, const_from, bias),
                })
            inp = float(self.input_map[c].sum(dtype=np.float64))
            feats = float(self.features[c].sum(dtype=np.float64))
            total = float(self.total(c).sum(dtype=np.float64))
            g = {
                "grade": c,
                "score": score,
                "bias": bias,
                "features_sum": feats,
                "features_relative_error": rel(score, feats, bias),
                "input_map_sum": inp,
                "constants_sum": const_from,
                "input_relative_error": rel(score, inp, const_from, bias),
                "total_map_sum": total,
                # The total map is those same parts added pixel by pixel: measured against them too.
                "total_relative_error": rel(score, total, parts=(inp, const_from, bias)),
                "layers": rows,
            }
            g["relative_error"] = max(
                [r["relative_error"] for r in rows] + [g["features_relative_error"], g["input_relative_error"], g["total_relative_error"]]
            )
            worst = max(worst, g["relative_error"])
            grades.append(g)
        return {"tolerance": TOLERANCE, "max_relative_error": worst, "ok": worst <= TOLERANCE, "grades": grades}

    # -- export ---------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The contents of ``scores.json``."""
        cons = self.conservation()
        return {
            "scores": [float(s) for s in self.scores],
            "probabilities": [float(p) for p in self.probabilities],
            "grade": self.grade if self.gradable else None,
            "grade_name": self.grade_name if self.gradable else "ungradable",
            "model_grade": self.grade,
            "gradable": self.gradable,
            "quality": self.quality.as_dict() if self.quality is not None else None,
            "grade_names": list(GRADE_NAMES),
            "weights": card.summary(self.weights_name, self.weights_sha256, self.weights_meta),
            "image": {
                "source": self.fundus.source,
                "original_size": list(self.fundus.original_size),
                "crop_box": list(self.fundus.crop_box),
                "warnings": list(self.fundus.warnings),
            },
            "conservation": {
                "tolerance": cons["tolerance"],
                "max_relative_error": cons["max_relative_error"],
                "ok": cons["ok"],
                "grades": [
                    {k: g[k] for k in ("grade", "score", "relative_error", "bias", "features_sum", "input_map_sum", "constants_sum", "total_map_sum")}
                    for g in cons["grades"]
                ],
            },
        }

    def scores_json(self) -> str:
        return dumps(self.summary(), indent=2)

    def npz_bytes(self, progress: Callable[[float, str], None] | None = None) -> bytes:
        """``explanation.npz``: scores, features, bias, input map, total and every hidden map.

        ``progress(share, what)`` is called as the file is built (about 50 MB compressed,
        several seconds), so a page can show how far it got. ``np.load`` reads it as any npz.
        """
        report = progress or (lambda share, what: None)
        report(0.0, "taking every constant map to input space")
        total = self.total()
        arrays: dict[str, np.ndarray] = {
            "scores": self.scores,
            "probabilities": self.probabilities.astype(np.float32),
            "features": self.features,
            "bias": self.bias,
            "input_map": self.input_map,
            "total": total,
            "fov": self.fundus.fov,
        }
        for spec in CONV_LAYERS:
            arrays[f"layer{spec.index}_input_dependent"] = self._layers[spec.index].input_dependent
            arrays[f"layer{spec.index}_constant"] = self._layers[spec.index].constant
        weight = {name: max(a.nbytes, 1) for name, a in arrays.items()}
        whole, done = float(sum(weight.values())), 0.0
        buf = io.BytesIO()
        # np.savez_compressed's own layout (one .npy per array in a deflated zip), one array at a time.
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, arr in arrays.items():
                report(done / whole, f"compressing {name}")
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
                done += weight[name]
        report(1.0, "done")
        return buf.getvalue()


def threshold_mask(values: np.ndarray, fov: np.ndarray, k: float) -> np.ndarray:
    """Positive pixels above mean + k standard deviations of the field of view's values."""
    region = values[fov] if fov.any() else values.ravel()
    if region.size == 0:
        return np.zeros(values.shape, bool)
    mu = float(region.mean(dtype=np.float64))
    sd = float(region.std(dtype=np.float64))
    return (values > 0) & (values > mu + k * sd) & (fov if fov.any() else True)


def explain(model: LoadedModel, fundus: Fundus, precision: Precision = "float32") -> Explanation:
    """Run the model on ``fundus`` and decompose all five scores down to the pixels.

    ``precision="float64"`` is the slow reference (see ``propagate``).
    """
    if fundus.image.shape != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"fundus image must be {INPUT_SIZE}x{INPUT_SIZE}x3, got {fundus.image.shape}")
    x = model.normalisation.to_tensor(fundus.image)  # propagate takes it where the network is
    return Explanation(propagate(model.network, x, precision=precision), fundus, model.name, model.sha256, model.meta)


@dataclass(frozen=True)
class FeatureMap:
    """Where one layer-15 feature's contribution to one grade's score lies in the image.

    ``score`` is w[grade, feature] * f_feature, the feature's bar at layer 16. ``input_map``
    (640, 640) is its pixels' part; ``total`` (640, 640) adds every layer's constant map in
    input space, so it sums to ``score`` (no bias: the bias belongs to no feature). Summed
    over all features of a grade, the totals give ``Explanation.total()[grade] - bias_map()[grade]``.
    ``relative_error`` is |score - total.sum()| over the largest of |score|, |input_map.sum()|
    and |constants' sum| (as ``Explanation.conservation``).
    """

    grade: int
    feature: int
    score: float
    input_map: np.ndarray
    total: np.ndarray
    relative_error: float


def _index(value: Any, name: str, count: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < count:
        raise ValueError(f"{name} must be an integer 0..{count - 1}, not {value!r}")
    return int(value)


def feature_map(model: LoadedModel, fundus: Fundus, grade: int, feature: int) -> FeatureMap:
    """Feature ``feature`` (0..63) of layer 15 propagated for ``grade`` (0..4) alone.

    One forward pass and one single-row backward pass (``propagate(..., start=...)``
    from a layer-16 row that is w[grade, feature] at ``feature`` and zero elsewhere), in
    the default float32 arithmetic (``explain``'s), so its maps are, up to rounding, the
    part of ``explain``'s maps that this feature carries: the propagation is linear in
    the layer-16 row. A feature that is 0 or has weight 0 gives all-zero maps.
    """
    w = model.network.linear.weight  # (5, 64)
    grade = _index(grade, "grade", w.shape[0])
    feature = _index(feature, "feature", w.shape[1])
    if fundus.image.shape != (INPUT_SIZE, INPUT_SIZE, 3):
        raise ValueError(f"fundus image must be {INPUT_SIZE}x{INPUT_SIZE}x3, got {fundus.image.shape}")
    x = model.normalisation.to_tensor(fundus.image)
    start = np.zeros((1, w.shape[1]), np.float64)  # propagate casts it to its arithmetic, exactly
    start[0, feature] = w[grade, feature].item()
    prop = propagate(model.network, x, start=start)
    constants = np.zeros(prop.input_map.shape[1:], np.float64)
    for spec in CONV_LAYERS:
        constants += to_input_space(prop.constant[spec.index - 1][0], spec, device=prop.device)
    input_map = prop.input_map[0]
    total = (input_map.astype(np.float64) + constants).astype(np.float32)
    score = float(prop.features[grade, feature])
    parts = (abs(score), abs(float(input_map.sum(dtype=np.float64))), abs(float(constants.sum())), 1e-12)
    error = abs(score - float(total.sum(dtype=np.float64))) / max(parts)
    input_map.setflags(write=False)
    total.setflags(write=False)
    return FeatureMap(grade, feature, score, input_map, total, error)


__all__ = ["PARTS", "Explanation", "FeatureMap", "LayerMaps", "explain", "feature_map", "threshold_mask"]

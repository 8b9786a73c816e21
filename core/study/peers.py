"""Attribution maps compared by the quality study: the paper's method and its peers.

Every method turns one image and a few grades into one (INPUT_SIZE, INPUT_SIZE) float32
map per grade, where larger means "more evidence for this grade". Work shared by several methods (one
``explain`` call for all the paper's maps; one forward + backward pass for gradient,
gradient x input and Grad-CAM) is computed once per image by ``Context.shared`` and its
time is charged in full to every method that uses it, so each method's time is what it
would cost alone.

Choices, stated once (they are repeated in the command's output):

- ``paper_layerL``: the whole score of layer L's units (input-dependent + constant part,
  i.e. S_O = lambda * O), spread over their receptive fields as the paper does.
- ``gradient``: |d score / d input| summed over RGB (Simonyan et al.; Captum's Saliency).
  The sign of a gradient says which way brightening a pixel moves the score, not whether
  the pixel is evidence; lesions are both darker (haemorrhages) and brighter (exudates)
  than the retina, so a signed map would rank half of them last.
- ``gradient_x_input`` and the two Captum methods: signed, summed over RGB, in the
  normalised input space the network sees.
- ``integrated_gradients``: baseline = a black image (normalised as the network's input).
- ``lrp_epsilon``: Captum's LRP with its default rules (epsilon rule, epsilon = 1e-9).
- ``gradcam``: on the output of layer 14 (the last 3x3 conv block, 10x10, before its max
  pool), ReLU of the gradient-weighted channel sum, upsampled bilinearly to INPUT_SIZE.
- ``random``: i.i.d. standard normal noise, seeded by (seed, image, grade); being
  Gaussian, its k-sigma mask keeps about 2.3% of the field of view at k = 2.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CoreError
from ..explanation import Explanation, explain
from ..fundus import Fundus
from ..model import folded_copy, layer, plain_copy
from ..transport import to_input_space
from ..views import LESION_VIEW, ViewSpec, view_map
from ..weights import LoadedModel

Maps = dict[int, np.ndarray]  # grade -> (H, W) float32
DEFAULT_LAYERS = (5, 8, 11)


class StudyError(CoreError):
    """Something the user can fix in a quality study (an unknown method, a missing
    dependency, an unreadable folder or file): one line, shown by the CLI as it is."""


class Peers:
    """Model copies the peer methods need, built once per run.

    Captum's LRP rewrites modules' forward hooks and attributes, so it gets its own deep
    copy; the caller's model is never touched.
    """

    def __init__(self, lm: LoadedModel, device: str = "cpu", ig_steps: int = 16, batch: int = 8) -> None:
        self.lm = lm
        self.device = torch.device(device)
        if self.device.type == "cuda":  # full float32, as on the CPU (TF32 would blur small differences)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.ig_steps = ig_steps
        self.batch = batch
        self.model = plain_copy(lm.network).to(self.device, memory_format=torch.channels_last)
        self.fast = folded_copy(self.model).to(memory_format=torch.channels_last)
        self._lrp_model: nn.Module | None = None
        cut = max(i for i, m in enumerate(self.model.features) if isinstance(m, nn.ReLU)) + 1
        self.head = self.model.features[:cut]  # up to layer 14's ReLU (Grad-CAM's layer)
        self.tail = self.model.features[cut:]
        self.black = lm.normalisation.to_tensor(np.zeros((1, 1, 3), np.uint8)).to(self.device)  # (1, 3, 1, 1)

    def lrp_model(self) -> nn.Module:
        """The deep copy Captum's LRP may rewrite (made on first use: most runs need it once)."""
        if self._lrp_model is None:
            self._lrp_model = copy.deepcopy(self.model)
        return self._lrp_model

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores of a batch (forward only, batch norm folded), on the CPU."""
        with torch.inference_mode():
            return self.fast(x.to(self.device).contiguous(memory_format=torch.channels_last)).float().cpu()


@dataclass
class Context:
    """One image, the grades to explain, and the per-image cache of shared passes."""

    peers: Peers
    fundus: Fundus
    grades: tuple[int, ...]
    seed: int
    index: int
    _cache: dict[str, Any] = field(default_factory=dict)
    _seconds: dict[str, float] = field(default_factory=dict)
    _used: set[str] = field(default_factory=set)
    _inside: float = 0.0

    @property
    def x(self) -> torch.Tensor:
        """The normalised (1, 3, H, W) input, made once per image."""
        return self.shared("input", lambda: self.peers.lm.normalisation.to_tensor(self.fundus.image))

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per image; its time is charged to every method that asks."""
        self._used.add(key)
        if key not in self._cache:
            t = time.perf_counter()
            self._cache[key] = make()
            self._seconds[key] = time.perf_counter() - t
            self._inside += self._seconds[key]
        return self._cache[key]

    def run(self, method: Method) -> tuple[Maps, float]:
        """The method's maps and the seconds it would take alone."""
        self._used, self._inside = set(), 0.0
        t = time.perf_counter()
        maps = method.fn(self)
        own = time.perf_counter() - t - self._inside
        return maps, own + sum(self._seconds[k] for k in self._used)


@dataclass(frozen=True)
class Method:
    """One compared method: its JSON key, its label in the report, and how it makes maps."""

    name: str
    label: str
    fn: Callable[[Context], Maps]
    family: str  # "paper" or "peer" or "baseline" or "view" (a candidate lesion-scale view)
    subset: bool = False  # run only on the documented subset (Integrated Gradients; LRP, which equals gradient x input)
    signed: bool = True  # False: a magnitude map, for which "net positive on a lesion" is trivially true
    faith: bool = True  # deletion/insertion too (candidate views: localisation only, they are many)


# -- the paper's method ---------------------------------------------------------------
def explanation_of(ctx: Context) -> Explanation:
    """The paper's explanation of the image, made once per image for all its maps."""
    return ctx.shared("explain", lambda: explain(ctx.peers.lm, ctx.fundus))


def paper_total(ctx: Context) -> Maps:
    """The paper's total map (all layers' scores in input space; sums to the score)."""
    exp = explanation_of(ctx)
    return {g: np.asarray(exp.total(g), np.float32) for g in ctx.grades}


def paper_input(ctx: Context) -> Maps:
    """The paper's input map alone (the input layer's share of the score)."""
    inp = explanation_of(ctx).input_map
    return {g: np.asarray(inp[g], np.float32) for g in ctx.grades}


def paper_layer(index: int) -> Callable[[Context], Maps]:
    """Layer ``index``'s whole unit scores (input-dependent + constant) in input space."""

    def fn(ctx: Context) -> Maps:
        maps = explanation_of(ctx).layer(index)
        g = list(ctx.grades)
        both = to_input_space(maps.input_dependent[g] + maps.constant[g], layer(index))
        return {grade: both[i].astype(np.float32) for i, grade in enumerate(g)}

    return fn


def view_fn(spec: ViewSpec) -> Callable[[Context], Maps]:
    """The maps of an exact lesion-scale view (``core.views.ViewSpec``)."""

    def fn(ctx: Context) -> Maps:
        exp = explanation_of(ctx)
        return {g: view_map(exp, g, spec) for g in ctx.grades}

    return fn


# -- peers -------------------------------------------------------------------------------
def _backprop(ctx: Context) -> dict[str, torch.Tensor]:
    """One forward + backward for all of ``ctx.grades``: input and layer-14 gradients."""
    p = ctx.peers
    n = len(ctx.grades)
    x = ctx.x.to(p.device).repeat(n, 1, 1, 1).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with torch.enable_grad():
        act = p.head(x)
        out = p.model.output(torch.flatten(p.model.classifier(p.tail(act)), 1))
        picked = out[torch.arange(n), torch.tensor(ctx.grades)].sum()
        gx, ga = torch.autograd.grad(picked, [x, act])
    return {"x": x.detach(), "grad": gx, "act": act.detach(), "act_grad": ga}


def _as_maps(ctx: Context, t: torch.Tensor) -> Maps:
    arr = t.detach().float().cpu().numpy()
    return {g: np.ascontiguousarray(arr[i]) for i, g in enumerate(ctx.grades)}


def gradient(ctx: Context) -> Maps:
    """|gradient| summed over RGB (unsigned: see the module docstring)."""
    b = ctx.shared("backprop", lambda: _backprop(ctx))
    return _as_maps(ctx, b["grad"].abs().sum(1))


def gradient_x_input(ctx: Context) -> Maps:
    """Gradient times the normalised input, summed over RGB (signed)."""
    b = ctx.shared("backprop", lambda: _backprop(ctx))
    return _as_maps(ctx, (b["grad"] * b["x"]).sum(1))


def gradcam(ctx: Context) -> Maps:
    """Grad-CAM on layer 14, upsampled bilinearly to the image."""
    b = ctx.shared("backprop", lambda: _backprop(ctx))
    weights = b["act_grad"].mean((2, 3), keepdim=True)
    cam = F.relu((weights * b["act"]).sum(1, keepdim=True))
    size = ctx.fundus.image.shape[:2]
    return _as_maps(ctx, F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0])


def _captum() -> Any:
    try:
        import captum.attr as attr
    except ImportError as e:  # a development dependency (requirements-dev.txt)
        raise StudyError("Captum is needed for LRP and Integrated Gradients: pip install -r requirements-dev.txt") from e
    return attr


def lrp_epsilon(ctx: Context) -> Maps:
    """Captum's LRP with its default (epsilon) rules, on a copy it may rewrite."""
    p = ctx.peers
    lrp = _captum().LRP(p.lrp_model())
    n = len(ctx.grades)
    x = ctx.x.to(p.device).repeat(n, 1, 1, 1).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    return _as_maps(ctx, lrp.attribute(x, target=list(ctx.grades)).sum(1))


def integrated_gradients(ctx: Context) -> Maps:
    """Captum's Integrated Gradients from a black image, ``ig_steps`` steps."""
    p = ctx.peers
    ig = _captum().IntegratedGradients(p.model)
    n = len(ctx.grades)
    x = ctx.x.to(p.device).repeat(n, 1, 1, 1).contiguous(memory_format=torch.channels_last)
    base = p.black.expand_as(x).contiguous(memory_format=torch.channels_last)
    a = ig.attribute(x, baselines=base, target=list(ctx.grades), n_steps=p.ig_steps, internal_batch_size=p.batch)
    return _as_maps(ctx, a.sum(1))


def random_map(ctx: Context) -> Maps:
    """Seeded Gaussian noise: the floor every real method must beat."""
    shape = ctx.fundus.image.shape[:2]
    return {
        g: np.random.default_rng([ctx.seed, ctx.index, g]).standard_normal(shape, dtype=np.float32)
        for g in ctx.grades
    }


def methods(layers: Sequence[int] = DEFAULT_LAYERS, include: Sequence[str] | None = None) -> list[Method]:
    """The compared methods, the paper's first (its total map is the reference).

    An unknown name in ``include`` raises ``StudyError`` (a ``ValueError``, as before)."""
    out = [
        Method("paper_total", "Paper: total map", paper_total, "paper"),
        Method("lesion_view", f"Lesion view ({LESION_VIEW.short})", view_fn(LESION_VIEW), "paper"),
        Method("paper_input", "Paper: input map", paper_input, "paper"),
        *[Method(f"paper_layer{i}", f"Paper: layer {i}", paper_layer(i), "paper") for i in layers],
        Method("gradient", "Gradient magnitude", gradient, "peer", signed=False),
        Method("gradient_x_input", "Gradient x input", gradient_x_input, "peer"),
        Method("integrated_gradients", "Integrated Gradients", integrated_gradients, "peer", subset=True),
        Method("lrp_epsilon", "LRP-epsilon (Captum)", lrp_epsilon, "peer", subset=True),
        Method("gradcam", "Grad-CAM (layer 14)", gradcam, "peer", signed=False),
        Method("random", "Random (Gaussian)", random_map, "baseline"),
    ]
    if include is None:
        return out
    unknown = set(include) - {m.name for m in out}
    if unknown:
        raise StudyError(f"unknown methods: {', '.join(sorted(unknown))}; known: {', '.join(m.name for m in out)}")
    return [m for m in out if m.name in include]


__all__ = [
    "DEFAULT_LAYERS", "Context", "Maps", "Method", "Peers", "StudyError", "explanation_of", "gradcam", "gradient", "gradient_x_input",
    "integrated_gradients", "lrp_epsilon", "methods", "paper_input", "paper_layer", "paper_total", "random_map", "view_fn",
]

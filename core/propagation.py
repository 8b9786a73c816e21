"""Score propagation (docs/method.md section 4) for all five grades in one pass.

The paper's rules make every activation's score proportional to it, S = lambda*a,
and the factor lambda obeys the same recursion as a gradient whose ReLU gates
close below ``ACTIVE_THRESHOLD``. So one forward pass records activations, BN
constants and max-pool winners, and one hand-written backward pass carries the
five grades' lambdas together as a batch of 5 (no autograd, no per-grade loop).
At each block the score splits into the constant part lambda*K, with
K = beta + gamma*(b - mu)/sigma, and the input-dependent part lambda*(O - K).
Tests check this against a literal layer-by-layer implementation of the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from .model import ACTIVE_THRESHOLD, CONV_LAYERS, DRNet, batchnorm_terms

Precision = Literal["float32", "float64"]


@dataclass
class Propagation:
    """Raw results for all grades, in the precision asked for, grade-major (5, ...).

    With ``propagate(..., start=rows)`` the three kinds of map are (n, ...), one per
    start row, while ``scores``, ``features`` and ``bias`` remain the model's.
    """

    scores: np.ndarray  # (5,) pre-softmax
    features: np.ndarray  # (5, 64) w_cj * f_j
    bias: np.ndarray  # (5,)
    input_dependent: list[np.ndarray]  # [L-1] -> (5, H_L, W_L), channels summed
    constant: list[np.ndarray]  # [L-1] -> (5, H_L, W_L)
    input_map: np.ndarray  # (5, H, W), RGB summed
    activations: np.ndarray  # (64,) layer-16 inputs f_j
    device: str = "cpu"  # where it ran (the network's device); the arrays are on the CPU


@dataclass
class _Block:
    weight: torch.Tensor  # conv weight with the BN scale gamma/sigma folded in
    padding: tuple[int, int]
    linear: torch.Tensor  # O - K = (gamma/sigma) W*I where active, (1, C, H, W)
    const: torch.Tensor  # K per channel, (C,)
    gate: torch.Tensor  # 1 where lambda may be non-zero: active and, before a max pool, the winner


def _forward(
    model: DRNet, x: torch.Tensor, fmt: torch.memory_format, dtype: torch.dtype, record: bool = True
) -> tuple[list[_Block], torch.Tensor, torch.Tensor]:
    """Forward pass in ``dtype``, BN folded into the convolutions; with ``record``, also
    what the backward pass needs. Returns (blocks, features (N, 64), scores (N, 5)).

    ``forward_scores`` runs this same arithmetic without recording, so the scores that
    ``grade`` writes equal the explanation's to the last bit, not only to rounding.
    """
    blocks: list[_Block] = []
    h = x.to(device=model.linear.weight.device, dtype=dtype).contiguous(memory_format=fmt)  # where the network is
    for spec, (conv, bn) in zip(CONV_LAYERS, model.blocks(), strict=True):
        const, scale = batchnorm_terms(conv, bn, dtype)
        weight = (conv.weight.to(dtype) * scale.view(-1, 1, 1, 1)).contiguous(memory_format=fmt)
        out = torch.relu_(F.conv2d(h, weight, const, conv.stride, conv.padding))
        if not record:
            h = F.max_pool2d(out, 2, 2) if spec.pool_after == "max" else out
            continue
        gate = out >= ACTIVE_THRESHOLD
        if spec.pool_after == "max":  # 2x2, stride 2
            h, idx = F.max_pool2d(out, 2, 2, return_indices=True)
            won = torch.zeros(out.shape, dtype=torch.bool, device=out.device).flatten(2).scatter_(2, idx.flatten(2), True)
            gate &= won.view_as(out).contiguous(memory_format=fmt)
        else:
            h = out
        blocks.append(_Block(weight, conv.padding, out - const.view(1, -1, 1, 1), const, gate.to(dtype)))
    feats = F.avg_pool2d(h, model.classifier[-1].kernel_size).flatten(1)
    scores = F.linear(feats, model.linear.weight.to(dtype), model.linear.bias.to(dtype))
    return blocks, feats, scores


def _upsample2(g: torch.Tensor) -> torch.Tensor:
    """Undo a 2x2 max pool's shape; the gate then keeps only each window's winner."""
    return F.interpolate(g, scale_factor=2, mode="nearest")


def _start_rows(start: torch.Tensor | np.ndarray, w_lin: torch.Tensor) -> torch.Tensor:
    """``start`` as (n, F) rows in the dtype and on the device of the layer-16 weights ``w_lin`` (5, F)."""
    rows = torch.as_tensor(start)
    if rows.ndim != 2 or rows.shape[0] < 1 or rows.shape[1] != w_lin.shape[1]:
        raise ValueError(f"start must have shape (n, {w_lin.shape[1]}) with n >= 1, got {tuple(rows.shape)}")
    if rows.is_complex() or rows.dtype == torch.bool:
        raise ValueError(f"start must be real numbers, not {rows.dtype}")
    rows = rows.to(device=w_lin.device, dtype=w_lin.dtype)
    if not torch.isfinite(rows).all():
        raise ValueError("start must be finite")
    return rows


@torch.inference_mode()
def propagate(
    model: DRNet,
    x: torch.Tensor,
    *,
    precision: Precision = "float32",
    channels_last: bool = True,
    start: torch.Tensor | np.ndarray | None = None,
) -> Propagation:
    """Scores and every layer's hidden maps for all grades of one input ``x`` (1, 3, H, W).

    ``x`` must already be normalised. ``precision`` is the arithmetic of both
    passes. The split between a layer's input-dependent and constant maps is
    discontinuous at units whose activation sits at the 1e-5 threshold or ties
    in a max pool: float32 rounding decides a few such units differently from
    float64 (conservation holds either way). "float64" is the reference; it
    runs PyTorch's slow double-precision convolutions.

    ``start`` (n, 64), n >= 1: layer-16 weights for the backward pass to start
    from instead of ``model.linear.weight``. The gates come from the forward pass
    alone, so the propagation is linear in these rows: row r's maps (the
    ``input_dependent``, ``constant`` and ``input_map`` entries, then (n, ...))
    decompose ``sum_j start[r, j] * f_j``, with no bias. ``scores``, ``features``,
    ``bias`` and ``activations`` stay the model's own. None (the default) is the
    model's five grades, by the same arithmetic as ever.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError("propagate expects one image, shape (1, 3, H, W)")
    # BN is applied from its running statistics below: eval semantics whatever
    # model.training says, and the caller's (possibly shared) model is left untouched.
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if precision not in ("float32", "float64"):
        raise ValueError(f"precision must be 'float32' or 'float64', not {precision!r}")
    dtype = torch.float64 if precision == "float64" else torch.float32
    w_lin = model.linear.weight.to(dtype)  # (5, 64)
    w_start = w_lin if start is None else _start_rows(start, w_lin)  # checked before the forward pass
    n = w_start.shape[0]
    blocks, feats, scores = _forward(model, x, fmt, dtype)
    feats, scores = feats[0], scores[0]
    x = x.to(device=w_lin.device, dtype=dtype).contiguous(memory_format=fmt)

    # Layer 16 and the proportional average pool: each of the positions p of
    # feature j receives w_cj * a(p) / area, i.e. lambda = w_cj / area.
    last = blocks[-1].linear
    area = last.shape[-1] * last.shape[-2]
    g = (w_start / area).view(n, -1, 1, 1).expand(n, -1, *last.shape[-2:]).contiguous(memory_format=fmt)

    input_dep: list[np.ndarray] = [np.empty(0)] * len(blocks)
    constant: list[np.ndarray] = [np.empty(0)] * len(blocks)
    for i in range(len(blocks) - 1, -1, -1):
        b = blocks[i]
        lam = g.mul_(b.gate)  # lambda = S_O / O, zero where inactive or not a pool winner
        constant[i] = torch.einsum("nchw,c->nhw", lam, b.const).cpu().numpy().copy()
        input_dep[i] = torch.einsum("nchw,chw->nhw", lam, b.linear[0]).cpu().numpy().copy()
        g = F.conv_transpose2d(lam, b.weight, padding=b.padding)
        if i == 0:
            input_map = torch.einsum("nchw,chw->nhw", g, x[0])
        elif blocks[i - 1].linear.shape[-1] != g.shape[-1]:
            g = _upsample2(g)

    return Propagation(
        scores=scores.cpu().numpy().copy(),
        features=(w_lin * feats.view(1, -1)).cpu().numpy().copy(),
        bias=model.linear.bias.to(dtype).cpu().numpy().copy(),
        input_dependent=input_dep,
        constant=constant,
        input_map=input_map.cpu().numpy().copy(),
        activations=feats.cpu().numpy().copy(),
        device=str(w_lin.device),
    )


@torch.inference_mode()
def forward_scores(model: DRNet, x: torch.Tensor, *, channels_last: bool = True) -> np.ndarray:
    """Pre-softmax scores of a batch ``x`` (N, 3, H, W): forward only, in the explanation's
    arithmetic (eval semantics: BN from its running statistics, as ``propagate``)."""
    if model.training:
        raise ValueError("forward_scores needs the model in eval mode (BN running statistics)")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return _forward(model, x, fmt, torch.float32, record=False)[2].cpu().numpy()

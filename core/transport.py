"""Hidden maps to input space over each unit's receptive field (docs/method.md section 5).

Every unit's score is spread with an isotropic Gaussian, sigma = (RF - 1) / 4,
truncated to its square receptive field (the paper's size) and centred on the
field's true centre. Near the border the part of the kernel inside the image is
renormalised, so each unit's score stays whole. The kernel is separable, and so
is the renormalisation (the clipped square is a product of clipped intervals),
so a whole layer is two matrix products: no loop over units.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .model import INPUT_SIZE, LayerSpec


@lru_cache(maxsize=64)
def spread_matrix(stride: int, offset: float, rf: int, hidden: int, size: int = INPUT_SIZE) -> torch.Tensor:
    """(hidden, size) float64: row i is unit i's clipped, renormalised 1-D kernel.

    The 2-D spread of a map M is then A^T M A (separable Gaussian, separable clip).
    Dense on purpose: at these sizes one matmul beats a strided convolution.
    """
    half = (rf - 1) / 2
    sigma = max((rf - 1) / 4, 1e-6)
    centres = offset + stride * np.arange(hidden)
    d = np.arange(size)[None, :] - centres[:, None]
    a = np.where(np.abs(d) <= half + 1e-9, np.exp(-0.5 * (d / sigma) ** 2), 0.0)
    a /= a.sum(1, keepdims=True)
    return torch.from_numpy(a)


def to_input_space(maps: np.ndarray | torch.Tensor, spec: LayerSpec, size: int = INPUT_SIZE,
                   device: torch.device | str | None = None) -> np.ndarray:
    """Take hidden maps (..., H, W) of layer ``spec`` to input space (..., size, size).

    Each map's sum is preserved exactly (up to float rounding). ``device``: where the two
    matrix products run (None: where ``maps`` is, the CPU for an array); the result is a
    NumPy array on the CPU.
    """
    m = torch.as_tensor(maps, device=device)
    if m.shape[-1] != spec.hidden or m.shape[-2] != spec.hidden:
        raise ValueError(f"layer {spec.index} maps must be {spec.hidden}x{spec.hidden}, got {tuple(m.shape[-2:])}")
    a = spread_matrix(spec.stride, spec.offset, spec.rf_paper, spec.hidden, size).to(device=m.device, dtype=m.dtype)
    return (a.T @ m @ a).cpu().numpy()


def unit_centre(spec: LayerSpec, i: int) -> float:
    """Input coordinate of the centre of unit ``i``'s receptive field along one axis."""
    return spec.offset + spec.stride * i

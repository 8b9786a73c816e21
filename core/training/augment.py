"""The paper's training augmentation on whole batches (on the GPU when there is one):
rotation, flips, brightness and contrast, then the model's input normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..weights import IMAGENET, Normalisation


@dataclass
class Augmentation:
    """Ranges of the paper's augmentation (docs/method.md section 3)."""

    max_rotation: float = 180.0  # degrees, uniform in [0, max]
    flips: bool = True  # horizontal and vertical, each with probability 1/2
    brightness: float = 0.2  # gain uniform in [1 - b, 1 + b]
    contrast: float = 0.2  # about the field of view's mean, factor in [1 - c, 1 + c]


def augment(x: torch.Tensor, generator: torch.Generator, aug: Augmentation | None = None) -> torch.Tensor:
    """Randomly rotated, flipped, brightened and contrasted copies of a uint8 or float
    (B, 3, H, W) batch in 0..255 (float out, same range, black stays black).

    Parameters are drawn on the CPU from ``generator`` (reproducible on any device);
    flips and rotation are one affine resampling per image (bilinear, zero fill).
    """
    aug = aug or Augmentation()
    b = x.shape[0]
    u = torch.rand((b, 5), generator=generator, dtype=torch.float64)
    angle = u[:, 0] * math.radians(aug.max_rotation)
    flip = aug.flips * 1.0
    sx = 1.0 - 2.0 * flip * (u[:, 1] < 0.5)
    sy = 1.0 - 2.0 * flip * (u[:, 2] < 0.5)
    gain = 1.0 + (2.0 * u[:, 3] - 1.0) * aug.brightness
    contrast = 1.0 + (2.0 * u[:, 4] - 1.0) * aug.contrast
    dev = x.device
    x = x.float()
    fov = x.amax(dim=1, keepdim=True) > 8.0  # the black surround is left as it is
    mean = (x * fov).sum(dim=(2, 3), keepdim=True) / fov.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    c = contrast.float().to(dev).view(b, 1, 1, 1)
    jittered = ((x - mean) * c + mean) * gain.float().to(dev).view(b, 1, 1, 1)
    x = torch.where(fov, jittered.clamp_(0.0, 255.0), x)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros((b, 2, 3), dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sx, -sin * sy
    theta[:, 1, 0], theta[:, 1, 1] = sin * sx, cos * sy
    grid = F.affine_grid(theta.float().to(dev), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class BatchTransform:
    """Training: augment then normalise; evaluation: normalise only. Channels-last
    output (faster convolutions on CPU and GPU)."""

    def __init__(self, norm: Normalisation = IMAGENET, train: bool = False, aug: Augmentation | None = None) -> None:
        self.norm, self.train, self.aug = norm, train, aug or Augmentation()

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.train:
            if generator is None:
                raise ValueError("training augmentation needs a generator")
            x = augment(x, generator, self.aug)
        return self.norm.apply(x).contiguous(memory_format=torch.channels_last)

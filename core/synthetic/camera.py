"""The camera: how the painted eye becomes a photograph.

Why a module of its own: the camera is applied after the lesions, from its own random
stream (stream 1), so that lesions are imaged like the rest of the eye (the same
vignetting, light, colour, blur and noise) and so that the same seed photographs the
eye identically with or without lesions.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .anatomy import Eye, smooth_noise


def photograph(img: np.ndarray, eye: Eye, rng: np.random.Generator) -> np.ndarray:
    """Vignetting, uneven light, colour balance, gamma, blur and noise -> uint8 RGB.

    ``img`` is the linear RGB float32 eye (size, size, 3); it is overwritten on the way.
    """
    size = eye.size
    rr = eye.dist / eye.radius
    vig = 1.0 - rng.uniform(0.2, 0.5) * rr ** rng.uniform(2.0, 3.5)
    vig *= np.clip((1.0 - rr) / 0.035, 0.0, 1.0) ** 0.5 * 0.35 + 0.65  # dark rim
    yy, xx = np.ogrid[:size, :size]
    phi = rng.uniform(0, math.tau)
    grad = 1.0 + rng.uniform(0.0, 0.22) * ((xx - eye.cx) * math.cos(phi) + (yy - eye.cy) * math.sin(phi)) / eye.radius
    light = (vig * grad * (1.0 + 0.05 * smooth_noise(rng, size, 3))).astype(np.float32)
    gains = np.array([rng.uniform(0.92, 1.08), rng.uniform(0.85, 1.12), rng.uniform(0.8, 1.2)], np.float32)
    gains *= rng.uniform(0.8, 1.15)
    img *= light[..., None]
    img *= gains
    np.clip(img, 0.0, 1.0, out=img)
    gamma = rng.uniform(0.8, 1.2)
    cv2.pow(img, gamma, dst=img)
    sigma = rng.uniform(0.35, 1.1) * eye.scale
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(0.003, 0.012)
    img *= eye.fov_weight[..., None]
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)

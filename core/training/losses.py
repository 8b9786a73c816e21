"""The paper's loss: the quadratic weighted kappa of a batch, made differentiable.

Kappa is what the grading is judged by, and its weights punish a grade 0 called 4
sixteen times more than a neighbour's confusion; so the paper trains on it directly
(docs/method.md section 3), replacing the hard predictions by the softmax outputs P:

    L = log(1 - kappa) = log(N / D)
    N = sum_k sum_c w(t_k, c) P_c(x_k)
    D = sum_i n_i sum_j w_ij sum_k P_j(x_k)
    w_ij = (i - j)^2 / (C - 1)^2,  n_i = share of class i among the batch's targets
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-7


def kappa_weights(n_classes: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(C, C) quadratic weights w_ij = (i - j)^2 / (C - 1)^2."""
    i = torch.arange(n_classes, device=device, dtype=dtype)
    return (i[:, None] - i[None, :]) ** 2 / (n_classes - 1) ** 2


def kappa_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """log(N / D) of one batch; ``logits`` (B, C) pre-softmax scores, ``targets`` (B,) grades.

    Computed in float32 whatever the autocast dtype (the log of a ratio of sums is
    sensitive to rounding). ``eps`` keeps the log finite for a perfect batch
    (N = 0) and a batch whose predictions all fall on one class equal to its targets.
    """
    logits = logits.float()
    n_classes = logits.shape[1]
    p = F.softmax(logits, dim=1)
    w = kappa_weights(n_classes, logits.device)
    num = (w[targets] * p).sum()
    share = torch.bincount(targets, minlength=n_classes).to(p.dtype) / targets.numel()
    den = (share @ w @ p.sum(dim=0))
    return torch.log(num + eps) - torch.log(den + eps)


class KappaLoss(nn.Module):
    """``kappa_loss`` as a module, for use beside ``nn.CrossEntropyLoss``."""

    def __init__(self, eps: float = EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return kappa_loss(logits, targets, self.eps)


def make_loss(name: str) -> nn.Module:
    """'kappa' (the paper's) or 'ce' (cross-entropy)."""
    if name == "kappa":
        return KappaLoss()
    if name == "ce":
        return nn.CrossEntropyLoss()
    raise ValueError(f"unknown loss '{name}' (kappa or ce)")

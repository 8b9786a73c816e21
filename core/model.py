"""The paper's network and the one layer table that everything else reads.

The module names reproduce the published checkpoint's keys (``features.N``,
``classifier.0/1``, ``output.0``) so that it loads strictly, without renaming.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

INPUT_SIZE = 640
N_GRADES = 5
GRADE_NAMES = (
    "No apparent DR",
    "Mild NPDR",
    "Moderate NPDR",
    "Severe NPDR",
    "Proliferative DR",
)
GRADE_ABBREVIATIONS = ("none", "mild", "mod", "sev", "PDR")  # for narrow tables (confusion matrices)
# Units whose activation is below this are treated as inactive by the
# propagation (lambda = 0), as in the authors' own implementation.
ACTIVE_THRESHOLD = 1e-5
BN_EPS = 1e-5


@dataclass(frozen=True)
class LayerSpec:
    """One row of the layer table (docs/method.md section 1).

    ``stride`` is the spacing of the layer's output grid in input pixels and
    ``offset`` the input coordinate (pixel centres at 0, 1, ...) of the centre of
    output unit 0's receptive field; together they place every unit exactly.
    """

    index: int
    kind: str  # "conv3x3", "conv2x2" or "linear"
    channels: int
    hidden: int  # output grid side (1 for the linear layer)
    stride: int
    offset: float
    rf_paper: int
    rf_exact: int
    pool_after: str | None  # "max" (2x2 s2), "avg" (4x4) or None

    @property
    def label(self) -> str:
        if self.kind == "linear":
            return f"Layer {self.index}: linear 64 -> 5 (feature scores)"
        return (
            f"Layer {self.index}: {self.kind}, {self.channels} filters, "
            f"{self.hidden}x{self.hidden}, receptive field {self.rf_paper} px"
        )


def _build_table() -> tuple[LayerSpec, ...]:
    rf_paper = (3, 5, 9, 13, 21, 29, 45, 61, 93, 125, 189, 253, 381, 509, 637)
    rf_exact = (3, 5, 10, 14, 24, 32, 52, 68, 108, 140, 220, 284, 444, 572, 764)
    block_channels = (16, 32, 64, 64, 64, 64, 64)
    rows: list[LayerSpec] = []
    stride, offset, size = 1, 0.0, INPUT_SIZE
    for block, ch in enumerate(block_channels):
        for j in range(2):
            idx = 2 * block + j + 1
            rows.append(
                LayerSpec(idx, "conv3x3", ch, size, stride, offset,
                          rf_paper[idx - 1], rf_exact[idx - 1], "max" if j == 1 else None)
            )
        # a 2x2 stride-2 max pool: unit i covers units 2i and 2i+1
        offset += stride / 2
        stride *= 2
        size //= 2
    # layer 15: 2x2 conv without padding on the 5x5 grid -> 4x4
    offset += stride / 2
    rows.append(LayerSpec(15, "conv2x2", 64, size - 1, stride, offset, rf_paper[14], rf_exact[14], "avg"))
    rows.append(LayerSpec(16, "linear", N_GRADES, 1, 0, 0.0, 0, 0, None))
    return tuple(rows)


LAYERS: tuple[LayerSpec, ...] = _build_table()
CONV_LAYERS: tuple[LayerSpec, ...] = LAYERS[:15]


def layer(index: int) -> LayerSpec:
    """The table row of layer ``index`` (1..16)."""
    if not 1 <= index <= len(LAYERS):
        raise ValueError(f"layer index must be 1..{len(LAYERS)}, got {index}")
    return LAYERS[index - 1]


def _conv_block(c_in: int, c_out: int, kernel: int, padding: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=True),
        nn.BatchNorm2d(c_out, eps=BN_EPS),
        nn.ReLU(inplace=False),
    ]


class DRNet(nn.Module):
    """17-layer DR grader (layer 17, the softmax, is applied by callers).

    ``widths`` overrides the channels of layers 1..15 (15 numbers) for a narrower
    model of the same topology; the layer table is unchanged.
    """

    def __init__(self, widths: Sequence[int] | None = None) -> None:
        super().__init__()
        widths = tuple(widths) if widths is not None else tuple(s.channels for s in CONV_LAYERS)
        if len(widths) != 15 or any(int(w) < 1 for w in widths):
            raise ValueError("widths must be 15 positive channel counts (layers 1..15)")
        self.widths = tuple(int(w) for w in widths)
        mods: list[nn.Module] = []
        c_in = 3
        for spec, w in zip(CONV_LAYERS[:14], self.widths[:14], strict=True):
            mods += _conv_block(c_in, w, 3, 1)
            if spec.pool_after == "max":
                mods.append(nn.MaxPool2d(2, 2))
            c_in = w
        self.features = nn.Sequential(*mods)
        self.classifier = nn.Sequential(*_conv_block(c_in, self.widths[14], 2, 0), nn.AvgPool2d(4))
        self.output = nn.Sequential(nn.Linear(self.widths[14], N_GRADES))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def blocks(self) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
        """(conv, BN) of layers 1..15, in order."""
        seq = list(self.features) + list(self.classifier)
        return [(m, seq[i + 1]) for i, m in enumerate(seq) if isinstance(m, nn.Conv2d)]

    @property
    def linear(self) -> nn.Linear:
        return self.output[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores, shape (N, 5)."""
        x = self.classifier(self.features(x))
        return self.output(torch.flatten(x, 1))


def softmax(scores: np.ndarray) -> np.ndarray:
    """Layer 17: the probabilities of the grades from the pre-softmax scores (last axis), in float64."""
    z = np.asarray(scores, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def batchnorm_terms(conv: nn.Conv2d, bn: nn.BatchNorm2d, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, gamma/sigma) in ``dtype``: in eval mode BN(conv(I)) = (gamma/sigma) * (W*I) + K per channel,
    with K = beta + gamma * (b - mu) / sigma (the paper's constant of the layer)."""
    mean, var = bn.running_mean.to(dtype), bn.running_var.to(dtype)
    scale = bn.weight.to(dtype) / torch.sqrt(var + bn.eps)
    bias = conv.bias.to(dtype) if conv.bias is not None else torch.zeros_like(mean)
    return bn.bias.to(dtype) + scale * (bias - mean), scale


def plain_copy(model: DRNet) -> DRNet:
    """An independent copy in PyTorch's default layout, eval mode, no gradients for its
    parameters, on the model's device: what a benchmark's baseline or a peer method may modify freely."""
    plain = DRNet(model.widths)
    plain.load_state_dict(model.state_dict())
    plain.eval().to(next(model.parameters()).device)
    for p in plain.parameters():
        p.requires_grad_(False)
    return plain


@torch.no_grad()
def folded_copy(model: DRNet) -> DRNet:
    """A copy with each batch norm folded into its conv (``batchnorm_terms``): the same
    function in eval mode, about a third fewer passes over memory."""
    fast = plain_copy(model)
    for seq in (fast.features, fast.classifier):
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                const, scale = batchnorm_terms(conv, bn, conv.weight.dtype)
                conv.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                conv.bias.copy_(const)
                seq[i + 1] = nn.Identity()
    return fast

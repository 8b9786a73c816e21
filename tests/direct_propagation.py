"""A literal, slow implementation of docs/method.md section 4, used to check the fast path.

It shares nothing with ``core.propagation`` but the network's parameters: scores
are divided by activations to get lambda, every product w * x of a convolution
is formed explicitly (unfold) and summed back onto the input element it used
(fold), average pooling is split in proportion to the activations, and max
pooling hands each score to the forward pass's winner.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from core.model import ACTIVE_THRESHOLD, DRNet


@torch.no_grad()
def direct_propagation(model: DRNet, x: torch.Tensor, grades: list[int] | None = None) -> dict:
    model = model.eval().double()
    x = x.double().contiguous()
    seq = list(model.features) + list(model.classifier)
    layers = []  # per conv layer: dict(input, out, conv, bn, pooled_from)
    h = x
    pending_pool = None
    for m_i, m in enumerate(seq):
        if isinstance(m, torch.nn.Conv2d):
            conv, bn = m, seq[m_i + 1]
            inp = h
            out = F.relu(bn(conv(inp)))
            layers.append({"input": inp, "out": out, "conv": conv, "bn": bn, "pool": pending_pool})
            pending_pool = None
            h = out
        elif isinstance(m, torch.nn.MaxPool2d):
            pre = h
            h, idx = F.max_pool2d(pre, 2, 2, return_indices=True)
            pending_pool = (pre.shape, idx)
    f = F.avg_pool2d(h, 4).flatten()  # (64,)
    w, b = model.linear.weight.double(), model.linear.bias.double()
    scores = (w @ f + b).numpy()
    grades = list(range(len(scores))) if grades is None else grades
    result = {"scores": scores, "grades": {}}
    for c in grades:
        features = (w[c] * f)
        o15 = layers[-1]["out"][0]  # (C, 4, 4)
        sums = o15.sum((1, 2))
        share = torch.where(sums.view(-1, 1, 1) > 0, o15 / sums.clamp_min(1e-300).view(-1, 1, 1), torch.zeros_like(o15))
        s_out = features.view(-1, 1, 1) * share  # score of every layer-15 unit
        hidden = {}
        for L in range(len(layers), 0, -1):
            lay = layers[L - 1]
            conv, bn, out = lay["conv"], lay["bn"], lay["out"][0]
            sigma = torch.sqrt(bn.running_var + bn.eps)
            gamma_over_sigma = bn.weight / sigma
            k_const = bn.bias + gamma_over_sigma * (conv.bias - bn.running_mean)
            active = out >= ACTIVE_THRESHOLD
            lam = torch.where(active, s_out / torch.where(active, out, torch.ones_like(out)), torch.zeros_like(out))
            constant = lam * k_const.view(-1, 1, 1)
            wi = F.conv2d(lay["input"], conv.weight, None, conv.stride, conv.padding)[0]
            input_dep = lam * gamma_over_sigma.view(-1, 1, 1) * wi
            hidden[L] = (input_dep.sum(0).numpy(), constant.sum(0).numpy())
            # split lambda*(gamma/sigma)*W*I over its products w*x, add them up per input element
            inp = lay["input"]
            kh, kw = conv.kernel_size
            cols = F.unfold(inp, (kh, kw), padding=conv.padding)  # (1, Cin*kh*kw, P)
            coef = (lam * gamma_over_sigma.view(-1, 1, 1)).reshape(out.shape[0], -1)  # (Cout, P)
            wmat = conv.weight.reshape(out.shape[0], -1)  # (Cout, Cin*kh*kw)
            products = (wmat.T @ coef) * cols[0]  # each product w*x, summed over outputs
            s_in = F.fold(products.unsqueeze(0), inp.shape[-2:], (kh, kw), padding=conv.padding)[0]
            if L == 1:
                input_map = s_in.sum(0).numpy()
                break
            if lay["pool"] is not None:
                shape, idx = lay["pool"]
                flat = torch.zeros(shape[1], shape[2] * shape[3], dtype=s_in.dtype)
                flat.scatter_(1, idx[0].flatten(1), s_in.flatten(1))
                s_out = flat.view(shape[1:])
            else:
                s_out = s_in
        result["grades"][c] = {
            "features": features.numpy(),
            "bias": float(b[c]),
            "hidden": hidden,
            "input_map": input_map,
        }
    return result


def random_network(widths: tuple[int, ...], seed: int) -> DRNet:
    """A small network of the paper's topology with random weights and BN statistics (float64)."""
    g = torch.Generator().manual_seed(seed)
    model = DRNet(widths).double()
    with torch.no_grad():
        for conv, bn in model.blocks():
            conv.weight.normal_(0, (2.0 / conv.weight[0].numel()) ** 0.5, generator=g)
            conv.bias.normal_(0, 0.1, generator=g)
            bn.weight.uniform_(0.5, 1.5, generator=g)
            bn.bias.normal_(0, 0.2, generator=g)
            bn.running_mean.normal_(0, 0.2, generator=g)
            bn.running_var.uniform_(0.5, 2.0, generator=g)
        model.linear.weight.normal_(0, 1.0, generator=g)
        model.linear.bias.normal_(0, 1.0, generator=g)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference relative to the larger array's peak magnitude."""
    scale = max(np.abs(a).max(), np.abs(b).max(), 1e-300)
    return float(np.abs(a - b).max() / scale)

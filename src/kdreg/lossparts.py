"""What every loss shares: the value checks, the median, per-sample squared norms, the label head."""
from __future__ import annotations

import contextlib
import contextvars

import numpy as np
import torch
from torch import Tensor


_CHECK_VALUES = contextvars.ContextVar("kdreg_check_values", default=True)


@contextlib.contextmanager
def values_checked_upstream():
    """Skip the per-call NaN / inf scan inside the losses: for a trainer that validated its targets once and
    checks the loss itself (the scan costs ~10% of a small model's training step)."""
    token = _CHECK_VALUES.set(False)
    try:
        yield
    finally:
        _CHECK_VALUES.reset(token)


def check_pair(a: Tensor, b: Tensor, names: str = "prediction and label") -> None:
    """Refuse mismatched shapes and non-finite values with a message that says which."""
    if a.shape != b.shape:
        raise ValueError(f"{names} have mismatched shapes {tuple(a.shape)} and {tuple(b.shape)}; "
                         "both must be (N, label_dim)")
    if not _CHECK_VALUES.get():
        return
    for name, x in zip(names.split(" and "), (a, b)):
        bad = ~torch.isfinite(x)
        if bad.any():
            raise ValueError(f"{name} holds {int(bad.sum())} NaN or infinite values "
                             f"(first at flat index {int(bad.flatten().nonzero()[0])}); clean or drop them first")


def median(x: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    """The textbook median (mean of the two middle values for even counts); ``Tensor.median`` takes the lower.

    Bit for bit ``torch.quantile(x, 0.5)``. On the CPU, without gradient, it is numpy's partition (a selection, no
    sort) and the same interpolation ``hi − (hi − lo)·0.5``: 4× faster for 50 × 800 values, and Tukey's loss takes
    two medians every step."""
    if (x.requires_grad and torch.is_grad_enabled()) or x.device.type != "cpu":
        return torch.quantile(x, 0.5, dim=dim, keepdim=keepdim)
    a = np.moveaxis(x.detach().numpy(), dim, -1)
    n = a.shape[-1]
    if n == 0:
        return torch.quantile(x, 0.5, dim=dim, keepdim=keepdim)  # its error or NaN, as before
    part = np.partition(a, [(n - 1) // 2, n // 2], axis=-1)
    lo, hi = part[..., (n - 1) // 2], part[..., n // 2]
    out = torch.from_numpy(np.asarray(hi - (hi - lo) * a.dtype.type(0.5)))
    return out.unsqueeze(dim if dim >= 0 else dim + x.dim()) if keepdim else out


def squared_norm(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample ``‖a − b‖²``: ``(N, D), (N, D) -> (N,)``."""
    d2 = (a - b).pow(2)
    # one label dimension: no reduction to run (the same values, without a reduction kernel per sample)
    return d2.squeeze(-1) if d2.shape[-1] == 1 else d2.sum(dim=-1)


def label_head(pred) -> Tensor:
    """The label output of a one- or two-headed student."""
    return pred.label if hasattr(pred, "label") else pred

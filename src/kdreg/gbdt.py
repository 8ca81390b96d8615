"""Gradient-boosted tree teachers (``teacher.kind: gbdt``): scikit-learn's ``HistGradientBoostingRegressor``, one
model per label dimension, with its number of trees chosen on the validation split.

On small tables boosted trees are often the strongest practical regressors, and a student never needs its
teacher's architecture: it reads the teacher's cached predictions. The fitted trees are kept as plain arrays
(:class:`TreeEnsemble`, a module whose state dict is those arrays), so a tree teacher is saved and loaded like
every other checkpoint: as tensors, never as a pickle.

Shapes: inputs ``(N, F)`` standardized; labels ``(N, D)`` standardized; a :class:`TreeEnsemble` holds T trees
of all D dimensions, their nodes concatenated (``(M,)`` per node field).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kdreg.trees import NODE_FIELDS, fit_trees

_FIELDS = tuple(NODE_FIELDS)
MAX_DEPTH = 256  # a bound on the walk from root to leaf (scikit-learn's trees are far shallower)


class TreeEnsemble(nn.Module):
    """Sums of regression trees, one sum per output: ``out[:, d] = baseline[d] + Σ_{t: dim[t] = d} leaf_t(x)``.
    A node goes left when ``x[feature] <= threshold`` (a NaN input: where ``missing_left`` says), as scikit-learn's
    predictor does. Buffers are set by :meth:`load_state_dict`, which checks every index before any is used."""

    def __init__(self, out_dim: int = 1):
        super().__init__()
        self.out_dim = int(out_dim)
        self.register_buffer("baseline", torch.zeros(self.out_dim, dtype=torch.float64))
        self.register_buffer("root", torch.zeros(0, dtype=torch.int64))      # (T,) each tree's first node
        self.register_buffer("dim", torch.zeros(0, dtype=torch.int64))       # (T,) the output it adds to
        self.register_buffer("depth", torch.zeros((), dtype=torch.int64))   # the deepest leaf
        for name, dtype in zip(_FIELDS, (torch.int64, torch.float64, torch.int64, torch.int64, torch.bool,
                                         torch.bool, torch.float64)):
            self.register_buffer(name, torch.zeros(0, dtype=dtype))         # (M,) per node

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        expected = {"baseline", "root", "dim", "depth", *_FIELDS}
        if set(state) != expected:
            raise ValueError(f"not a tree ensemble's state: keys {sorted(state)}, expected {sorted(expected)}")
        for name in expected:
            value = state[name]
            if not isinstance(value, torch.Tensor) or value.dtype != getattr(self, name).dtype:
                raise ValueError(f"tree ensemble state: {name} must be a {getattr(self, name).dtype} tensor")
        m, t = len(state["value"]), len(state["root"])
        if any(state[f].shape != (m,) for f in _FIELDS) or state["dim"].shape != (t,) or \
                state["baseline"].shape != (self.out_dim,) or state["depth"].shape != ():
            raise ValueError("tree ensemble state: its arrays disagree in length")
        for name, bound in (("left", m), ("right", m), ("root", m), ("dim", self.out_dim)):
            if len(state[name]) and (state[name].min() < 0 or state[name].max() >= bound):
                raise ValueError(f"tree ensemble state: {name} points outside its {bound} entries")
        if not 0 <= int(state["depth"]) <= MAX_DEPTH:
            raise ValueError(f"tree ensemble state: depth {int(state['depth'])} outside [0, {MAX_DEPTH}]")
        for name in expected:
            setattr(self, name, state[name].clone())
        return torch.nn.modules.module._IncompatibleKeys([], [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        idx = self.root.expand(len(x), -1).clone()                           # (N, T) each sample's node per tree
        if len(self.feature) and int(self.feature.max()) >= x.shape[1]:
            raise ValueError(f"tree ensemble splits on input {int(self.feature.max())}; the data has {x.shape[1]}")
        for _ in range(int(self.depth)):
            leaf = self.is_leaf[idx]
            if bool(leaf.all()):
                break
            v = x.gather(1, self.feature[idx])
            left = (v <= self.threshold[idx]) | (torch.isnan(v) & self.missing_left[idx])
            idx = torch.where(leaf, idx, torch.where(left, self.left[idx], self.right[idx]))
        out = self.baseline.expand(len(x), -1).clone()
        out.index_add_(1, self.dim, self.value[idx])
        return out.to(torch.float32)


def tree_ensemble(state: dict[str, np.ndarray], out_dim: int) -> TreeEnsemble:
    """A :class:`TreeEnsemble` of the arrays :func:`kdreg.trees.fit_trees` returns (checked as a loaded state)."""
    ensemble = TreeEnsemble(out_dim)
    ensemble.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in state.items()})  # 0-d stays
    return ensemble


def fit_gbdt(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, options: dict,
             seed: int) -> tuple[TreeEnsemble, list[int]]:
    """One regressor per label dimension on ``(x, y)`` (standardized), each cut to the number of trees whose
    prediction of ``y_val`` (the noisy validation labels, standardized) has the lowest median absolute error.
    Returns the ensemble and the kept number of trees per dimension (:func:`kdreg.trees.fit_trees`)."""
    state, kept = fit_trees(x, y, x_val, y_val, options, seed)
    return tree_ensemble(state, y.shape[1]), kept

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

# Defaults of ``teacher.gbdt`` (absent keys). The number of trees is an upper bound: the kept number is the
# iteration with the lowest validation median absolute error, as the network teachers' early stopping.
GBDT_DEFAULTS = {"loss": "squared_error", "quantile": 0.5, "max_iter": 300, "learning_rate": 0.05,
                 "max_leaf_nodes": 15, "min_samples_leaf": 10, "l2_regularization": 0.0}
GBDT_LOSSES = ("squared_error", "absolute_error", "quantile")
_FIELDS = ("feature", "threshold", "left", "right", "is_leaf", "missing_left", "value")
MAX_DEPTH = 256  # a bound on the walk from root to leaf (scikit-learn's trees are far shallower)


def gbdt_options(config: dict) -> dict:
    """``teacher.gbdt`` with its defaults, refusing unknown keys and bad values (the params check says the same)."""
    opts = dict(config.get("gbdt") or {})
    unknown = sorted(set(opts) - set(GBDT_DEFAULTS))
    if unknown:
        raise ValueError(f"teacher.gbdt: unknown key {unknown[0]!r}; known: {sorted(GBDT_DEFAULTS)}")
    opts = {**GBDT_DEFAULTS, **opts}
    if opts["loss"] not in GBDT_LOSSES:
        raise ValueError(f"teacher.gbdt.loss must be one of {list(GBDT_LOSSES)}, got {opts['loss']!r}")
    if not 0 < float(opts["quantile"]) < 1:
        raise ValueError(f"teacher.gbdt.quantile must be in (0, 1), got {opts['quantile']!r}")
    return opts


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
                state["baseline"].shape != (self.out_dim,):
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


def _export(models: list, kept: list[int]) -> dict[str, torch.Tensor]:
    """The first ``kept[d]`` trees of each dimension's fitted regressor as a :class:`TreeEnsemble` state."""
    fields = {f: [] for f in _FIELDS}
    root, dim, depth, offset = [], [], 0, 0
    for d, (model, n_trees) in enumerate(zip(models, kept)):
        for (predictor,) in model._predictors[:n_trees]:  # one tree per iteration for a regressor
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                raise ValueError("gbdt teacher: categorical splits are not supported (kdreg one-hot encodes)")
            fields["feature"].append(nodes["feature_idx"].astype(np.int64))
            fields["threshold"].append(nodes["num_threshold"].astype(np.float64))
            # leaves' children are 0 in scikit-learn: point them at themselves (never followed)
            own = np.arange(len(nodes), dtype=np.int64) + offset
            leaf = nodes["is_leaf"].astype(bool)
            fields["left"].append(np.where(leaf, own, nodes["left"].astype(np.int64) + offset))
            fields["right"].append(np.where(leaf, own, nodes["right"].astype(np.int64) + offset))
            fields["is_leaf"].append(leaf)
            fields["missing_left"].append(nodes["missing_go_to_left"].astype(bool))
            fields["value"].append(nodes["value"].astype(np.float64))
            root.append(offset)
            dim.append(d)
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
    state = {f: torch.from_numpy(np.concatenate(v) if v else np.zeros(0, dtype=np.float64)) for f, v in
             fields.items()}
    for f, dtype in (("feature", torch.int64), ("left", torch.int64), ("right", torch.int64),
                     ("is_leaf", torch.bool), ("missing_left", torch.bool)):
        state[f] = state[f].to(dtype)
    state.update(root=torch.tensor(root, dtype=torch.int64), dim=torch.tensor(dim, dtype=torch.int64),
                 depth=torch.tensor(depth, dtype=torch.int64),
                 baseline=torch.tensor([float(np.ravel(m._baseline_prediction)[0]) for m in models],
                                       dtype=torch.float64))
    return state


def fit_gbdt(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, options: dict,
             seed: int) -> tuple[TreeEnsemble, list[int]]:
    """One regressor per label dimension on ``(x, y)`` (standardized), each cut to the number of trees whose
    prediction of ``y_val`` (the noisy validation labels, standardized) has the lowest median absolute error.
    Returns the ensemble and the kept number of trees per dimension."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    opts = gbdt_options({"gbdt": options})
    models, kept = [], []
    for d in range(y.shape[1]):
        model = HistGradientBoostingRegressor(
            loss=opts["loss"], quantile=float(opts["quantile"]) if opts["loss"] == "quantile" else None,
            max_iter=int(opts["max_iter"]), learning_rate=float(opts["learning_rate"]),
            max_leaf_nodes=int(opts["max_leaf_nodes"]), min_samples_leaf=int(opts["min_samples_leaf"]),
            l2_regularization=float(opts["l2_regularization"]), early_stopping=False, random_state=seed)
        model.fit(x.astype(np.float64), y[:, d].astype(np.float64))
        errors = [np.median(np.abs(p - y_val[:, d])) for p in model.staged_predict(x_val.astype(np.float64))]
        models.append(model)
        kept.append(int(np.argmin(errors)) + 1)   # the first of equal minima: the smallest model
    ensemble = TreeEnsemble(y.shape[1])
    ensemble.load_state_dict(_export(models, kept))
    return ensemble, kept

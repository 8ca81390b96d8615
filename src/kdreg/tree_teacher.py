"""Boosted-tree teachers (``teacher.kind: gbdt``) for a group of models at once: a round's fits of every model
and fold are independent, so they are handed out together (:func:`kdreg.trees.tree_pool`: worker processes, or
one after another here) and each model's next round waits only for its own.

The same teacher as :func:`kdreg.teacher.train_teacher` trains a network: cross-fitted folds give each training
row a prediction from trees that never saw it, and a refinement round refits on the rows TOR keeps.
"""
from __future__ import annotations

import numpy as np
import torch

from kdreg.data import Dataset
from kdreg.gbdt import tree_ensemble
from kdreg.inputs import prepare
from kdreg.noise import NoisyLabels
from kdreg.rules import folds_problem
from kdreg.seeding import rng
from kdreg.refine import TeacherResult, refine_keep, round_record, teacher_options, teacher_result
from kdreg.teacher_kinds import (GBDT_REFINE_NEEDS_FOLDS, AllRowsRejected, ensemble_size, fit_seed,
                                 tree_folds)
from kdreg.trainer import predict
from kdreg.trees import fit_trees, tree_pool


def gbdt_problem(dataset: Dataset, config: dict) -> None:
    """Refuse a tree teacher the data or settings do not allow (the params check says the same before any job)."""
    if dataset.x_dev.ndim != 2 or dataset.e_dev is not None:
        raise ValueError("teacher.kind gbdt reads tables (one row of inputs per sample), not images; "
                         "use kind network or ensemble")
    if config.get("loss", "mse") != "mse" or config.get("refine_loss") not in (None, "mse"):
        raise ValueError("teacher.kind gbdt takes its loss from teacher.gbdt.loss (squared_error | absolute_error "
                         "| quantile); leave teacher.loss and refine_loss at mse")
    if int(config.get("refine_rounds", 0)) and int(config.get("cross_fit", 1)) == 1:
        raise ValueError(GBDT_REFINE_NEEDS_FOLDS)


def train_tree_teachers(dataset: Dataset, noisies: list[NoisyLabels], config: dict,
                        seeds: list[int]) -> list[TeacherResult]:
    """One tree teacher per (noisy labels, seed), on the CPU; each equals the one trained alone, byte for byte.
    Raises :class:`AllRowsRejected` when a refinement round keeps no row of some model."""
    config = tree_folds(config)
    gbdt_problem(dataset, config)
    ensemble_size(config)                                                # refuses an ensemble_size here
    _, _, k_folds, rounds = teacher_options(config)
    dev = torch.device("cpu")
    datas = [prepare(dataset, noisy, dev) for noisy in noisies]
    n = len(datas[0].x)
    if problem := folds_problem(n, k_folds):
        raise ValueError(problem)
    folds = [rng(seed, "folds").permutation(n) % k_folds if k_folds > 1 else np.zeros(n, dtype=int)
             for seed in seeds]                                          # each model's own folds, as alone
    options = config.get("gbdt") or {}
    y_vals = [data.y_scaler.transform(data.y_val) for data in datas]   # (V, D) each, standardized
    out_dim = int(datas[0].y.shape[1])
    keeps = [np.ones(n, dtype=bool) for _ in seeds]
    histories = [[] for _ in seeds]
    with tree_pool(len(seeds) * k_folds) as pool:
        for rnd in range(rounds + 1):
            fits = []                                                    # (model, fold) order
            for data, fold, keep, y_val, seed in zip(datas, folds, keeps, y_vals, seeds):
                for k in range(k_folds):
                    rows = np.flatnonzero(((fold != k) if k_folds > 1 else True) & keep)
                    if len(rows) == 0:
                        raise AllRowsRejected()
                    fits.append(pool.submit(fit_trees, data.x[rows].numpy(), data.y[rows].numpy(),
                                            data.x_val.numpy(), y_val, options, fit_seed(seed, k, rnd, 0)))
            trained = [[fits[b * k_folds + k].result() for k in range(k_folds)] for b in range(len(seeds))]
            models = [[tree_ensemble(state, out_dim) for state, _ in fitted] for fitted in trained]
            t_trains = [_out_of_fold(ms, data, fold) for ms, data, fold in zip(models, datas, folds)]
            if rnd < rounds:
                for b, (data, t_train) in enumerate(zip(datas, t_trains)):
                    keeps[b], readmitted = refine_keep(config, data, t_train)
                    histories[b].append(round_record(rnd, keeps[b], readmitted, config))
    mcfg = {"kind": "gbdt", "in_dim": int(datas[0].x.shape[1]), "out_dim": out_dim}
    results = []
    for ms, fitted, data, t_train, history in zip(models, trained, datas, t_trains, histories):
        t_val = np.mean([predict(m, data.x_val) for m in ms], axis=0)
        t_test = np.mean([predict(m, data.x_test) for m in ms], axis=0)
        result = teacher_result(dataset, data, t_train, t_val, t_test, [m.state_dict() for m in ms], mcfg, [],
                                 history, 0)
        result.metrics["trees"] = [kept for _, kept in fitted]  # per fit, the trees kept per label dimension
        results.append(result)
    return results


def _out_of_fold(models: list, data, fold: np.ndarray) -> np.ndarray:
    """``(N, D)`` standardized: each training row predicted by the trees of its fold (all rows with one fit)."""
    t_train = np.zeros_like(data.y.numpy())
    for k, model in enumerate(models):
        own = fold == k if len(models) > 1 else np.ones(len(fold), dtype=bool)
        t_train[own] = predict(model, data.x[torch.as_tensor(np.flatnonzero(own))])
    return t_train

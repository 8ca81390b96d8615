"""Teacher kinds (``teacher.kind``): what one teacher is, beside how it trains (:mod:`kdreg.teacher`).

``network`` (the default): one network of ``teacher.model``, the paper's teacher. ``ensemble``: the mean of
``teacher.ensemble_size`` such networks that differ only in their initialization and mini-batch order; they train
side by side in the teacher stack, so M of them cost about M× the arithmetic of one. ``gbdt``: gradient-boosted
trees (:mod:`kdreg.gbdt`), one model per label dimension, trees chosen on validation; tables only. ``auto``: each
kind of ``auto_kinds`` is trained, and each model keeps the one with the lowest noisy-validation median absolute
error (the criterion every teacher's early stopping uses): chosen on validation, never on test.
"""
from __future__ import annotations

import numpy as np

from kdreg.data import Dataset
from kdreg.metrics import task_metrics
from kdreg.noise import NoisyLabels
from kdreg.seeding import derive_seed

TEACHER_KINDS = ("network", "ensemble", "gbdt", "auto")  # gbdt: boosted trees (kdreg.gbdt), tables only
AUTO_KINDS = ("network", "gbdt")  # teacher.auto_kinds' default: the ensemble costs ensemble_size× a network
DEFAULT_ENSEMBLE_SIZE = 5


def ensemble_size(config: dict) -> int:
    """The networks one teacher fit averages: 1 for ``kind: network``, ``ensemble_size`` (default 5) for
    ``kind: ensemble``."""
    kind = config.get("kind", "network")
    if kind not in TEACHER_KINDS:
        raise ValueError(f"teacher.kind must be one of {list(TEACHER_KINDS)}, got {kind!r}")
    size = config.get("ensemble_size", DEFAULT_ENSEMBLE_SIZE if kind == "ensemble" else 1)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"teacher.ensemble_size must be an integer >= 1, got {size!r}")
    if kind not in ("ensemble", "auto") and size != 1:
        raise ValueError(f"teacher.ensemble_size {size} needs teacher.kind: ensemble (kind {kind} is one model)")
    return size if kind == "ensemble" else 1


def deployed_networks(config: dict, metrics: dict) -> int:
    """The networks a trained teacher deploys: an ``auto`` teacher deploys the kind it chose (its metrics'
    ``teacher_kind``), and only an ensemble holds more than one, whatever ``ensemble_size`` the candidates had."""
    chosen = metrics.get("teacher_kind") or config.get("kind") or "network"
    return ensemble_size({**config, "kind": "ensemble"}) if chosen == "ensemble" else 1


# Trees fit their own training rows almost exactly, so their in-sample residuals cannot tell a wrong label from a
# right one (measured: the mixture rejected every row of a clean table): rejection needs out-of-fold predictions.
GBDT_REFINE_NEEDS_FOLDS = ("teacher.kind gbdt with refine_rounds needs out-of-fold predictions, and trees fit their "
                           "own training rows: set teacher.gbdt.cross_fit: 5 (the trees' own folds) or "
                           "teacher.cross_fit: 5")


def tree_folds(config: dict) -> dict:
    """A tree teacher's settings with its own folds: ``gbdt.cross_fit``, when set, stands for ``cross_fit``. Under
    ``kind: auto`` the trees then refine on out-of-fold predictions while the networks fit every row once (K folds
    would cost a network K fits)."""
    gbdt = dict(config.get("gbdt") or {})
    if "cross_fit" not in gbdt:
        return config
    return {**config, "cross_fit": gbdt.pop("cross_fit"), "gbdt": gbdt}


class AllRowsRejected(ValueError):
    """A refinement round's TOR kept no training row: the teacher it refits cannot be trained."""

    def __init__(self):
        super().__init__("teacher refinement rejected every training sample; loosen the tor threshold")


def auto_kinds(config: dict) -> list[str]:
    """The kinds ``kind: auto`` chooses from."""
    kinds = list(config.get("auto_kinds") or AUTO_KINDS)
    bad = [k for k in kinds if k not in TEACHER_KINDS or k == "auto"]
    if bad or len(set(kinds)) != len(kinds):
        raise ValueError(f"teacher.auto_kinds must be distinct kinds of {list(TEACHER_KINDS[:-1])}, got {kinds}")
    return kinds


def validation_error(result, dataset: Dataset, noisy: NoisyLabels) -> float:
    """The median Euclidean error of a TeacherResult's validation predictions against the noisy validation labels."""
    return float(np.median(np.sqrt(((result.t_dev[dataset.val] - noisy.y[dataset.val]) ** 2).sum(axis=1))))


def candidate_config(config: dict, kind: str) -> dict:
    """The teacher config ``kind: auto`` trains its candidate ``kind`` with: the auto settings dropped, and each
    kind's own settings kept for that kind only."""
    cfg = {**{k: v for k, v in config.items() if k not in ("kind", "auto_kinds")}, "kind": kind}
    if kind != "ensemble":
        cfg.pop("ensemble_size", None)
    if kind == "gbdt":  # trees take their loss from teacher.gbdt.loss
        cfg.update(loss="mse", refine_loss=None)
    else:
        cfg.pop("gbdt", None)
    return cfg


def train_auto(dataset: Dataset, noisies: list[NoisyLabels], config: dict, seeds: list[int], train_many, train_one,
               **how) -> list:
    """``kind: auto``: every kind of ``auto_kinds`` for every model; each keeps the kind with the lowest
    validation error, named in its metrics (``teacher_kind``) beside every kind's (``teacher_kind_val_errors``)."""
    kinds = auto_kinds(config)
    if dataset.x_dev.ndim != 2 or dataset.e_dev is not None:
        kinds = [k for k in kinds if k != "gbdt"]                  # trees read tables only
        if not kinds:
            raise ValueError("teacher.auto_kinds: gbdt alone, and trees read tables, not images; add network or "
                             "ensemble")
    trained = {kind: train_candidate(dataset, noisies, candidate_config(config, kind), seeds, train_many, train_one,
                                     **how) for kind in kinds}
    chosen = []
    for i, noisy in enumerate(noisies):
        errors = {k: (float("inf") if isinstance(trained[k][i], AllRowsRejected)
                      else validation_error(trained[k][i], dataset, noisy)) for k in kinds}
        best = min(kinds, key=lambda k: errors[k])                 # the first listed of equal errors
        result = trained[best][i]
        if isinstance(result, AllRowsRejected):                    # every candidate failed: say why
            raise result
        result.metrics.update(teacher_kind=best,
                              teacher_kind_val_errors={k: round(e, 9) if np.isfinite(e) else None  # None: failed
                                                       for k, e in errors.items()})
        # every candidate's scores as scalars (kind_gbdt_rmse, ...), so the tables compare the kinds per level;
        # the test scores are reported only, the choice above read validation alone
        for k in kinds:
            if not isinstance(trained[k][i], AllRowsRejected):
                result.metrics.update(task_metrics(trained[k][i].t_test, dataset.y_test, dataset.task, f"kind_{k}_"))
                result.metrics[f"kind_{k}_val_error"] = errors[k]
        chosen.append(result)
    return chosen


def train_candidate(dataset: Dataset, noisies: list[NoisyLabels], config: dict, seeds: list[int], train_many,
                    train_one, **how) -> list:
    """One candidate kind's teacher for every model (``train_many`` on them all); where a model's refit kept no
    row, that model's entry is the :class:`AllRowsRejected` (the candidate drops out for that model only)."""
    try:
        return train_many(dataset, noisies, config, seeds, **how)
    except AllRowsRejected:
        return [_or_error(train_one, dataset, n, config, s, how.get("device", "auto")) for n, s in zip(noisies, seeds)]


def _or_error(train_one, dataset: Dataset, noisy: NoisyLabels, config: dict, seed: int, device: str):
    """One model of an auto candidate alone: its TeacherResult, or the rejection that stopped it."""
    try:
        return train_one(dataset, noisy, config, seed, device)
    except AllRowsRejected as err:
        return err


def fit_seed(seed: int, fold: int, rnd: int, member: int) -> int:
    """The seed of one network: ensemble member 0 has the single network's, so an ensemble of one is that teacher."""
    return derive_seed(seed, "teacher", fold, rnd) if member == 0 else derive_seed(seed, "teacher", fold, rnd,
                                                                                   "ensemble", member)

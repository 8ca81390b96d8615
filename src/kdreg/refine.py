"""What every kind of teacher shares (:mod:`kdreg.teacher` trains networks, :mod:`kdreg.tree_teacher` boosted
trees): its settings, its result, and the refinement rounds that reject with TOR and refit on what is kept.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kdreg import metrics as M
from kdreg.data import Dataset, Standardizer
from kdreg.inputs import Prepared
from kdreg.losses import TORLoss, loss_options
from kdreg.methods import TEACHER_LOSSES
from kdreg.metrics import task_metrics
from kdreg.teacher_kinds import AllRowsRejected
from kdreg.trainer import TrainSettings


@dataclass
class TeacherResult:
    t_dev: np.ndarray        # (N_dev, D) teacher predictions on every development sample, original units
    t_test: np.ndarray       # (M, D)
    states: list[dict]       # one state_dict per cross-fit teacher
    model_config: dict
    metrics: dict
    y_scaler: Standardizer
    x_scaler: Standardizer | None


def teacher_options(config: dict) -> tuple[TrainSettings, str, int, int]:
    settings = TrainSettings.from_dict(config.get("train"))
    loss_name = config.get("loss", "mse")
    for key in ("loss", "refine_loss"):
        if config.get(key) is not None and config[key] not in TEACHER_LOSSES:
            raise ValueError(f"teacher.{key} must be one of {sorted(TEACHER_LOSSES)}, got {config[key]!r}")
    k_folds, rounds = int(config.get("cross_fit", 1)), int(config.get("refine_rounds", 0))
    if k_folds < 1 or rounds < 0:
        raise ValueError(f"teacher.cross_fit must be >= 1 and refine_rounds >= 0, got {k_folds}, {rounds}")
    return settings, loss_name, k_folds, rounds


def teacher_result(dataset: Dataset, data: Prepared, t_train, t_val, t_test, states, mcfg, best_epochs,
                    history, epochs_trained: int) -> TeacherResult:
    """Assemble predictions (standardized in, original units out) and metrics of one teacher."""
    t_dev = np.zeros(dataset.y_dev.shape, dtype=np.float32)
    t_dev[~dataset.val] = data.y_scaler.inverse(t_train)
    t_dev[dataset.val] = data.y_scaler.inverse(t_val)
    t_test = data.y_scaler.inverse(t_test)
    metrics = task_metrics(t_test, dataset.y_test, dataset.task)
    metrics.update(best_epochs=best_epochs, epochs_trained=epochs_trained, refine=history,
                   train_rmse_vs_clean=M.rmse(t_dev[~dataset.val], dataset.y_dev[~dataset.val]))
    return TeacherResult(t_dev=t_dev, t_test=t_test, states=states, model_config=mcfg, metrics=metrics,
                         y_scaler=data.y_scaler, x_scaler=data.x_scaler)


def refine_keep(config: dict, data: Prepared, t_train: np.ndarray) -> tuple[np.ndarray, int]:
    """The samples a refinement round keeps: TOR (``config["tor"]``) of the labels against the previous round's
    out-of-fold predictions ``t_train`` (standardized), ``(N,)`` bool; then, with ``refine_readmit``, the rejected
    rows of rejected regions back in (:func:`readmit_rejected_regions`). Also how many rows that re-admitted."""
    tor = TORLoss(**tor_options(config.get("tor")), label_scale=data.y_scaler.scale)
    t = torch.as_tensor(t_train, device=data.y.device)
    keep = tor.fit(data.y, t).keep_mask(data.y, t).cpu().numpy()
    readmitted = 0
    if config.get("refine_readmit"):
        guard = config["refine_readmit"]
        guarded = readmit_rejected_regions(data.x.cpu().numpy(), keep, guard["neighbours"], guard["share"])
        readmitted, keep = int(guarded.sum() - keep.sum()), guarded
    if not keep.any():
        raise AllRowsRejected()
    return keep, readmitted


def readmit_rejected_regions(x: np.ndarray, keep: np.ndarray, neighbours: int, share: float) -> np.ndarray:
    """``keep`` with every rejected row whose neighbourhood (itself and its ``neighbours`` nearest rows in the
    standardized inputs ``x`` (N, F)) is rejected in a share above ``share`` kept again.

    Why: label noise falls on rows at random, so rejected rows are scattered among kept ones (at a corrupted share
    p, a neighbourhood of 21 is 90% rejected with probability below 1e-5 for p <= 0.4). A region rejected whole is
    one the teacher did not fit (a redescending loss stops learning where it starts far off); a refit that never
    sees it extrapolates there, and every student reading that teacher fails with it.
    """
    from sklearn.neighbors import NearestNeighbors
    if x.ndim != 2:
        raise ValueError(f"teacher.refine_readmit finds rejected regions among a table's rows; these inputs are "
                         f"{x.ndim}-D (images): remove refine_readmit")
    n = len(keep)
    k = min(neighbours, n - 1)
    if k < 1 or keep.all():
        return keep
    nearest = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)  # (N, k+1), self incl.
    rejected_share = (~keep)[nearest].mean(axis=1)
    return keep | (rejected_share > share)


def round_record(rnd: int, keep: np.ndarray, readmitted: int, config: dict) -> dict:
    """A refinement round in the teacher's metrics: the share of rows it kept (and re-admitted, with the guard)."""
    record = {"round": rnd, "kept_fraction": float(keep.mean())}
    if config.get("refine_readmit"):
        record["readmitted_fraction"] = readmitted / len(keep)
    return record


def tor_options(cfg: dict | None) -> dict:
    return loss_options("tor", {"tor": cfg or {}})

"""Teacher and student training on one (dataset, noise level, seed).

Targets are robustly standardized (median, 1.4826·MAD of the noisy training labels); predictions and metrics
are returned in original label units. Data that fits in memory stays on the device as tensors and mini-batches
are index permutations, so a training step has no loader overhead.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from kdreg import metrics as M
from kdreg.data import Dataset, Standardizer
from kdreg.losses import TORLoss, get_loss, get_method, loss_options
from kdreg.models import TwoHeadOutput, create_model, resolve_device, select_head
from kdreg.noise import NoisyLabels
from kdreg.seeding import derive_seed, rng

TEACHER_LOSSES = {"mse": "scratch", "huber": "huber", "tukey": "tukey"}


@dataclass
class TrainSettings:
    """Optimization settings of one model. ``batch_size: None`` trains full batch."""

    epochs: int = 200
    lr: float = 1e-3
    batch_size: int | None = None
    weight_decay: float = 0.0
    eval_every: int = 10  # teacher: epochs between validation checks for early stopping

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainSettings":
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        s = cls(**d)
        if s.epochs < 1 or s.lr <= 0 or (s.batch_size is not None and s.batch_size < 1) or s.eval_every < 1:
            raise ValueError(f"training settings out of range: {s} (epochs, eval_every, batch_size >= 1; lr > 0)")
        return s


@dataclass
class Prepared:
    """The training split of one noisy dataset, standardized, as tensors on the device."""

    x: torch.Tensor        # (N, ...) inputs
    y: torch.Tensor        # (N, D) standardized noisy labels
    y_clean: torch.Tensor  # (N, D) standardized clean labels (oracle only)
    x_val: torch.Tensor
    y_val: np.ndarray      # (V, D) noisy validation labels, original units
    x_test: torch.Tensor
    corrupted: np.ndarray  # (N,) bool
    y_scaler: Standardizer
    x_scaler: Standardizer | None


def prepare(dataset: Dataset, noisy: NoisyLabels, device: torch.device) -> Prepared:
    if noisy.y.shape != dataset.y_dev.shape:
        raise ValueError(f"noisy labels {noisy.y.shape} do not match the dataset's labels {dataset.y_dev.shape}; "
                         "they were made from another dataset: rerun the noise step")
    tr, va = ~dataset.val, dataset.val
    y_scaler = Standardizer.robust(noisy.y[tr])
    # Tabular inputs are standardized on the training split; images arrive already scaled to [0, 1].
    x_scaler = Standardizer.mean_std(dataset.x_dev[tr]) if dataset.x_dev.ndim == 2 else None

    def x_tensor(x):
        x = x_scaler.transform(x) if x_scaler is not None else np.asarray(x, dtype=np.float32)
        return torch.as_tensor(x, device=device)

    def y_tensor(y):
        return torch.as_tensor(y_scaler.transform(y), device=device)

    return Prepared(x=x_tensor(dataset.x_dev[tr]), y=y_tensor(noisy.y[tr]), y_clean=y_tensor(dataset.y_dev[tr]),
                    x_val=x_tensor(dataset.x_dev[va]), y_val=noisy.y[va], x_test=x_tensor(dataset.x_test),
                    corrupted=noisy.mask[tr], y_scaler=y_scaler, x_scaler=x_scaler)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 8192):
    """Standardized predictions as numpy: an ``(N, D)`` array, or a TwoHeadOutput of two."""
    model.eval()
    outs = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    model.train()
    if isinstance(outs[0], TwoHeadOutput):
        return TwoHeadOutput(*(torch.cat([o[h] for o in outs]).cpu().numpy() for h in range(2)))
    return torch.cat(outs).cpu().numpy()


def fit(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None,
        settings: TrainSettings, seed: int, on_eval=None, desc: str = "train") -> None:
    """Adam on ``loss_fn(model(x), y, t)``; ``on_eval(epoch)`` runs every ``eval_every`` epochs and at the end."""
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    gen = torch.Generator().manual_seed(derive_seed(seed, "batches"))
    n = len(x)
    bs = n if settings.batch_size is None else min(settings.batch_size, n)
    model.train()
    for epoch in tqdm(range(1, settings.epochs + 1), desc=desc, leave=False, disable=None):
        # Full batch needs no permutation; mini-batches are slices of one permutation per epoch.
        batches = [None] if bs == n else torch.randperm(n, generator=gen).to(x.device).split(bs)
        for idx in batches:
            xb, yb, tb = (x, y, t) if idx is None else (x[idx], y[idx], None if t is None else t[idx])
            loss = loss_fn(model(xb), yb, tb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if on_eval is not None and (epoch % settings.eval_every == 0 or epoch == settings.epochs):
            on_eval(epoch)


def task_metrics(pred: np.ndarray, target: np.ndarray, task: str, prefix: str = "") -> dict[str, float]:
    """Test metrics in original units: RMSE and MAE; for gaze also the mean angular error in degrees."""
    out = {f"{prefix}rmse": M.rmse(pred, target), f"{prefix}mae": M.mae(pred, target)}
    if task == "gaze":
        out[f"{prefix}angular_deg"] = M.angular_error_deg(pred, target)
    return out


def model_config(dataset: Dataset, model_cfg: dict, heads: int = 1) -> dict:
    return {"kind": "mlp", "in_dim": int(np.prod(dataset.x_dev.shape[1:])), "out_dim": dataset.label_dim,
            "heads": heads, **model_cfg}


# ----------------------------------------------------------------------------------------------- teacher


@dataclass
class TeacherResult:
    t_dev: np.ndarray        # (N_dev, D) teacher predictions on every development sample, original units
    t_test: np.ndarray       # (M, D)
    states: list[dict]       # one state_dict per cross-fit teacher
    model_config: dict
    metrics: dict
    y_scaler: Standardizer
    x_scaler: Standardizer | None


def train_teacher(dataset: Dataset, noisy: NoisyLabels, config: dict, seed: int, device: str = "auto") -> TeacherResult:
    """Train the teacher on the noisy labels with early stopping on the validation median absolute error.

    ``config``: ``model`` (architecture), ``train`` (:class:`TrainSettings`), ``loss`` (mse | huber | tukey),
    ``cross_fit`` K (K teachers, each predicting the training fold it did not see), ``refine_rounds`` R (reject
    with TOR against the teacher's own predictions and retrain on the kept samples, R times), ``tor`` (the
    rejection options used by refinement).
    """
    dev = resolve_device(device)
    data = prepare(dataset, noisy, dev)
    settings = TrainSettings.from_dict(config.get("train"))
    loss_name = config.get("loss", "mse")
    if loss_name not in TEACHER_LOSSES:
        raise ValueError(f"teacher.loss must be one of {sorted(TEACHER_LOSSES)}, got {loss_name!r}")
    k_folds, rounds = int(config.get("cross_fit", 1)), int(config.get("refine_rounds", 0))
    if k_folds < 1 or rounds < 0:
        raise ValueError(f"teacher.cross_fit must be >= 1 and refine_rounds >= 0, got {k_folds}, {rounds}")
    n = len(data.x)
    if k_folds > 1 and n < 2 * k_folds:
        raise ValueError(f"{n} training samples are too few for cross_fit: {k_folds}")
    fold = (rng(seed, "folds").permutation(n) % k_folds if k_folds > 1
            else np.zeros(n, dtype=int))
    mcfg = model_config(dataset, config.get("model", {}))
    keep = np.ones(n, dtype=bool)
    history = []
    for rnd in range(rounds + 1):
        t_train = np.zeros_like(data.y.cpu().numpy())
        models, best_epochs = [], []
        for k in range(k_folds):
            train_idx = np.flatnonzero(((fold != k) if k_folds > 1 else True) & keep)
            if len(train_idx) == 0:
                raise ValueError("teacher refinement rejected every training sample; loosen the tor threshold")
            model, best_epoch = _fit_teacher(mcfg, data, train_idx, get_loss(TEACHER_LOSSES[loss_name]),
                                             settings, derive_seed(seed, "teacher", k, rnd), dev,
                                             desc=f"teacher {k + 1}/{k_folds} round {rnd}")
            own = fold == k if k_folds > 1 else np.ones(n, dtype=bool)
            t_train[own] = predict(model, data.x[torch.as_tensor(np.flatnonzero(own), device=dev)])
            models.append(model)
            best_epochs.append(best_epoch)
        if rnd < rounds:
            tor = TORLoss(**_tor_options(config.get("tor")), label_scale=data.y_scaler.scale)
            y_t, t_t = data.y, torch.as_tensor(t_train, device=dev)
            keep = tor.fit(y_t, t_t).keep_mask(y_t, t_t).cpu().numpy()
            history.append({"round": rnd, "kept_fraction": float(keep.mean())})

    t_val = np.mean([predict(m, data.x_val) for m in models], axis=0)
    t_test = np.mean([predict(m, data.x_test) for m in models], axis=0)
    t_dev = np.zeros(dataset.y_dev.shape, dtype=np.float32)
    t_dev[~dataset.val] = data.y_scaler.inverse(t_train)
    t_dev[dataset.val] = data.y_scaler.inverse(t_val)
    t_test = data.y_scaler.inverse(t_test)
    metrics = task_metrics(t_test, dataset.y_test, dataset.task)
    metrics.update(best_epochs=best_epochs, refine=history,
                   train_rmse_vs_clean=M.rmse(t_dev[~dataset.val], dataset.y_dev[~dataset.val]))
    return TeacherResult(t_dev=t_dev, t_test=t_test, states=[m.state_dict() for m in models],
                         model_config=mcfg, metrics=metrics, y_scaler=data.y_scaler, x_scaler=data.x_scaler)


def _fit_teacher(mcfg, data: Prepared, train_idx, loss_fn, settings, seed, dev, desc):
    torch.manual_seed(seed)
    model = create_model(mcfg).to(dev)
    idx = torch.as_tensor(train_idx, device=dev)
    best = {"err": float("inf"), "epoch": 0, "state": None}

    def on_eval(epoch):
        pred = data.y_scaler.inverse(predict(model, data.x_val))
        err = float(np.median(np.sqrt(((pred - data.y_val) ** 2).sum(axis=1))))
        if err < best["err"]:  # strict: ties keep the earlier, less memorized epoch
            best.update(err=err, epoch=epoch, state=copy.deepcopy(model.state_dict()))

    fit(model, loss_fn, data.x[idx], data.y[idx], None, settings, seed, on_eval=on_eval, desc=desc)
    model.load_state_dict(best["state"])
    return model, best["epoch"]


def _tor_options(cfg: dict | None) -> dict:
    return loss_options("tor", {"tor": cfg or {}})


# ----------------------------------------------------------------------------------------------- student


@dataclass
class StudentResult:
    state: dict
    model_config: dict
    metrics: dict
    test_pred: np.ndarray | TwoHeadOutput  # original units
    y_scaler: Standardizer
    x_scaler: Standardizer | None


def train_student(dataset: Dataset, noisy: NoisyLabels, t_dev: np.ndarray | None, method: str, config: dict,
                  seed: int, device: str = "auto") -> StudentResult:
    """Train one student with ``method``'s loss against the cached teacher predictions ``t_dev``.

    ``config``: ``model``, ``train``, ``loss_options`` (per-method loss options, as in params.yaml), ``predict_head``
    (label | teacher | mean: the output used for the headline metric of two-headed students).
    """
    spec = get_method(method)
    if spec.uses_teacher and t_dev is None:
        raise ValueError(f"method {method!r} needs teacher predictions")
    if t_dev is not None and np.shape(t_dev) != dataset.y_dev.shape:
        raise ValueError(f"teacher predictions {np.shape(t_dev)} do not match the labels {dataset.y_dev.shape}; "
                         "they belong to another dataset: retrain the teacher")
    dev = resolve_device(device)
    data = prepare(dataset, noisy, dev)
    settings = TrainSettings.from_dict(config.get("train"))
    head = config.get("predict_head", "label")
    tr = ~dataset.val
    t = torch.as_tensor(data.y_scaler.transform(t_dev[tr]), device=dev) if t_dev is not None else None
    y = data.y_clean if spec.clean_labels else data.y

    options = loss_options(method, config.get("loss_options") or {})
    if method in ("tor", "tor_multitask"):
        options["label_scale"] = data.y_scaler.scale
    loss_fn = get_loss(method, **options).to(dev)
    if hasattr(loss_fn, "fit"):
        loss_fn.fit(y, t)

    # One init per seed for every method, so methods are compared on paired initializations.
    seed_ = derive_seed(seed, "student")
    torch.manual_seed(seed_)
    mcfg = model_config(dataset, config.get("model", {}), heads=spec.heads)
    model = create_model(mcfg).to(dev)
    fit(model, loss_fn, data.x, y, t, settings, seed_, desc=f"student {method}")

    out = predict(model, data.x_test)
    inv = data.y_scaler.inverse
    test_pred = TwoHeadOutput(inv(out.label), inv(out.teacher)) if isinstance(out, TwoHeadOutput) else inv(out)
    metrics = task_metrics(select_head(test_pred, head), dataset.y_test, dataset.task)
    if isinstance(test_pred, TwoHeadOutput):
        for name in ("label", "teacher", "mean"):
            metrics.update(task_metrics(select_head(test_pred, name), dataset.y_test, dataset.task, f"{name}_head_"))
    tor = getattr(loss_fn, "label_loss", loss_fn)
    if isinstance(tor, TORLoss):
        rejected = ~tor.keep_mask(y, t).cpu().numpy()
        metrics.update({f"rejection_{k}": v for k, v in M.rejection_quality(rejected, data.corrupted).items()})
    return StudentResult(state=model.state_dict(), model_config=mcfg, metrics=metrics, test_pred=test_pred,
                         y_scaler=data.y_scaler, x_scaler=data.x_scaler)

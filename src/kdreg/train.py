"""Teacher and student training on one dataset, for one (noise level, seed) or a group of them.

Targets are robustly standardized (median, 1.4826·MAD of the noisy training labels); predictions and metrics
are returned in original label units. Data that fits in memory stays on the device as tensors and mini-batches
are index permutations, so a training step has no loader overhead. Groups of MLPs of one architecture train
stacked (:mod:`kdreg.stacked`): one optimizer step updates every model of the group.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from kdreg import metrics as M
from kdreg.data import Dataset, Standardizer
from kdreg.io import load_checkpoint, save_checkpoint
from kdreg.losses import TORLoss, check_pair, get_loss, get_method, loss_options, values_checked_upstream
from kdreg.models import TwoHeadOutput, create_model, resolve_device, select_head
from kdreg.noise import NoisyLabels
from kdreg.seeding import derive_seed, rng
from kdreg.stacked import StackedMLP

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


class Inputs:
    """Several input tensors of one set of samples (eye images and head pose), indexed together."""

    def __init__(self, *tensors: torch.Tensor):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, idx) -> "Inputs":
        return Inputs(*(t[idx] for t in self.tensors))


def _call(model: nn.Module, x):
    return model(*x.tensors) if isinstance(x, Inputs) else model(x)


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


def model_inputs(x: np.ndarray, e: np.ndarray | None, x_scaler: Standardizer | None, device):
    """What a model is called with: standardized tabular inputs (or uint8 images, which the network scales to
    [0, 1], kept 4× smaller), plus the extra inputs (head pose) when there are any."""
    if x_scaler is not None:
        x = x_scaler.transform(x)
    elif x.dtype != np.uint8:
        x = np.asarray(x, dtype=np.float32)
    x = torch.as_tensor(np.ascontiguousarray(x), device=device)
    return x if e is None else Inputs(x, torch.as_tensor(np.asarray(e, dtype=np.float32), device=device))


def prepare(dataset: Dataset, noisy: NoisyLabels, device: torch.device) -> Prepared:
    if noisy.y.shape != dataset.y_dev.shape:
        raise ValueError(f"noisy labels {noisy.y.shape} do not match the dataset's labels {dataset.y_dev.shape}; "
                         "they were made from another dataset: rerun the noise step")
    tr, va = ~dataset.val, dataset.val
    y_scaler = Standardizer.robust(noisy.y[tr])
    # Tabular inputs are standardized on the training split; images arrive already scaled to [0, 1].
    x_scaler = Standardizer.mean_std(dataset.x_dev[tr]) if dataset.x_dev.ndim == 2 else None

    def x_tensor(x, e):
        return model_inputs(x, e, x_scaler, device)

    def y_tensor(y):
        return torch.as_tensor(y_scaler.transform(y), device=device)

    e_dev = dataset.e_dev
    return Prepared(x=x_tensor(dataset.x_dev[tr], None if e_dev is None else e_dev[tr]), y=y_tensor(noisy.y[tr]),
                    y_clean=y_tensor(dataset.y_dev[tr]),
                    x_val=x_tensor(dataset.x_dev[va], None if e_dev is None else e_dev[va]), y_val=noisy.y[va],
                    x_test=x_tensor(dataset.x_test, dataset.e_test),
                    corrupted=noisy.mask[tr], y_scaler=y_scaler, x_scaler=x_scaler)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 8192):
    """Standardized predictions as numpy: an ``(N, D)`` array (``(B, N, D)`` for a stack), or a TwoHeadOutput."""
    model.eval()
    dim = 1 if isinstance(model, StackedMLP) else 0
    outs = [_call(model, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    model.train()
    if isinstance(outs[0], TwoHeadOutput):
        return TwoHeadOutput(*(torch.cat([o[h] for o in outs], dim=dim).cpu().numpy() for h in range(2)))
    return torch.cat(outs, dim=dim).cpu().numpy()


@dataclass
class Resume:
    """A resumable training state at ``path``, saved every ``every`` epochs (atomically, after that epoch's
    evaluation). ``fingerprint`` identifies the run, so a state from other settings is refused, not silently used;
    ``get_extra`` / ``set_extra`` carry the caller's own state (the teacher's best epoch so far)."""

    path: Path
    every: int
    fingerprint: str
    get_extra: Callable[[], dict] = field(default=lambda: {})
    set_extra: Callable[[dict], None] = field(default=lambda extra: None)


@dataclass
class ResumeDir:
    """Where a job keeps the resumable states of its trainings (one file per ``fit`` call) and how often."""

    path: Path
    every: int

    def at(self, name: str, fingerprint: str, **hooks) -> Resume | None:
        return Resume(Path(self.path) / f"{name}.pt", self.every, fingerprint, **hooks) if self.every else None


def _restore(resume: Resume, model, opt, gens) -> int:
    """Load a saved state into model, optimizer and generators; return the last finished epoch (0: none)."""
    if resume is None or not resume.path.exists():
        return 0
    state = load_checkpoint(resume.path)
    if state.get("fingerprint") != resume.fingerprint:
        raise ValueError(f"{resume.path} holds the training state of other settings (fingerprint "
                         f"{state.get('fingerprint')}, expected {resume.fingerprint}); delete it to start over")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    for g, g_state in zip(gens, state["generators"]):
        g.set_state(g_state)
    torch.set_rng_state(state["torch_rng"])
    resume.set_extra(state["extra"])
    return int(state["epoch"])


def _save_state(resume: Resume, epoch: int, model, opt, gens) -> None:
    save_checkpoint(resume.path, {"fingerprint": resume.fingerprint, "epoch": epoch, "model": model.state_dict(),
                                  "optimizer": opt.state_dict(), "generators": [g.get_state() for g in gens],
                                  "torch_rng": torch.get_rng_state(), "extra": resume.get_extra()})


def fit(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None,
        settings: TrainSettings, seed, on_eval=None, desc: str = "train", resume: Resume | None = None) -> None:
    """Adam on ``loss_fn(model(x), y, t)``; ``on_eval(epoch)`` runs every ``eval_every`` epochs and at the end.

    One model: ``y, t`` are ``(N, D)`` and ``seed`` an int. A :class:`StackedMLP` of B models: ``x`` is the
    shared ``(N, in)``, ``y, t`` are ``(B, N, D)``, ``seed`` is one seed per model, and each model draws its own
    mini-batch order exactly as it would alone.

    With ``resume``, the state is saved every ``resume.every`` epochs, and a call that finds a saved state
    continues from it. A run killed and restarted ends exactly where an uninterrupted one does.
    """
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    seeds = list(seed) if isinstance(seed, (list, tuple)) else [seed]
    gens = [torch.Generator().manual_seed(derive_seed(s, "batches")) for s in seeds]
    stacked = y.dim() == 3
    n = y.shape[-2]
    bs = n if settings.batch_size is None else min(settings.batch_size, n)
    rows = torch.arange(len(seeds), device=y.device)[:, None]
    check_pair(y, y if t is None else t, "labels and teacher predictions")  # NaN / inf: once, not per step
    model.train()
    done = _restore(resume, model, opt, gens)
    with values_checked_upstream():
        _epochs(model, loss_fn, opt, x, y, t, settings, gens, stacked, n, bs, rows, on_eval, desc, done, resume)


def _epochs(model, loss_fn, opt, x, y, t, settings, gens, stacked, n, bs, rows, on_eval, desc, done, resume):
    for epoch in tqdm(range(done + 1, settings.epochs + 1), desc=desc, leave=False, disable=None,
                      initial=done, total=settings.epochs):
        # Full batch needs no permutation; mini-batches are slices of one permutation per model and epoch.
        if bs == n:
            batches = [None]
        else:
            perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(y.device)  # (B, N)
            batches = perms.split(bs, dim=1)
        for idx in batches:
            if idx is None:
                xb, yb, tb = x, y, t
            elif stacked:  # (B, bs) indices: each model's own samples
                xb, yb, tb = x[idx], y[rows, idx], None if t is None else t[rows, idx]
            else:
                idx = idx[0]
                xb, yb, tb = x[idx], y[idx], None if t is None else t[idx]
            loss = loss_fn(_call(model, xb), yb, tb).sum()  # a sum of per-model losses: each model gets its own gradient
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        last = epoch == settings.epochs
        if on_eval is not None and (epoch % settings.eval_every == 0 or last):
            on_eval(epoch)
        if (epoch % settings.eval_every == 0 or last) and not torch.isfinite(loss):
            raise ValueError(f"training diverged at epoch {epoch} (loss {loss.item()}); lower the learning rate "
                             f"(lr = {settings.lr}) or check the inputs")
        if resume is not None and (epoch % resume.every == 0 or last):
            _save_state(resume, epoch, model, opt, gens)


def task_metrics(pred: np.ndarray, target: np.ndarray, task: str, prefix: str = "") -> dict[str, float]:
    """Test metrics in original units: RMSE and MAE; for gaze also the mean angular error in degrees."""
    out = {f"{prefix}rmse": M.rmse(pred, target), f"{prefix}mae": M.mae(pred, target)}
    if task == "gaze":
        out[f"{prefix}angular_deg"] = M.angular_error_deg(pred, target)
    return out


def model_config(dataset: Dataset, model_cfg: dict, heads: int = 1, role: str = "student") -> dict:
    """The full architecture config of ``create_model`` from the params' ``model`` section and the data; an MLP
    without ``hidden`` gets sizes scaled to the number of inputs (:func:`kdreg.tabular.default_models`)."""
    if model_cfg.get("kind", "mlp") == "mlp":
        in_dim = int(np.prod(dataset.x_dev.shape[1:]))
        if "hidden" not in model_cfg:
            from kdreg.tabular import default_models
            model_cfg = {**default_models(in_dim)[0 if role == "teacher" else 1], **model_cfg}
        return {"kind": "mlp", "in_dim": in_dim, "out_dim": dataset.label_dim, "heads": heads, **model_cfg}
    extra = 0 if dataset.e_dev is None else int(dataset.e_dev.shape[1])
    return {"out_dim": dataset.label_dim, "extra_dim": extra, "image_size": list(dataset.x_dev.shape[-2:]),
            "heads": heads, **model_cfg}


def _shared_inputs(preps: list[Prepared]) -> torch.Tensor:
    """Members of a group share one dataset, so their standardized inputs are one tensor."""
    x = preps[0].x
    if any(not torch.equal(p.x, x) for p in preps[1:]):
        raise ValueError("models stacked in one group must share their training inputs")
    return x


def _stackable(mcfg: dict, stacked: bool) -> bool:
    return stacked and mcfg.get("kind", "mlp") == "mlp"


def _select(params: list[torch.Tensor], best: list[torch.Tensor], improved: torch.Tensor) -> None:
    """Copy the models marked in ``improved`` (B,) from ``params`` into ``best``."""
    for b, p in zip(best, params):
        b.copy_(torch.where(improved.view(-1, *[1] * (p.dim() - 1)), p.detach(), b))


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


def _teacher_options(config: dict) -> tuple[TrainSettings, str, int, int]:
    settings = TrainSettings.from_dict(config.get("train"))
    loss_name = config.get("loss", "mse")
    if loss_name not in TEACHER_LOSSES:
        raise ValueError(f"teacher.loss must be one of {sorted(TEACHER_LOSSES)}, got {loss_name!r}")
    k_folds, rounds = int(config.get("cross_fit", 1)), int(config.get("refine_rounds", 0))
    if k_folds < 1 or rounds < 0:
        raise ValueError(f"teacher.cross_fit must be >= 1 and refine_rounds >= 0, got {k_folds}, {rounds}")
    return settings, loss_name, k_folds, rounds


def _teacher_result(dataset: Dataset, data: Prepared, t_train, t_val, t_test, states, mcfg, best_epochs,
                    history) -> TeacherResult:
    """Assemble predictions (standardized in, original units out) and metrics of one teacher."""
    t_dev = np.zeros(dataset.y_dev.shape, dtype=np.float32)
    t_dev[~dataset.val] = data.y_scaler.inverse(t_train)
    t_dev[dataset.val] = data.y_scaler.inverse(t_val)
    t_test = data.y_scaler.inverse(t_test)
    metrics = task_metrics(t_test, dataset.y_test, dataset.task)
    metrics.update(best_epochs=best_epochs, refine=history,
                   train_rmse_vs_clean=M.rmse(t_dev[~dataset.val], dataset.y_dev[~dataset.val]))
    return TeacherResult(t_dev=t_dev, t_test=t_test, states=states, model_config=mcfg, metrics=metrics,
                         y_scaler=data.y_scaler, x_scaler=data.x_scaler)


def train_teacher(dataset: Dataset, noisy: NoisyLabels, config: dict, seed: int, device: str = "auto") -> TeacherResult:
    """Train the teacher on the noisy labels with early stopping on the validation median absolute error.

    ``config``: ``model`` (architecture), ``train`` (:class:`TrainSettings`), ``loss`` (mse | huber | tukey),
    ``cross_fit`` K (K teachers, each predicting the training fold it did not see), ``refine_rounds`` R (reject
    with TOR against the teacher's own predictions and retrain on the kept samples, R times), ``tor`` (the
    rejection options used by refinement).
    """
    dev = resolve_device(device)
    data = prepare(dataset, noisy, dev)
    settings, loss_name, k_folds, rounds = _teacher_options(config)
    n = len(data.x)
    if k_folds > 1 and n < 2 * k_folds:
        raise ValueError(f"{n} training samples are too few for cross_fit: {k_folds}")
    fold = (rng(seed, "folds").permutation(n) % k_folds if k_folds > 1
            else np.zeros(n, dtype=int))
    mcfg = model_config(dataset, config.get("model", {}), role="teacher")
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
    return _teacher_result(dataset, data, t_train, t_val, t_test, [m.state_dict() for m in models], mcfg,
                           best_epochs, history)


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


def _chunks(n: int, size: int) -> list[slice]:
    size = size or n
    return [slice(i, i + size) for i in range(0, n, size)]


def _fingerprint(kind: str, config: dict, noisies, seeds) -> str:
    from kdreg.layout import config_key
    return config_key({"kind": kind, "config": config, "seeds": list(seeds),
                       "noise": [(n.kind, n.level, n.seed) for n in noisies]})


def train_teachers(dataset: Dataset, noisies: list[NoisyLabels], config: dict, seeds: list[int],
                   device: str = "auto", stacked: bool = True, stack_size: int = 0,
                   resume: ResumeDir | None = None) -> list[TeacherResult]:
    """One teacher per (noisy labels, seed), trained in stacks of ``stack_size`` (0: all) where possible (an MLP
    teacher without cross-fitting or refinement); otherwise one after another. Results match
    :func:`train_teacher` per seed, to float rounding."""
    settings, loss_name, k_folds, rounds = _teacher_options(config)
    mcfg = model_config(dataset, config.get("model", {}), role="teacher")
    if not _stackable(mcfg, stacked) or k_folds > 1 or rounds > 0:
        return [train_teacher(dataset, n, config, s, device) for n, s in zip(noisies, seeds)]
    if stack_size and len(seeds) > stack_size:
        return [r for c in _chunks(len(seeds), stack_size)
                for r in train_teachers(dataset, noisies[c], config, seeds[c], device, stacked, stack_size, resume)]
    dev = resolve_device(device)
    preps = [prepare(dataset, n, dev) for n in noisies]
    x, y = _shared_inputs(preps), torch.stack([p.y for p in preps])          # (N, in), (B, N, D)
    fit_seeds = [derive_seed(s, "teacher", 0, 0) for s in seeds]
    models = []
    for s in fit_seeds:  # the same initialization as the one-at-a-time path
        torch.manual_seed(s)
        models.append(create_model(mcfg))
    stack = StackedMLP(models).to(dev)
    y_val = np.stack([p.y_val for p in preps])                              # (B, V, D) noisy, original units
    center = np.stack([p.y_scaler.center for p in preps])[:, None, :]
    scale = np.stack([p.y_scaler.scale for p in preps])[:, None, :]
    best_err, best_epoch = np.full(len(seeds), np.inf), np.zeros(len(seeds), dtype=int)
    best = [p.detach().clone() for p in stack.parameters()]

    def on_eval(epoch):
        pred = (predict(stack, preps[0].x_val).astype(np.float64) * scale + center).astype(np.float32)
        err = np.median(np.sqrt(((pred - y_val) ** 2).sum(axis=-1)), axis=1)  # (B,)
        improved = err < best_err  # strict: ties keep the earlier, less memorized epoch
        if improved.any():
            _select(list(stack.parameters()), best, torch.as_tensor(improved, device=dev))
            best_err[improved], best_epoch[improved] = err[improved], epoch

    def get_extra():
        return {"best_err": best_err.copy(), "best_epoch": best_epoch.copy(), "best": [b.clone() for b in best]}

    def set_extra(extra):
        best_err[:], best_epoch[:] = extra["best_err"], extra["best_epoch"]
        for b, saved in zip(best, extra["best"]):
            b.copy_(saved)

    fingerprint = _fingerprint("teachers", config, noisies, seeds)
    fit(stack, get_loss(TEACHER_LOSSES[loss_name]), x, y, None, settings, fit_seeds, on_eval=on_eval,
        desc=f"{len(seeds)} teachers", resume=resume and resume.at(f"teachers-{fingerprint}", fingerprint,
                                                                   get_extra=get_extra, set_extra=set_extra))
    with torch.no_grad():
        for p, b in zip(stack.parameters(), best):
            p.copy_(b)
    t_train, t_val, t_test = predict(stack, x), predict(stack, preps[0].x_val), predict(stack, preps[0].x_test)
    states = stack.state_dicts()
    return [_teacher_result(dataset, p, t_train[b], t_val[b], t_test[b], [states[b]], mcfg, [int(best_epoch[b])], [])
            for b, p in enumerate(preps)]


# ----------------------------------------------------------------------------------------------- student


@dataclass
class StudentResult:
    state: dict
    model_config: dict
    metrics: dict
    test_pred: np.ndarray | TwoHeadOutput  # original units
    y_scaler: Standardizer
    x_scaler: Standardizer | None


def _student_setup(dataset: Dataset, method: str, config: dict, t_devs) -> tuple:
    spec = get_method(method)
    for t_dev in t_devs:
        if spec.uses_teacher and t_dev is None:
            raise ValueError(f"method {method!r} needs teacher predictions")
        if t_dev is not None and np.shape(t_dev) != dataset.y_dev.shape:
            raise ValueError(f"teacher predictions {np.shape(t_dev)} do not match the labels "
                             f"{dataset.y_dev.shape}; they belong to another dataset: retrain the teacher")
    settings = TrainSettings.from_dict(config.get("train"))
    mcfg = model_config(dataset, config.get("model", {}), heads=spec.heads)
    return spec, settings, mcfg


def _student_loss(method: str, config: dict, label_scale) -> nn.Module:
    options = loss_options(method, config.get("loss_options") or {})
    if method in ("tor", "tor_multitask"):
        options["label_scale"] = label_scale
    return get_loss(method, **options)


def _student_result(dataset: Dataset, data: Prepared, out, keep, state, mcfg, head: str) -> StudentResult:
    """Metrics (both heads, TOR rejection quality) of one trained student from its standardized test output."""
    inv = data.y_scaler.inverse
    test_pred = TwoHeadOutput(inv(out.label), inv(out.teacher)) if isinstance(out, TwoHeadOutput) else inv(out)
    metrics = task_metrics(select_head(test_pred, head), dataset.y_test, dataset.task)
    if isinstance(test_pred, TwoHeadOutput):
        for name in ("label", "teacher", "mean"):
            metrics.update(task_metrics(select_head(test_pred, name), dataset.y_test, dataset.task, f"{name}_head_"))
    if keep is not None:
        metrics.update({f"rejection_{k}": v for k, v in M.rejection_quality(~keep, data.corrupted).items()})
    return StudentResult(state=state, model_config=mcfg, metrics=metrics, test_pred=test_pred,
                         y_scaler=data.y_scaler, x_scaler=data.x_scaler)


def _keep_mask(loss_fn: nn.Module, y, t):
    tor = getattr(loss_fn, "label_loss", loss_fn)
    return tor.keep_mask(y, t).cpu().numpy() if isinstance(tor, TORLoss) else None


def train_student(dataset: Dataset, noisy: NoisyLabels, t_dev: np.ndarray | None, method: str, config: dict,
                  seed: int, device: str = "auto") -> StudentResult:
    """Train one student with ``method``'s loss against the cached teacher predictions ``t_dev``.

    ``config``: ``model``, ``train``, ``loss_options`` (per-method loss options, as in params.yaml), ``predict_head``
    (label | teacher | mean: the output used for the headline metric of two-headed students).
    """
    spec, settings, mcfg = _student_setup(dataset, method, config, [t_dev])
    dev = resolve_device(device)
    data = prepare(dataset, noisy, dev)
    tr = ~dataset.val
    t = torch.as_tensor(data.y_scaler.transform(t_dev[tr]), device=dev) if t_dev is not None else None
    y = data.y_clean if spec.clean_labels else data.y
    loss_fn = _student_loss(method, config, data.y_scaler.scale).to(dev)
    if hasattr(loss_fn, "fit"):
        loss_fn.fit(y, t)

    # One init per seed for every method, so methods are compared on paired initializations.
    seed_ = derive_seed(seed, "student")
    torch.manual_seed(seed_)
    model = create_model(mcfg).to(dev)
    fit(model, loss_fn, data.x, y, t, settings, seed_, desc=f"student {method}")
    return _student_result(dataset, data, predict(model, data.x_test), _keep_mask(loss_fn, y, t),
                           model.state_dict(), mcfg, config.get("predict_head", "label"))


def train_students(dataset: Dataset, noisies: list[NoisyLabels], t_devs: list, method: str, config: dict,
                   seeds: list[int], device: str = "auto", stacked: bool = True,
                   stack_size: int = 0, resume: ResumeDir | None = None) -> list[StudentResult]:
    """One ``method`` student per (noisy labels, teacher predictions, seed), trained in stacks of
    ``stack_size`` (0: all) when the student is an MLP. Results match :func:`train_student` per seed, to float
    rounding."""
    spec, settings, mcfg = _student_setup(dataset, method, config, t_devs)
    if not _stackable(mcfg, stacked):
        return [train_student(dataset, n, t, method, config, s, device) for n, t, s in zip(noisies, t_devs, seeds)]
    if stack_size and len(seeds) > stack_size:
        return [r for c in _chunks(len(seeds), stack_size) for r in train_students(
            dataset, noisies[c], t_devs[c], method, config, seeds[c], device, stacked, stack_size, resume)]
    dev = resolve_device(device)
    preps = [prepare(dataset, n, dev) for n in noisies]
    tr = ~dataset.val
    x = _shared_inputs(preps)
    y = torch.stack([p.y_clean if spec.clean_labels else p.y for p in preps])          # (B, N, D)
    t = (torch.stack([torch.as_tensor(p.y_scaler.transform(t_dev[tr]), device=dev) for p, t_dev in zip(preps, t_devs)])
         if spec.uses_teacher else None)
    label_scale = torch.as_tensor(np.stack([p.y_scaler.scale for p in preps])[:, None, :], dtype=torch.float32)
    loss_fn = _student_loss(method, config, label_scale).to(dev)
    if hasattr(loss_fn, "fit"):
        loss_fn.fit(y, t)
    fit_seeds = [derive_seed(s, "student") for s in seeds]
    models = []
    for s in fit_seeds:  # the same paired initialization as the one-at-a-time path
        torch.manual_seed(s)
        models.append(create_model(mcfg))
    stack = StackedMLP(models).to(dev)
    fingerprint = _fingerprint(f"students-{method}", config, noisies, seeds)
    fit(stack, loss_fn, x, y, t, settings, fit_seeds, desc=f"{len(seeds)} students {method}",
        resume=resume and resume.at(f"students-{method}-{fingerprint}", fingerprint))
    out = predict(stack, preps[0].x_test)
    keep = _keep_mask(loss_fn, y, t)
    states = stack.state_dicts()
    head = config.get("predict_head", "label")
    results = []
    for b, p in enumerate(preps):
        out_b = TwoHeadOutput(out.label[b], out.teacher[b]) if isinstance(out, TwoHeadOutput) else out[b]
        results.append(_student_result(dataset, p, out_b, None if keep is None else keep[b], states[b], mcfg, head))
    return results

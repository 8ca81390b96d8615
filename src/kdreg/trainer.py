"""The training loop shared by teachers and students: settings, Adam over full or mini-batches (one model or a
stack of them), prediction, and resumable training states.

Data that fits in memory stays on the device as tensors and mini-batches are index permutations, so a step has no
loader overhead.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from kdreg.io import config_key, load_checkpoint, save_checkpoint
from kdreg.losses import check_pair, values_checked_upstream
from kdreg.models import TwoHeadOutput
from kdreg.seeding import derive_seed
from kdreg.stacked import StackedMLP


@dataclass
class TrainSettings:
    """Optimization settings of one model. ``batch_size: None`` trains full batch."""

    epochs: int = 200
    lr: float = 1e-3
    batch_size: int | None = None
    weight_decay: float = 0.0
    eval_every: int = 10  # epochs between validation checks (best-epoch selection, early stopping)
    patience: int = 0     # stop after this many checks without a better validation error; 0: train every epoch

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainSettings":
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        s = cls(**d)
        if (s.epochs < 1 or s.lr <= 0 or (s.batch_size is not None and s.batch_size < 1) or s.eval_every < 1
                or s.patience < 0):
            raise ValueError(f"training settings out of range: {s} (epochs, eval_every, batch_size >= 1; lr > 0; "
                             "patience >= 0)")
        return s


class Inputs:
    """Several input tensors of one set of samples (eye images and head pose), indexed together."""

    def __init__(self, *tensors: torch.Tensor):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, idx) -> "Inputs":
        return Inputs(*(t[idx] for t in self.tensors))


def call_model(model: nn.Module, x):
    return model(*x.tensors) if isinstance(x, Inputs) else model(x)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 8192):
    """Standardized predictions as numpy: an ``(N, D)`` array (``(B, N, D)`` for a stack), or a TwoHeadOutput."""
    model.eval()
    dim = 1 if isinstance(model, StackedMLP) else 0
    outs = [call_model(model, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
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
    state = load_checkpoint(resume.path, required=("fingerprint", "epoch", "model", "optimizer", "generators",
                                                   "torch_rng", "extra"))
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
        settings: TrainSettings, seed, on_eval=None, desc: str = "train", resume: Resume | None = None) -> int:
    """Adam on ``loss_fn(model(x), y, t)``; ``on_eval(epoch)`` runs every ``eval_every`` epochs and at the end,
    and training stops early when it returns True. Returns the last epoch trained.

    One model: ``y, t`` are ``(N, D)`` and ``seed`` an int. A :class:`StackedMLP` of B models: ``x`` is the
    shared ``(N, in)``, ``y, t`` are ``(B, N, D)``, ``seed`` is one seed per model, and each model draws its own
    mini-batch order exactly as it would alone.

    With ``resume``, the state is saved every ``resume.every`` epochs, and a call that finds a saved state
    continues from it. A run killed and restarted ends exactly where an uninterrupted one does.
    """
    # fused: one kernel per tensor instead of a dozen (0.32 vs 0.88 ms a step for a stack of 10 teachers)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, fused=True)
    seeds = list(seed) if isinstance(seed, (list, tuple)) else [seed]
    gens = [torch.Generator().manual_seed(derive_seed(s, "batches")) for s in seeds]
    n = y.shape[-2]
    bs = n if settings.batch_size is None else min(settings.batch_size, n)
    check_pair(y, y if t is None else t, "labels and teacher predictions")  # NaN / inf: once, not per step
    model.train()
    done = _restore(resume, model, opt, gens)
    with values_checked_upstream():
        for epoch in tqdm(range(done + 1, settings.epochs + 1), desc=desc, leave=False, disable=None,
                          initial=done, total=settings.epochs):
            for xb, yb, tb in _batches(x, y, t, gens, bs):
                # a sum of per-model losses: each model of a stack gets its own gradient
                loss = loss_fn(call_model(model, xb), yb, tb).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            last = epoch == settings.epochs
            stop = False
            if on_eval is not None and (epoch % settings.eval_every == 0 or last):
                stop = bool(on_eval(epoch))
                last = last or stop
            if (epoch % settings.eval_every == 0 or last) and not torch.isfinite(loss):
                raise ValueError(f"training diverged at epoch {epoch} (loss {loss.item()}); lower the learning "
                                 f"rate (lr = {settings.lr}) or check the inputs")
            if resume is not None and (epoch % resume.every == 0 or last):
                _save_state(resume, epoch, model, opt, gens)
            if stop:
                return epoch
    return settings.epochs


def _batches(x, y, t, gens, bs: int):
    """One epoch's ``(x, y, t)`` batches: the full set, or slices of one permutation per model (each model of a
    stack draws its own order, exactly as it would alone)."""
    n = y.shape[-2]
    if bs == n:
        yield x, y, t
        return
    perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(y.device)  # (B, N)
    rows = torch.arange(len(gens), device=y.device)[:, None]
    for idx in perms.split(bs, dim=1):
        if y.dim() == 3:  # a stack: (B, bs) indices, each model's own samples (and own inputs, if (B, N, in))
            yield (x[rows, idx] if x.dim() == 3 else x[idx]), y[rows, idx], None if t is None else t[rows, idx]
        else:
            idx = idx[0]
            yield x[idx], y[idx], None if t is None else t[idx]


class BestEpochs:
    """Best-epoch selection and early stopping for B models trained together, each exactly as it would alone.

    ``update(epoch, err)`` takes each model's validation error ``(B,)``; a model improves on a strictly lower
    error (ties keep the earlier, less memorized epoch). After ``patience`` checks without improvement a model
    stops: its best epoch is final even if the stack trains on for others. Returns the models that improved.
    """

    def __init__(self, n: int, patience: int):
        self.patience = patience
        self.err = np.full(n, np.inf)
        self.epoch = np.zeros(n, dtype=int)
        self.stale = np.zeros(n, dtype=int)
        self.stopped_at = np.zeros(n, dtype=int)  # 0: still training

    def update(self, epoch: int, err) -> np.ndarray:
        active = self.stopped_at == 0
        improved = (np.asarray(err) < self.err) & active
        self.err[improved], self.epoch[improved] = np.asarray(err)[improved], epoch
        self.stale[improved] = 0
        self.stale[active & ~improved] += 1
        if self.patience:
            self.stopped_at[active & (self.stale >= self.patience)] = epoch
        return improved

    @property
    def all_stopped(self) -> bool:
        return bool(self.patience) and bool((self.stopped_at > 0).all())

    def epochs_trained(self, last_epoch: int) -> list[int]:
        return [int(s) if s else int(last_epoch) for s in self.stopped_at]

    def state(self) -> dict:
        return {k: getattr(self, k).copy() for k in ("err", "epoch", "stale", "stopped_at")}

    def load(self, state: dict) -> None:
        for k, v in state.items():
            getattr(self, k)[:] = v


def keep_selected(model: nn.Module, best: list[torch.Tensor], chosen) -> None:
    """Copy the parameters of the models marked in ``chosen`` (B,) into ``best`` (one model: B = 1)."""
    chosen = np.asarray(chosen, dtype=bool)
    with torch.no_grad():
        for b, p in zip(best, model.parameters()):
            if isinstance(model, StackedMLP):  # parameters are (B, ...): each model's own slice
                mask = torch.as_tensor(chosen, device=p.device).view(-1, *[1] * (p.dim() - 1))
                b.copy_(torch.where(mask, p.detach(), b))
            elif chosen[0]:
                b.copy_(p.detach())


def chunks(n: int, size: int) -> list[slice]:
    size = size or n
    return [slice(i, i + size) for i in range(0, n, size)]


def fingerprint(kind: str, config: dict, noisies, seeds) -> str:
    """What identifies a training, so a resumable state from other settings is refused."""
    return config_key({"kind": kind, "config": config, "seeds": list(seeds),
                       "noise": [(n.kind, n.level, n.seed) for n in noisies]})

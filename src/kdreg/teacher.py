"""Teachers: trained on the noisy labels with early stopping on the validation median absolute error, one at
a time (CNNs, refinement rounds) or as a stack of MLP fits (:mod:`kdreg.stacked`). Predictions and metrics are
returned in original label units.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from kdreg.data import Dataset
from kdreg.inputs import Prepared, model_config, prepare, shared_inputs, stackable
from kdreg.losses import get_loss
from kdreg.methods import TEACHER_LOSSES
from kdreg.models import create_model, resolve_device
from kdreg.noise import NoisyLabels
from kdreg.refine import TeacherResult, refine_keep, round_record, teacher_options, teacher_result
from kdreg.rules import folds_problem
from kdreg.seeding import rng
from kdreg.teacher_kinds import AllRowsRejected, ensemble_size, fit_seed, train_auto
from kdreg.stacked import StackedMLP
from kdreg.trainer import BestEpochs, ResumeDir, keep_selected, chunks, fingerprint, fit, predict
from kdreg.tree_teacher import train_tree_teachers


def train_teacher(dataset: Dataset, noisy: NoisyLabels, config: dict, seed: int, device: str = "auto",
                  first_round: tuple[np.ndarray, int] | None = None) -> TeacherResult:
    """Train the teacher on the noisy labels with early stopping on the validation median absolute error.

    ``config``: ``model`` (architecture), ``train`` (:class:`TrainSettings`), ``loss`` (mse | huber | tukey |
    mixture), ``refine_loss`` (the later rounds' loss; default ``loss``),
    ``cross_fit`` K (K teachers, each predicting the training fold it did not see), ``refine_rounds`` R (reject
    with TOR against the teacher's own predictions and retrain on the kept samples, R times), ``tor`` (the
    rejection options used by refinement). ``first_round``: round 0's out-of-fold predictions (standardized) and
    epochs, when a stack trained it (:func:`train_teachers`); the later rounds are fitted here.
    """
    if config.get("kind") == "auto":
        return train_auto(dataset, [noisy], config, [seed], train_teachers, train_teacher, device=device,
                          stacked=False)[0]
    if config.get("kind") == "gbdt":  # boosted trees (kdreg.tree_teacher) in place of each network, on the CPU
        return train_tree_teachers(dataset, [noisy], config, [seed])[0]
    dev = resolve_device(device)
    data = prepare(dataset, noisy, dev)
    settings, loss_name, k_folds, rounds = teacher_options(config)
    n_models = ensemble_size(config)
    n = len(data.x)
    if problem := folds_problem(n, k_folds):
        raise ValueError(problem)
    fold = (rng(seed, "folds").permutation(n) % k_folds if k_folds > 1
            else np.zeros(n, dtype=int))
    mcfg = model_config(dataset, config.get("model", {}), role="teacher")
    keep = np.ones(n, dtype=bool)
    history, epochs_trained = [], 0
    for rnd in range(rounds + 1):
        t_train = np.zeros_like(data.y.cpu().numpy())
        models, best_epochs = [], []
        if rnd == 0 and first_round is not None:
            t_train, trained = first_round
            epochs_trained += trained
        for k in range(k_folds if rnd > 0 or first_round is None else 0):
            train_idx = np.flatnonzero(((fold != k) if k_folds > 1 else True) & keep)
            if len(train_idx) == 0:
                raise AllRowsRejected()
            round_loss = config.get("refine_loss") or loss_name if rnd > 0 else loss_name
            own = fold == k if k_folds > 1 else np.ones(n, dtype=bool)
            preds = []
            for m in range(n_models):
                model, best_epoch, trained = _fit_teacher(mcfg, data, train_idx, round_loss, settings,
                                                          fit_seed(seed, k, rnd, m), dev,
                                                          desc=f"teacher {k + 1}/{k_folds} round {rnd}")
                preds.append(predict(model, data.x[torch.as_tensor(np.flatnonzero(own), device=dev)]))
                models.append(model)
                best_epochs.append(best_epoch)
                epochs_trained += trained
            t_train[own] = preds[0] if n_models == 1 else np.mean(preds, axis=0)
        if rnd < rounds:
            keep, readmitted = refine_keep(config, data, t_train)
            history.append(round_record(rnd, keep, readmitted, config))

    t_val = np.mean([predict(m, data.x_val) for m in models], axis=0)
    t_test = np.mean([predict(m, data.x_test) for m in models], axis=0)
    return teacher_result(dataset, data, t_train, t_val, t_test, [m.state_dict() for m in models], mcfg,
                           best_epochs, history, epochs_trained)


def _fit_teacher(mcfg, data: Prepared, train_idx, loss_name: str, settings, seed, dev, desc):
    torch.manual_seed(seed)
    model = create_model(mcfg).to(dev)
    idx = torch.as_tensor(train_idx, device=dev)
    best, state = BestEpochs(1, settings.patience), {}

    def on_eval(epoch):
        pred = data.y_scaler.inverse(predict(model, data.x_val))
        err = float(np.median(np.sqrt(((pred - data.y_val) ** 2).sum(axis=1))))
        if best.update(epoch, [err])[0]:
            state["best"] = copy.deepcopy(model.state_dict())
        return best.all_stopped

    last = fit(model, _teacher_loss(loss_name, data.y[idx]), data.x[idx], data.y[idx], None, settings, seed,
               on_eval=on_eval, desc=desc)
    model.load_state_dict(state["best"])
    return model, int(best.epoch[0]), best.epochs_trained(last)[0]


def _teacher_loss(loss_name: str, y: torch.Tensor) -> torch.nn.Module:
    """The loss named by ``teacher.loss``, fitted on the labels it trains on where it needs them (``mixture``)."""
    loss_fn = get_loss(TEACHER_LOSSES[loss_name]).to(y.device)
    return loss_fn.fit(y) if hasattr(loss_fn, "fit") else loss_fn


def train_teachers(dataset: Dataset, noisies: list[NoisyLabels], config: dict, seeds: list[int],
                   device: str = "auto", stacked: bool = True, stack_size: int = 0,
                   resume: ResumeDir | None = None) -> list[TeacherResult]:
    """One teacher per (noisy labels, seed). MLP teachers train in stacks of ``stack_size`` fits (0: all): a member's
    K cross-fit fits share its stack, and so do a refined teacher's rounds when its refits use MSE (the rows a
    member rejected weigh zero); refits with another loss run one at a time; CNNs, and folds of unequal size, one
    after another; boosted trees as :func:`kdreg.tree_teacher.train_tree_teachers` hands them out. Results match
    :func:`train_teacher` per seed, to float rounding."""
    if config.get("kind") == "auto":
        return train_auto(dataset, noisies, config, seeds, train_teachers, train_teacher, device=device,
                          stacked=stacked, stack_size=stack_size, resume=resume)
    if config.get("kind") == "gbdt":
        return train_tree_teachers(dataset, noisies, config, seeds)
    _, loss_name, k_folds, rounds = teacher_options(config)
    mcfg = model_config(dataset, config.get("model", {}), role="teacher")
    if not stackable(mcfg, stacked) or int((~dataset.val).sum()) % k_folds:
        return [train_teacher(dataset, n, config, s, device) for n, s in zip(noisies, seeds)]
    fits_each = k_folds * ensemble_size(config)
    per_stack = max(1, (stack_size or len(seeds) * fits_each) // fits_each)  # members whose K×M fits share a stack
    if rounds == 0 or (config.get("refine_loss") or loss_name) == "mse":
        return [r for c in chunks(len(seeds), per_stack)
                for r in _rounds_stacked(dataset, noisies[c], config, seeds[c], device, resume)]
    first = [r for c in chunks(len(seeds), per_stack)
             for r in _round_stacked(dataset, noisies[c], config, seeds[c], device, resume, 0)]
    return [train_teacher(dataset, n, config, s, device, first_round=f) for n, s, f in zip(noisies, seeds, first)]


class _KeptMSE(torch.nn.Module):
    """A refit's loss on a stack: ``Σ_i m_i‖s_i − y_i‖² / Σ_i m_i``, the MSE over the rows the member kept, with the
    0/1 mask ``m`` passed where a student's loss gets the teacher (``(..., N, D)``, so a mini-batch slices it too)."""

    def forward(self, pred, y, m):
        keep = m[..., 0]
        return (keep * (pred - y).pow(2).sum(-1)).sum(-1) / keep.sum(-1).clamp_min(1.0)


def _rounds_stacked(dataset: Dataset, noisies: list[NoisyLabels], config: dict, seeds: list[int], device: str,
                    resume: ResumeDir | None) -> list[TeacherResult]:
    """Every round of :func:`train_teacher` for B members as stacks: round 0 with the teacher's loss, each refit
    with MSE on the rows the member's TOR kept against its previous round's out-of-fold predictions."""
    _, _, _, rounds = teacher_options(config)
    dev = resolve_device(device)
    keeps, history, spent = None, [[] for _ in seeds], np.zeros(len(seeds), dtype=int)
    for rnd in range(rounds):
        out = _round_stacked(dataset, noisies, config, seeds, device, resume, rnd, keeps)
        kept = [refine_keep(config, prepare(dataset, noisy, dev), t_train) for noisy, (t_train, _) in zip(noisies, out)]
        keeps = [keep for keep, _ in kept]
        for b, ((keep, readmitted), (_, trained)) in enumerate(zip(kept, out)):
            history[b].append(round_record(rnd, keep, readmitted, config))
            spent[b] += trained
    return _round_stacked(dataset, noisies, config, seeds, device, resume, rounds, keeps, (history, spent))


def _round_stacked(dataset: Dataset, noisies: list[NoisyLabels], config: dict, seeds: list[int], device: str,
                   resume: ResumeDir | None, rnd: int, keeps: list[np.ndarray] | None = None,
                   earlier: tuple[list, np.ndarray] | None = None) -> list:
    """Round ``rnd`` of :func:`train_teacher` for B members, their B × K × E fits as one stack (E: the ensemble's
    networks, 1 for ``kind: network``): fit (b, k, e) trains on
    member b's rows outside its fold k (all rows without cross-fitting; equal folds, so every fit has as many rows,
    each its own), from the same initialization, seed and early stopping as alone; from round 1, on those of them
    member b kept (``keeps``), with MSE. With ``earlier`` (the members' refinement history and epochs of the rounds
    before), this is their last round and it returns each member's :class:`TeacherResult`; without, each member's
    ``(out-of-fold predictions, standardized; epochs)`` for the rounds that follow."""
    settings, loss_name, k_folds, _ = teacher_options(config)
    mcfg = model_config(dataset, config.get("model", {}), role="teacher")
    dev = resolve_device(device)
    preps = [prepare(dataset, n, dev) for n in noisies]
    x = shared_inputs(preps)                                                # (N, in)
    n = len(x)
    folds = [rng(s, "folds").permutation(n) % k_folds if k_folds > 1 else np.zeros(n, dtype=int)
             for s in seeds]                                                # each member's own folds, as alone
    fits = [(b, k, e) for b in range(len(seeds)) for k in range(k_folds) for e in range(ensemble_size(config))]
    rows = torch.stack([torch.as_tensor(np.flatnonzero(folds[b] != k) if k_folds > 1 else np.arange(n), device=dev)
                        for b, k, _ in fits])                               # (M, R)
    x_fit = x[rows]                                                         # (M, R, in)
    y_fit = torch.stack([preps[b].y[r] for (b, _, _), r in zip(fits, rows)])  # (M, R, D)
    fit_seeds = [fit_seed(seeds[b], k, rnd, e) for b, k, e in fits]
    models = []
    for s in fit_seeds:  # the same initialization as the one-at-a-time path
        torch.manual_seed(s)
        models.append(create_model(mcfg))
    stack = StackedMLP(models).to(dev)
    y_val = np.stack([preps[b].y_val for b, _, _ in fits])                 # (M, V, D) noisy, original units
    center = np.stack([preps[b].y_scaler.center for b, _, _ in fits])[:, None, :]
    scale = np.stack([preps[b].y_scaler.scale for b, _, _ in fits])[:, None, :]
    tracker = BestEpochs(len(fits), settings.patience)
    best = [p.detach().clone() for p in stack.parameters()]

    def on_eval(epoch):
        pred = (predict(stack, preps[0].x_val).astype(np.float64) * scale + center).astype(np.float32)
        improved = tracker.update(epoch, np.median(np.sqrt(((pred - y_val) ** 2).sum(axis=-1)), axis=1))
        if improved.any():
            keep_selected(stack, best, improved)
        return tracker.all_stopped

    def get_extra():
        return {"tracker": tracker.state(), "best": [b.clone() for b in best]}

    def set_extra(extra):
        tracker.load(extra["tracker"])
        for b, saved in zip(best, extra["best"]):
            b.copy_(saved)

    state_key = fingerprint("first-round teachers" if rnd == 0 else f"teachers round {rnd}", config, noisies, seeds)
    mask = None
    if rnd == 0:
        loss_fn = _teacher_loss(loss_name, y_fit)                           # fitted per fit: (M, R, D)
    else:
        loss_fn = _KeptMSE()
        mask = torch.stack([torch.as_tensor(keeps[b], device=dev)[r] for (b, _, _), r in zip(fits, rows)])
        mask = mask[..., None].expand_as(y_fit).to(y_fit.dtype)            # (M, R, D)
    last = fit(stack, loss_fn, x_fit, y_fit, mask, settings, fit_seeds, on_eval=on_eval,
               desc=f"{len(seeds)} teachers x {k_folds} fits, round {rnd}",
               resume=resume and resume.at(f"teachers-{state_key}", state_key, get_extra=get_extra,
                                           set_extra=set_extra))
    with torch.no_grad():
        for p, b in zip(stack.parameters(), best):
            p.copy_(b)
    p_train, p_val, p_test = predict(stack, x), predict(stack, preps[0].x_val), predict(stack, preps[0].x_test)
    states, trained = stack.state_dicts(), tracker.epochs_trained(last)
    results = []
    for b, prep in enumerate(preps):
        own = [m for m, (b_, _, _) in enumerate(fits) if b_ == b]           # member b's K×E fits, fold order
        t_train = np.zeros_like(prep.y.cpu().numpy())
        for k in range(k_folds):
            held_out = folds[b] == k
            nets = [m for m in own if fits[m][1] == k]                      # fold k's ensemble (one network: 1)
            t_train[held_out] = (p_train[nets[0]] if len(nets) == 1
                                 else np.mean([p_train[m] for m in nets], axis=0))[held_out]
        epochs = int(sum(trained[m] for m in own))
        if earlier is None:
            results.append((t_train, epochs))
            continue
        history, spent = earlier
        results.append(teacher_result(
            dataset, prep, t_train, np.mean([p_val[m] for m in own], axis=0),
            np.mean([p_test[m] for m in own], axis=0), [states[m] for m in own], mcfg,
            [int(tracker.epoch[m]) for m in own], history[b], epochs + int(spent[b])))
    return results

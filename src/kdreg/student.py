"""Students: one method's loss against the cached teacher predictions, one at a time or as a stack of MLPs, with
metrics for both heads of a two-headed student and the rejection quality of TOR.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from kdreg import metrics as M
from kdreg.data import Dataset, Standardizer
from kdreg.inputs import Prepared, model_config, prepare, shared_inputs, stackable
from kdreg.losses import TORLoss, get_loss, loss_options
from kdreg.methods import get_method
from kdreg.metrics import task_metrics
from kdreg.models import TwoHeadOutput, create_model, resolve_device, select_head
from kdreg.noise import NoisyLabels
from kdreg.seeding import derive_seed
from kdreg.stacked import StackedMLP
from kdreg.trainer import ResumeDir, TrainSettings, chunks, fingerprint, fit, predict


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
    if get_method(method).label_units:
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
    if not stackable(mcfg, stacked):
        return [train_student(dataset, n, t, method, config, s, device) for n, t, s in zip(noisies, t_devs, seeds)]
    if stack_size and len(seeds) > stack_size:
        return [r for c in chunks(len(seeds), stack_size) for r in train_students(
            dataset, noisies[c], t_devs[c], method, config, seeds[c], device, stacked, stack_size, resume)]
    dev = resolve_device(device)
    preps = [prepare(dataset, n, dev) for n in noisies]
    tr = ~dataset.val
    x = shared_inputs(preps)
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
    state_key = fingerprint(f"students-{method}", config, noisies, seeds)
    fit(stack, loss_fn, x, y, t, settings, fit_seeds, desc=f"{len(seeds)} students {method}",
        resume=resume and resume.at(f"students-{method}-{state_key}", state_key))
    out = predict(stack, preps[0].x_test)
    keep = _keep_mask(loss_fn, y, t)
    states = stack.state_dicts()
    head = config.get("predict_head", "label")
    results = []
    for b, p in enumerate(preps):
        out_b = TwoHeadOutput(out.label[b], out.teacher[b]) if isinstance(out, TwoHeadOutput) else out[b]
        results.append(_student_result(dataset, p, out_b, None if keep is None else keep[b], states[b], mcfg, head))
    return results

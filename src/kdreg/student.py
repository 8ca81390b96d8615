"""Students: one method's loss against the cached teacher predictions, one at a time or as a stack of MLPs, with
metrics for both heads of a two-headed student and the rejection quality of TOR.
"""
from __future__ import annotations

import json
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
from kdreg.trainer import BestEpochs, ResumeDir, keep_selected, TrainSettings, chunks, fingerprint, fit, predict


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


def _student_result(dataset: Dataset, data: Prepared, out, keep, state, mcfg, head: str,
                    validation: dict) -> StudentResult:
    """Metrics (both heads, TOR rejection quality, the validation record) of one trained student from its
    standardized test output; ``head`` is the head the headline uses (``auto`` already resolved)."""
    inv = data.y_scaler.inverse
    test_pred = TwoHeadOutput(inv(out.label), inv(out.teacher)) if isinstance(out, TwoHeadOutput) else inv(out)
    metrics = {**task_metrics(select_head(test_pred, head), dataset.y_test, dataset.task), **validation}
    if isinstance(test_pred, TwoHeadOutput):
        metrics.update(head=head, head_is_teacher=float(head == "teacher"))
    if isinstance(test_pred, TwoHeadOutput):
        for name in ("label", "teacher", "mean"):
            metrics.update(task_metrics(select_head(test_pred, name), dataset.y_test, dataset.task, f"{name}_head_"))
    if keep is not None:
        metrics.update({f"rejection_{k}": v for k, v in M.rejection_quality(~keep, data.corrupted).items()})
    return StudentResult(state=state, model_config=mcfg, metrics=metrics, test_pred=test_pred,
                         y_scaler=data.y_scaler, x_scaler=data.x_scaler)


HEADS = ("label", "teacher", "mean")


class _Validation:
    """Each student's robust error on the noisy validation split (median over samples of the Euclidean error,
    original units, as the teacher's early stopping uses), its best epoch and, for ``predict_head: auto``, the
    head with the lower error there.

    ``keep_best``: the weights of each model's best epoch are kept (copied into ``best``), else the last epoch's.
    The criterion is the headline head's error; with ``auto``, the lower of the label and teacher heads'.
    """

    def __init__(self, model, preps: list[Prepared], head: str, keep_best: bool, two_heads: bool, clean: bool,
                 patience: int = 0):
        self.model, self.head, self.keep_best, self.two_heads = model, head, keep_best, two_heads
        self.x_val = preps[0].x_val
        # (B, V, D): the noisy labels, or the clean ones for the oracle, which sees clean labels everywhere
        self.y_val = np.stack([p.y_val_clean if clean else p.y_val for p in preps])
        self.center = np.stack([p.y_scaler.center for p in preps])[:, None, :]
        self.scale = np.stack([p.y_scaler.scale for p in preps])[:, None, :]
        self.tracker = BestEpochs(len(preps), patience if keep_best else 0)
        self.best = [p.detach().clone() for p in model.parameters()]
        self.errors = {h: np.full(len(preps), np.nan) for h in (HEADS if two_heads else ("label",))}

    def _errors(self) -> dict[str, np.ndarray]:
        out = predict(self.model, self.x_val)
        outs = {"label": out.label, "teacher": out.teacher} if self.two_heads else {"label": out}
        errs = {}
        for name, o in outs.items():
            o = o.reshape(self.y_val.shape)  # one model: (V, D) -> (1, V, D)
            pred = o.astype(np.float64) * self.scale + self.center
            errs[name] = np.median(np.sqrt(((pred - self.y_val) ** 2).sum(axis=-1)), axis=1)  # (B,)
        if self.two_heads:
            mean = (outs["label"] + outs["teacher"]).reshape(self.y_val.shape) / 2
            pred = mean.astype(np.float64) * self.scale + self.center
            errs["mean"] = np.median(np.sqrt(((pred - self.y_val) ** 2).sum(axis=-1)), axis=1)
        return errs

    def on_eval(self, epoch: int) -> bool:
        errs = self._errors()
        # a one-headed student has its label head only, whatever predict_head says
        crit = (np.minimum(errs["label"], errs["teacher"]) if self.head == "auto" and self.two_heads
                else errs[self.head if self.two_heads else "label"])
        chosen = self.tracker.update(epoch, crit) if self.keep_best else np.ones(len(crit), dtype=bool)
        if self.keep_best and chosen.any():
            keep_selected(self.model, self.best, chosen)
        if not self.keep_best:
            self.tracker.epoch[:] = epoch
        for h, e in errs.items():
            self.errors[h][chosen] = e[chosen]
        return self.tracker.all_stopped  # with patience: every model has stopped, its best epoch final

    def finish(self) -> None:
        """Load the kept weights into the model."""
        if self.keep_best:
            with torch.no_grad():
                for p, b in zip(self.model.parameters(), self.best):
                    p.copy_(b)

    def record(self, b: int) -> tuple[str, dict]:
        """Model ``b``'s headline head and its validation record for metrics.json."""
        head = self.head if self.two_heads else "label"
        if head == "auto":
            head = "teacher" if self.errors["teacher"][b] < self.errors["label"][b] else "label"
        rec = {"best_epoch": int(self.tracker.epoch[b]), "val_error": float(self.errors[head][b])}
        if self.two_heads:
            rec.update({f"{h}_head_val_error": float(self.errors[h][b]) for h in HEADS})
        return head, rec

    def state(self) -> dict:
        return {"tracker": self.tracker.state(), "best": [b.clone() for b in self.best],
                "errors": {h: e.copy() for h, e in self.errors.items()}}

    def load(self, state: dict) -> None:
        self.tracker.load(state["tracker"])
        for b, saved in zip(self.best, state["best"]):
            b.copy_(saved)
        for h, e in state["errors"].items():
            self.errors[h][:] = e


def _keep_mask(loss_fn: nn.Module, y, t):
    tor = getattr(loss_fn, "label_loss", loss_fn)
    return tor.keep_mask(y, t).cpu().numpy() if isinstance(tor, TORLoss) else None


def train_student(dataset: Dataset, noisy: NoisyLabels, t_dev: np.ndarray | None, method: str, config: dict,
                  seed: int, device: str = "auto") -> StudentResult:
    """Train one student with ``method``'s loss against the cached teacher predictions ``t_dev``.

    ``config``: ``model``, ``train``, ``loss_options`` (per-method loss options, as in params.yaml), ``predict_head``
    (label | teacher | mean: the output used for the headline metric of two-headed students), ``restarts``
    (initializations tried, the best on validation kept: :func:`_best_of_restarts`).
    """
    if restarts(config) > 1:
        return train_method_students(dataset, [noisy], [t_dev], {method: config}, [seed], device, stacked=False)[method][0]
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
    val = _validation(model, [data], config, spec)
    last = fit(model, loss_fn, data.x, y, t, settings, seed_, on_eval=val.on_eval, desc=f"student {method}")
    val.finish()
    head, rec = val.record(0)
    return _student_result(dataset, data, predict(model, data.x_test), _keep_mask(loss_fn, y, t),
                           model.state_dict(), mcfg, head, {**rec, "epochs_trained": val.tracker.epochs_trained(last)[0]})


def _validation_options(config: dict, spec) -> tuple:
    return (config.get("predict_head", "label"), bool(config.get("keep_best", True)), spec.heads == 2,
            spec.clean_labels, int((config.get("train") or {}).get("patience", 0)))


def _validation(model, preps, config: dict, spec) -> _Validation:
    return _Validation(model, preps, *_validation_options(config, spec))


def train_students(dataset: Dataset, noisies: list[NoisyLabels], t_devs: list, method: str, config: dict,
                   seeds: list[int], device: str = "auto", stacked: bool = True,
                   stack_size: int = 0, resume: ResumeDir | None = None) -> list[StudentResult]:
    """One ``method`` student per (noisy labels, teacher predictions, seed), trained in stacks of
    ``stack_size`` (0: all) when the student is an MLP. Results match :func:`train_student` per seed, to float
    rounding."""
    return train_method_students(dataset, noisies, t_devs, {method: config}, seeds, device, stacked, stack_size,
                                 resume)[method]


def _fit_key(config: dict) -> str:
    """Methods train in one optimizer step when their training settings agree."""
    return json.dumps(config.get("train"), sort_keys=True, default=str)


def _group_methods(configs: dict[str, dict], key) -> dict:
    """``{key(config): [method, ...]}`` in the methods' order: the methods that can train together."""
    groups: dict = {}
    for m, cfg in configs.items():
        groups.setdefault(key(cfg), []).append(m)
    return groups


def train_method_students(dataset: Dataset, noisies: list[NoisyLabels], t_devs: list, configs: dict[str, dict],
                          seeds: list[int], device: str = "auto", stacked: bool = True, stack_size: int = 0,
                          resume: ResumeDir | None = None) -> dict[str, list[StudentResult]]:
    """Every method of ``configs`` (``{method: config}``), one student per (noisy labels, seed), all trained as
    one stacked model: one forward pass, one backward pass and one Adam step update every method's students (the
    losses are summed, each reading only its own models' outputs). Per model this is the training it gets alone:
    the same initialization (shared by the methods, seed for seed), the same updates, to float rounding. Methods
    whose training settings differ train in separate stacks; CNN students, one at a time.

    ``t_devs``: each member's teacher predictions (``None`` allowed when no method reads the teacher).
    """
    setups = {m: _student_setup(dataset, m, cfg, t_devs) for m, cfg in configs.items()}

    def apart(groups: list[list[str]]) -> dict[str, list[StudentResult]]:
        return {m: r for ms in groups for m, r in train_method_students(
            dataset, noisies, t_devs, {m: configs[m] for m in ms}, seeds, device, stacked, stack_size, resume).items()}

    by_restarts = _group_methods(configs, restarts)
    if len(by_restarts) > 1:
        return apart(list(by_restarts.values()))
    n_restarts = next(iter(by_restarts), 1)
    if n_restarts > 1:
        return _best_of_restarts(dataset, noisies, t_devs, configs, seeds, n_restarts, device, stacked, stack_size,
                                 resume)
    if not all(stackable(mcfg, stacked) for _, _, mcfg in setups.values()):
        return {m: [train_student(dataset, n, t, m, cfg, s, device) for n, t, s in zip(noisies, t_devs, seeds)]
                for m, cfg in configs.items()}
    by_fit = _group_methods(configs, _fit_key)
    if len(by_fit) > 1:
        return apart(list(by_fit.values()))
    if stack_size and len(seeds) > stack_size:
        out: dict[str, list[StudentResult]] = {m: [] for m in configs}
        for c in chunks(len(seeds), stack_size):
            for m, r in train_method_students(dataset, noisies[c], t_devs[c], configs, seeds[c], device, stacked,
                                              stack_size, resume).items():
                out[m] += r
        return out
    return _train_stacked(dataset, noisies, t_devs, configs, setups, seeds, resolve_device(device), resume)


def restarts(config: dict) -> int:
    """How many initializations a student config trains per model (``restarts``, default 1)."""
    value = config.get("restarts", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"student restarts must be a whole number >= 1, not {value!r}: fix the student's "
                         "'restarts' in params.yaml")
    return value


def restart_seed(seed: int, restart: int) -> int:
    """Restart 0 is the student's usual seed (``restarts: 1`` trains exactly today's students); the others
    draw their own initialization and batches."""
    return seed if restart == 0 else derive_seed(seed, "student-restart", restart)


def _best_of_restarts(dataset, noisies, t_devs, configs, seeds, n_restarts, device, stacked, stack_size,
                      resume) -> dict[str, list[StudentResult]]:
    """Train every model from ``n_restarts`` initializations (all in the same stacks) and keep, per model and method,
    the one with the lowest validation error (``val_error``: its headline head's robust error on the noisy
    validation split, as the best epoch is chosen; never the test split). A restart that fails to fit (a seed
    stuck in a poor minimum of a 4-unit student) is then replaced by one that did.

    (R restarts, B models) train as R·B stacked members: member ``r·B + b`` is model ``b``'s restart ``r``."""
    single = {m: {k: v for k, v in cfg.items() if k != "restarts"} for m, cfg in configs.items()}
    all_seeds = [restart_seed(s, r) for r in range(n_restarts) for s in seeds]
    trained = train_method_students(dataset, list(noisies) * n_restarts, list(t_devs) * n_restarts, single,
                                    all_seeds, device, stacked, stack_size, resume)
    out = {}
    for m, runs in trained.items():
        out[m] = []
        for b in range(len(seeds)):
            tries = [runs[r * len(seeds) + b] for r in range(n_restarts)]
            errors = np.array([t.metrics["val_error"] for t in tries], dtype=np.float64)
            best = int(np.argmin(np.where(np.isnan(errors), np.inf, errors)))  # ties: the lowest restart
            chosen = tries[best]
            chosen.metrics.update(restarts=n_restarts, restart=best,
                                  restart_val_error_worst=float(np.fmax.reduce(errors)))  # NaN only if all are
            out[m].append(chosen)
    return out


class _MethodStacks(nn.Module):
    """Each method's stack of students and its loss, as one model: ``forward(x)`` returns every stack's output,
    and :meth:`loss` sums each method's loss on its own outputs. A ``(M·B, N, in)`` input (mini-batches: each
    model's own samples) holds the methods' rows one after another.

    One stack per method rather than one for all: each op then works on B models' activations (B = 50: 640 KB
    for the paper's student), which stay in the core's L2 cache; on one 550-model stack the same elementwise ops
    ran 15-25× slower per element, from main memory.
    """

    def __init__(self, stacks: list[StackedMLP], losses: list[nn.Module], reads_teacher: list[bool]):
        super().__init__()
        self.stacks, self.losses, self.reads_teacher = nn.ModuleList(stacks), nn.ModuleList(losses), reads_teacher
        self.rows = [slice(i * s.n_models, (i + 1) * s.n_models) for i, s in enumerate(stacks)]

    def forward(self, x):
        return [s(x if x.dim() == 2 else x[r]) for s, r in zip(self.stacks, self.rows)]

    def loss(self, outs, y, t):
        """``(outputs, y, t) -> (M,)``: each method's summed loss."""
        return torch.stack([loss_fn(out, y[r], t[r] if reads else None).sum() for loss_fn, out, r, reads
                            in zip(self.losses, outs, self.rows, self.reads_teacher)])


def _train_stacked(dataset, noisies, t_devs, configs, setups, seeds, dev, resume) -> dict[str, list[StudentResult]]:
    methods = list(configs)
    settings = setups[methods[0]][1]
    preps = [prepare(dataset, n, dev) for n in noisies]
    tr = ~dataset.val
    x = shared_inputs(preps)
    y_noisy, y_clean = torch.stack([p.y for p in preps]), torch.stack([p.y_clean for p in preps])   # (B, N, D)
    reads_teacher = [setups[m][0].uses_teacher for m in methods]
    t_one = (torch.stack([torch.as_tensor(p.y_scaler.transform(t_dev[tr]), device=dev) if t_dev is not None
                          else torch.zeros_like(p.y) for p, t_dev in zip(preps, t_devs)]) if any(reads_teacher)
             else None)
    label_scale = torch.as_tensor(np.stack([p.y_scaler.scale for p in preps])[:, None, :], dtype=torch.float32)
    fit_seeds = [derive_seed(s, "student") for s in seeds]
    stacks, losses, ys = [], [], []
    for m in methods:
        spec, _, mcfg = setups[m]
        ys.append(y_clean if spec.clean_labels else y_noisy)
        losses.append(_student_loss(m, configs[m], label_scale).to(dev))
        if hasattr(losses[-1], "fit"):
            losses[-1].fit(ys[-1], t_one)
        models = []
        for s in fit_seeds:  # the same paired initialization as the one-at-a-time path, for every method
            torch.manual_seed(s)
            models.append(create_model(mcfg))
        stacks.append(StackedMLP(models))
    model = _MethodStacks(stacks, losses, reads_teacher).to(dev)
    vals = [_Validation(stack, preps, *_validation_options(configs[m], setups[m][0]))
            for stack, m in zip(model.stacks, methods)]

    def on_eval(epoch):
        return all([v.on_eval(epoch) for v in vals])  # a list: every method records every check

    def set_extra(extra):
        for v, state in zip(vals, extra["methods"]):
            v.load(state)

    name = "students-" + "+".join(methods)
    state_key = fingerprint(name, configs, noisies, seeds)
    last = fit(model, model.loss, x, torch.cat(ys), torch.cat([t_one] * len(methods)) if t_one is not None else None,
               settings, fit_seeds * len(methods), on_eval=on_eval, desc=f"{len(seeds)} students x {len(methods)} methods",
               resume=resume and resume.at(f"{name}-{state_key}", state_key,
                                           get_extra=lambda: {"methods": [v.state() for v in vals]},
                                           set_extra=set_extra))
    results = {}
    for m, stack, val, loss_fn, y in zip(methods, model.stacks, vals, losses, ys):
        val.finish()
        out, states = predict(stack, preps[0].x_test), stack.state_dicts()
        keep = _keep_mask(loss_fn, y, t_one)
        trained = val.tracker.epochs_trained(last)
        results[m] = []
        for i, p in enumerate(preps):
            out_i = TwoHeadOutput(out.label[i], out.teacher[i]) if isinstance(out, TwoHeadOutput) else out[i]
            head, rec = val.record(i)
            results[m].append(_student_result(dataset, p, out_i, None if keep is None else keep[i], states[i],
                                              setups[m][2], head, {**rec, "epochs_trained": trained[i]}))
    return results

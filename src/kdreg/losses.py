"""Regression distillation losses, addressable by name.

Every loss is an ``nn.Module`` called as ``loss(pred, y, t)``:

- ``pred``: the student's output, ``(N, D)``; for the two-headed methods a :class:`~kdreg.models.TwoHeadOutput`
  (``pred.label``, ``pred.teacher``), each ``(N, D)``;
- ``y``: the labels the method trains on, ``(N, D)`` (noisy labels; clean ones for ``oracle``);
- ``t``: the frozen teacher's predictions, ``(N, D)``; ignored by the losses that do not use a teacher.

``‖·‖`` is the Euclidean norm over the label dimensions, so a "squared error" is summed over dimensions and
averaged over samples. Teacher predictions are detached inside every loss: no gradient ever reaches the teacher.

Every loss also accepts a leading model axis, ``(B, N, D)``, and then returns one loss per model, ``(B,)``: each
reduction is over the samples of one model. :mod:`kdreg.stacked` trains B models at once with the sum.

Losses that need statistics of the whole training set (TOR's threshold, AIL's normalization) have a
``fit(y, t)`` method, called once with the full training set before training; :func:`get_loss` returns them
unfitted and the trainer fits them.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from kdreg import mixture
from kdreg.data import MAD_TO_STD
from kdreg.lossparts import (check_pair, label_head, median, squared_norm,  # noqa: F401  (re-exported)
                             values_checked_upstream)
from kdreg.mixture import GUMLoss, MixtureNLLLoss
from kdreg.methods import METHODS, get_method, method_options  # noqa: F401  (METHODS: the public registry)
from kdreg.rules import tor_mode_problem


class MSELoss(nn.Module):
    """Mean squared error, ``L = mean_i ‖s_i − y_i‖²``.

    Used by ``scratch`` (noisy labels) and ``oracle`` (clean labels y*, a reference bound).
    """

    def forward(self, pred, y: Tensor, t: Tensor | None = None) -> Tensor:
        s = label_head(pred)
        check_pair(s, y)
        return squared_norm(s, y).mean(-1)


class KDLoss(nn.Module):
    """Plain regression distillation, ``L = mean_i ‖s_i − t_i‖²`` (Hinton et al. 2015, applied to regression)."""

    def forward(self, pred, y: Tensor, t: Tensor) -> Tensor:
        s = label_head(pred)
        check_pair(s, t, "prediction and teacher")
        return squared_norm(s, t.detach()).mean(-1)


class KDMixLoss(nn.Module):
    """Label / teacher mixture, ``L = α·mean‖s − y‖² + (1 − α)·mean‖s − t‖²``.

    α = 0.5 is our default: the specification fixes no source for it.
    """

    def __init__(self, alpha: float = 0.5):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"kd_mix alpha must lie in [0, 1], got {alpha}")
        self.alpha = alpha

    def forward(self, pred, y: Tensor, t: Tensor) -> Tensor:
        s = label_head(pred)
        check_pair(s, y)
        check_pair(s, t, "prediction and teacher")
        t = t.detach()
        return self.alpha * squared_norm(s, y).mean(-1) + (1 - self.alpha) * squared_norm(s, t).mean(-1)


class TeacherBoundedLoss(nn.Module):
    """Teacher-bounded regression loss of Chen et al., "Learning Efficient Object Detection Models with Knowledge
    Distillation", NIPS 2017:

    ``L = mean_i [ ‖s_i − y_i‖² + ν·1[‖s_i − y_i‖² + m > ‖t_i − y_i‖²]·‖s_i − y_i‖² ]``

    The extra term is active only while the student is worse than the teacher (by margin m) on a sample.
    ν = 0.5 and m = 0 are our defaults (Chen et al. tune them per task).
    """

    def __init__(self, nu: float = 0.5, margin: float = 0.0):
        super().__init__()
        self.nu, self.margin = nu, margin

    def forward(self, pred, y: Tensor, t: Tensor) -> Tensor:
        s = label_head(pred)
        check_pair(s, y)
        check_pair(s, t, "prediction and teacher")
        student_err = squared_norm(s, y)
        teacher_err = squared_norm(t.detach(), y)
        active = (student_err.detach() + self.margin > teacher_err).to(s.dtype)
        return (student_err + self.nu * active * student_err).mean(-1)


class AILLoss(nn.Module):
    """Attentive imitation loss of Saputra et al., "Distilling Knowledge From a Deep Pose Regressor Network",
    ICCV 2019:

    ``L = mean_i [ α‖s_i − y_i‖² + (1 − α)·Φ_i·‖s_i − t_i‖² ]``,
    ``Φ_i = 1 − (e_i − min e)/(max e − min e)``, ``e_i = ‖t_i − y_i‖²``, min and max over the training set.

    The teacher is imitated where it agrees with the label. ``fit(y, t)`` records min e and max e; Φ is clamped
    to [0, 1] so a batch outside the fitted range cannot flip its sign. α = 0.5 is our default.
    """

    def __init__(self, alpha: float = 0.5):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"ail alpha must lie in [0, 1], got {alpha}")
        self.alpha = alpha
        self.register_buffer("e_min", torch.tensor(float("nan")))
        self.register_buffer("e_max", torch.tensor(float("nan")))

    @torch.no_grad()
    def fit(self, y: Tensor, t: Tensor) -> "AILLoss":
        check_pair(t, y, "teacher and label")
        e = squared_norm(t, y)  # (..., N): min and max per model
        self.e_min, self.e_max = e.amin(-1).to(self.e_min), e.amax(-1).to(self.e_max)
        return self

    def phi(self, y: Tensor, t: Tensor) -> Tensor:
        if torch.isnan(self.e_min).any():
            raise RuntimeError("AILLoss.fit(y, t) must be called on the training set before the loss is used")
        e = squared_norm(t.detach(), y)
        e_min, e_max = self.e_min.unsqueeze(-1), self.e_max.unsqueeze(-1)
        span = (e_max - e_min).clamp_min(torch.finfo(e.dtype).tiny)
        return (1 - (e - e_min) / span).clamp(0.0, 1.0)

    def forward(self, pred, y: Tensor, t: Tensor) -> Tensor:
        s = label_head(pred)
        check_pair(s, y)
        check_pair(s, t, "prediction and teacher")
        t = t.detach()
        phi = self.phi(y, t)
        return (self.alpha * squared_norm(s, y) + (1 - self.alpha) * phi * squared_norm(s, t)).mean(-1)


class HuberLoss(nn.Module):
    """Huber loss per label dimension, summed over dimensions, averaged over samples:

    ``ρ(u) = u²/2`` for ``|u| ≤ δ``, ``δ(|u| − δ/2)`` otherwise; ``u = s − y``. Huber, Ann. Math. Stat. 1964.
    δ = 1 in standardized label units (our default).
    """

    def __init__(self, delta: float = 1.0):
        super().__init__()
        if delta <= 0:
            raise ValueError(f"huber delta must be positive, got {delta}")
        self.delta = delta

    def forward(self, pred, y: Tensor, t: Tensor | None = None) -> Tensor:
        s = label_head(pred)
        check_pair(s, y)
        u = (s - y).abs()
        rho = torch.where(u <= self.delta, 0.5 * u.pow(2), self.delta * (u - 0.5 * self.delta))
        return rho.sum(dim=-1).mean(-1)


class TukeyLoss(nn.Module):
    """Tukey's biweight loss as used for deep regression by Belagiannis et al., "Robust Optimization for Deep
    Regression", ICCV 2015:

    ``ρ(u) = c²/6·[1 − (1 − (u/c)²)³]`` for ``|u| ≤ c``, ``c²/6`` otherwise, c = 4.685,

    with residuals ``u = (s − y) / (1.4826·MAD)``, the MAD taken per label dimension over the batch's residuals
    (detached, so the scale is not optimized). Summed over dimensions, averaged over samples.
    """

    def __init__(self, c: float = 4.685):
        super().__init__()
        self.c = c

    def forward(self, pred, y: Tensor, t: Tensor | None = None) -> Tensor:
        s = label_head(pred)
        check_pair(s, y)
        r = s - y
        with torch.no_grad():
            mad = median((r - median(r, dim=-2, keepdim=True)).abs(), dim=-2, keepdim=True)
            scale = (MAD_TO_STD * mad).clamp_min(1e-8)
        u = r / scale
        inside = (1 - (u / self.c).pow(2)).clamp_min(0.0).pow(3)
        return (self.c ** 2 / 6 * (1 - inside)).sum(dim=-1).mean(-1)


class TORLoss(nn.Module):
    """Teacher outlier rejection (Takamoto, Morishita & Imaoka, MIPR 2020, arXiv:2002.12597).

    With ``r_i = ‖y_i − t_i‖`` and the mask ``m_i = 1[r_i ≤ δ]``:

    - ``mode="drop"``: ``L = Σ_i m_i‖s_i − y_i‖² / Σ_i m_i`` (0 when no sample is kept);
    - ``mode="teacher"``: ``L = mean_i ‖s_i − (m_i y_i + (1 − m_i) t_i)‖²``, rejected samples learn the teacher.

    The threshold δ is fitted once on the whole training set by ``fit(y, t)``:

    - ``threshold="mad"``: ``δ = k·1.4826·median(r)``, k = 3 (our default);
    - ``threshold="quantile"``: δ is the (1 − q) quantile of r, rejecting the top q;
    - ``threshold="fixed"``: δ given in label units;
    - ``threshold="mixture"`` (kdreg's own, noise-adaptive): no δ. EM fits a clean / corrupted mixture to the
      residuals (:mod:`kdreg.mixture`: clean ``y ~ p_c(y − t; σ)``, Gaussian or Student-t, with probability π;
      corrupted ``y ~ q(y)``, the KDE of the noisy training labels) and ``m_i = 1[w_i ≥ 0.5]`` with ``w_i`` the
      posterior of being clean. With clean labels π → 1 and nothing is dropped. ``mode="weight"`` trains on
      ``L = Σ_i w_i‖s_i − y_i‖² / Σ_i w_i`` instead of the hard mask.

    The paper's abstract fixes the idea, not these thresholds: they are kdreg's definitions. ``label_scale``
    (per dimension) converts the tensors the loss sees back into label units before r is taken, so that a
    trainer working on standardized targets still thresholds in label units; with a leading model axis it is
    ``(B, 1, D)`` and δ is fitted per model. δ → ∞ gives plain MSE.
    """

    MODES = ("drop", "teacher", "weight")
    THRESHOLDS = ("mad", "quantile", "fixed", "mixture")

    def __init__(self, mode: str = "drop", threshold: str = "mad", k: float = 3.0, q: float = 0.1,
                 delta: float | None = None, label_scale=None, clean: str = "student_t", nu: float = 4.0):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"tor mode must be one of {self.MODES}, got {mode!r}")
        if threshold not in self.THRESHOLDS:
            raise ValueError(f"tor threshold must be one of {self.THRESHOLDS}, got {threshold!r}")
        if problem := tor_mode_problem(mode, threshold):
            raise ValueError(f"tor {problem}")
        if clean not in mixture.CLEAN or nu <= 0:
            raise ValueError(f"tor clean must be one of {mixture.CLEAN} and nu > 0, got {clean!r}, {nu}")
        self.clean, self.nu = clean, float(nu)
        # the mixture's fit: π (...,), σ (..., 1, D) and q, in the (standardized) units the loss sees
        for name in ("pi", "sigma"):
            self.register_buffer(name, None)
        self.density = mixture.LabelDensity()
        if threshold == "fixed" and (delta is None or delta < 0):
            raise ValueError("tor threshold 'fixed' needs delta >= 0 (in label units)")
        if threshold == "quantile" and not 0.0 <= q < 1.0:
            raise ValueError(f"tor quantile q must lie in [0, 1), got {q}")
        if k <= 0:
            raise ValueError(f"tor k must be positive, got {k}")
        self.mode, self.threshold, self.k, self.q = mode, threshold, k, q
        scale = torch.ones(1) if label_scale is None else torch.as_tensor(label_scale, dtype=torch.float32)
        self.register_buffer("label_scale", scale)
        self.register_buffer("delta", torch.tensor(float(delta) if threshold == "fixed" else float("nan")))

    def residual(self, y: Tensor, t: Tensor) -> Tensor:
        """``r_i = ‖y_i − t_i‖`` in label units: ``(..., N, D) -> (..., N)``."""
        return ((y - t.detach()) * self.label_scale.to(y)).pow(2).sum(dim=-1).sqrt()

    @torch.no_grad()
    def fit(self, y: Tensor, t: Tensor) -> "TORLoss":
        check_pair(t, y, "teacher and label")
        r = self.residual(y, t)
        if self.threshold == "mixture":
            pi, sigma = mixture.fit_em(y - t, self.density.fit(y)(y), self.clean, self.nu)
            self.pi, self.sigma = pi.to(y.dtype), sigma.to(y.dtype)
        elif self.threshold == "mad":
            self.delta = (self.k * MAD_TO_STD * median(r, dim=-1)).to(self.delta)
        elif self.threshold == "quantile":
            self.delta = torch.quantile(r.double(), 1.0 - self.q, dim=-1).to(self.delta)
        return self

    def _check_fitted(self) -> None:
        if self.pi is None if self.threshold == "mixture" else torch.isnan(self.delta).any():
            raise RuntimeError("TORLoss.fit(y, t) must be called on the training set before the loss is used")

    def clean_weight(self, y: Tensor, t: Tensor) -> Tensor:
        """``threshold="mixture"``: each sample's posterior of being clean, ``(..., N)``."""
        self._check_fitted()
        return mixture.posterior(y - t.detach(), self.density(y), self.pi, self.sigma, self.clean, self.nu)

    def keep_mask(self, y: Tensor, t: Tensor) -> Tensor:
        """Boolean ``(..., N)``: True where the sample is kept."""
        if self.threshold == "mixture":
            return self.clean_weight(y, t) >= 0.5
        self._check_fitted()
        return self.residual(y, t) <= self.delta.unsqueeze(-1)

    def forward(self, pred, y: Tensor, t: Tensor) -> Tensor:
        s = label_head(pred)
        check_pair(s, y)
        check_pair(s, t, "prediction and teacher")
        t = t.detach()
        if self.mode == "weight":
            w = self.clean_weight(y, t).detach()
            return (w * squared_norm(s, y)).sum(-1) / w.sum(-1).clamp_min(1e-12)
        keep = self.keep_mask(y, t)
        if self.mode == "teacher":
            target = torch.where(keep.unsqueeze(-1), y, t)
            return squared_norm(s, target).mean(-1)
        err = squared_norm(s, y)
        # where() rather than multiplying by the mask: a rejected sample must give exactly zero gradient.
        kept = torch.where(keep, err, torch.zeros_like(err))
        return kept.sum(-1) / keep.sum(-1).clamp_min(1)


class MultiTaskLoss(nn.Module):
    """Two-headed student loss: ``L = L_label(h_y, y; t) + λ·mean_i ‖h_t,i − t_i‖²``.

    The teacher head learns the teacher's output, which the memorization effect makes cleaner than the labels;
    sharing the backbone, it trains the student's features better (Takamoto et al., MIPR 2020). With
    ``L_label`` = MSE this is ``multitask``; with TOR it is ``tor_multitask``, the paper's proposed method.
    λ = 1 is our default.
    """

    def __init__(self, label_loss: nn.Module | None = None, lam: float = 1.0):
        super().__init__()
        if lam < 0:
            raise ValueError(f"multitask lambda must be >= 0, got {lam}")
        self.label_loss = label_loss if label_loss is not None else MSELoss()
        self.lam = lam

    def fit(self, y: Tensor, t: Tensor) -> "MultiTaskLoss":
        if hasattr(self.label_loss, "fit"):
            self.label_loss.fit(y, t)
        return self

    def forward(self, pred, y: Tensor, t: Tensor) -> Tensor:
        if not hasattr(pred, "teacher"):
            raise ValueError("multitask losses need a two-headed student (TwoHeadStudent); got a single tensor")
        check_pair(pred.teacher, t, "teacher head and teacher")
        return self.label_loss(pred.label, y, t) + self.lam * squared_norm(pred.teacher, t.detach()).mean(-1)


# The registry: every method of kdreg.methods by name, its loss built from the class the table names. The
# constructor defaults are the only defaults (the table repeats none of them).
LOSSES: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in (
    MSELoss, KDLoss, KDMixLoss, TeacherBoundedLoss, AILLoss, HuberLoss, TukeyLoss, TORLoss, MixtureNLLLoss,
    GUMLoss, MultiTaskLoss)}
WRAPPER_OPTIONS = ("lam",)  # a two-headed method's own option; the rest go to its label-head loss


def get_loss(name: str, **options) -> nn.Module:
    """Build the loss of method ``name`` (see :data:`kdreg.methods.METHODS`); ``options`` are that loss's
    parameters, e.g. ``get_loss("tor_multitask", lam=1.0, threshold="quantile", q=0.2)``."""
    method = get_method(name)
    try:
        if method.label_loss is None:
            return LOSSES[method.loss](**options)
        wrapper = {k: options.pop(k) for k in WRAPPER_OPTIONS if k in options}
        return LOSSES[method.loss](LOSSES[method.label_loss](**options), **wrapper)
    except TypeError as err:
        raise ValueError(f"bad options {sorted(options)} for loss {name!r}: {err}") from None


def loss_options(name: str, config: dict) -> dict:
    """Pick the options of method ``name`` out of the ``loss_options`` section of params.yaml.

    ``config`` looks like ``{"kd_mix": {"alpha": 0.5}, "tor": {"threshold": "mad", "k": 3}, "multitask":
    {"lambda": 1.0}}``; each method reads the sections its table entry names (``tor_multitask``: ``tor`` and
    ``multitask``).
    """
    opts = method_options(name, config)
    if "lambda" in opts:  # `lambda` is the natural params key but a Python keyword
        opts["lam"] = opts.pop("lambda")
    return opts

"""A clean / corrupted mixture over the training labels, fitted by EM: kdreg's noise-adaptive rejection.

Each label is either clean, ``y_i ~ p_c(y_i − t_i; σ)`` around a reference ``t_i`` (the teacher's prediction, or a
model's own), with probability π, or corrupted, ``y_i ~ q(y_i)`` with probability 1 − π, where q is the density of
the noisy training labels themselves (Huber's contamination model, 1964; DeepGUM, Lathuilière et al., ECCV 2018,
fits the same mixture with a uniform q). The posterior of being clean,

    w_i = π·p_c(r_i) / (π·p_c(r_i) + (1 − π)·q(y_i)),    r_i = y_i − t_i,

is what :class:`kdreg.losses.TORLoss` keeps or weights (``threshold: mixture``) and what the mixture losses weight.
With clean labels EM drives π to 1 and w to 1 everywhere: nothing is rejected, where a fixed-shape threshold still
drops the tails.

q is a product over label dimensions of one-dimensional Gaussian KDEs (Silverman's bandwidth), each sample left out
of its own estimate; a joint KDE would need far more samples per dimension than gaze or pose tables hold. The clean
component p_c has a diagonal scale σ_d per dimension, Gaussian or Student-t with ν degrees of freedom (heavier
tails: real residuals are not Gaussian, and a Gaussian clean component calls their tails corrupted).

Every function takes a leading model axis: ``(..., N, D)`` in, ``(..., N)`` or ``(...)`` out, one fit per model.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kdreg.lossparts import check_pair, label_head

CLEAN = ("gaussian", "student_t")
TINY = 1e-12


def bandwidth(y: Tensor) -> Tensor:
    """Silverman's rule per dimension, ``h = 0.9·min(sd, IQR/1.34)·n^(−1/5)``: ``(..., N, D) -> (..., 1, D)``."""
    n = y.shape[-2]
    sd = y.std(dim=-2, keepdim=True)
    q = torch.quantile(y, torch.tensor([0.25, 0.75], dtype=y.dtype, device=y.device), dim=-2, keepdim=True)
    iqr = (q[1] - q[0]) / 1.34
    spread = torch.where(iqr > 0, torch.minimum(sd, iqr), sd)
    return (0.9 * spread * n ** -0.2).clamp_min(1e-6)


@torch.no_grad()
def label_density(y: Tensor, chunk: int = 1024) -> Tensor:
    """Leave-one-out KDE of the labels at each label, product over dimensions: ``(..., N, D) -> (..., N)``. The
    exact reference of :func:`density_grid` (tests); float64 inside, ``chunk`` rows of the N × N kernel at a time."""
    y64 = y.double()
    n = y64.shape[-2]
    h = bandwidth(y64)                                                     # (..., 1, D)
    norm = 1.0 / ((n - 1) * h * math.sqrt(2 * math.pi))                    # (..., 1, D)
    dens = torch.empty(y64.shape, dtype=torch.float64, device=y.device)   # (..., N, D)
    for a in range(0, n, chunk):
        rows = y64[..., a:a + chunk, :]                                    # (..., c, D)
        z = (rows.unsqueeze(-2) - y64.unsqueeze(-3)) / h.unsqueeze(-3)    # (..., c, N, D)
        k = torch.exp(-0.5 * z * z).sum(dim=-2) - 1.0                      # leave one out: its own kernel is 1
        dens[..., a:a + chunk, :] = k.clamp_min(0.0) * norm
    return dens.clamp_min(TINY).log().sum(dim=-1).exp().to(y.dtype)


@torch.no_grad()
def density_grid(y: Tensor, points: int = 512, outlier: str = "labels") -> tuple[Tensor, Tensor, Tensor]:
    """log q on a regular grid per dimension, for :func:`log_density` to interpolate at any label (a mini-batch's,
    a validation split's): ``(..., N, D) -> (lo (..., 1, D), step (..., 1, D), log_q (..., G, D))``.

    ``outlier="labels"``: q is the Gaussian KDE of ``y`` (Silverman's bandwidth), on ``[min − 4h, max + 4h]``;
    ``"uniform"``: q is uniform over the labels' range (DeepGUM's outlier density), the same value everywhere."""
    y64 = y.double()
    n = y64.shape[-2]
    lo, hi = y64.amin(dim=-2, keepdim=True), y64.amax(dim=-2, keepdim=True)
    if outlier == "uniform":
        width = (hi - lo).clamp_min(1e-6)
        grid_log_q = (-torch.log(width)).expand(*width.shape[:-2], 2, width.shape[-1])
        return lo.to(y.dtype), width.to(y.dtype), grid_log_q.to(y.dtype).contiguous()
    if outlier != "labels":
        raise ValueError(f"mixture outlier density must be 'labels' or 'uniform', got {outlier!r}")
    h = bandwidth(y64)
    lo, hi = lo - 4 * h, hi + 4 * h
    step = (hi - lo) / (points - 1)                                        # (..., 1, D)
    g = lo + step * torch.arange(points, dtype=torch.float64, device=y.device).unsqueeze(-1)   # (..., G, D)
    dens = torch.zeros(g.shape, dtype=torch.float64, device=y.device)
    for a in range(0, n, 256):                                             # (..., G, 256, D) at a time
        z = (g.unsqueeze(-2) - y64[..., a:a + 256, :].unsqueeze(-3)) / h.unsqueeze(-3)
        dens += torch.exp(-0.5 * z * z).sum(dim=-2)
    dens = dens / (n * h * math.sqrt(2 * math.pi))
    return lo.to(y.dtype), step.to(y.dtype), dens.clamp_min(TINY).log().to(y.dtype)


def log_density(y: Tensor, grid: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """log q(y) per sample by linear interpolation on the grid, flat beyond it: ``(..., N, D) -> (..., N)``."""
    lo, step, log_q = grid
    points = log_q.shape[-2]
    pos = ((y - lo) / step).clamp(0, points - 1)                           # (..., N, D)
    i0 = pos.floor().clamp(max=points - 2).long()
    frac = pos - i0
    v0, v1 = torch.gather(log_q, -2, i0), torch.gather(log_q, -2, i0 + 1)
    return (v0 + frac * (v1 - v0)).sum(dim=-1)


class LabelDensity(nn.Module):
    """q, the outlier density, fitted once on the training labels and evaluated at any label: the grid of
    :func:`density_grid` as buffers (so it moves with ``.to(device)`` and a stack's losses), ``None`` until ``fit``."""

    def __init__(self, outlier: str = "labels"):
        super().__init__()
        self.outlier = outlier
        for name in ("lo", "step", "log_q"):
            self.register_buffer(name, None)

    @property
    def fitted(self) -> bool:
        return self.log_q is not None

    @torch.no_grad()
    def fit(self, y: Tensor) -> "LabelDensity":
        self.lo, self.step, self.log_q = density_grid(y, outlier=self.outlier)
        return self

    def forward(self, y: Tensor) -> Tensor:
        """log q(y): ``(..., N, D) -> (..., N)``."""
        return log_density(y, (self.lo, self.step, self.log_q))


def clean_log_density(r: Tensor, sigma: Tensor, clean: str = "gaussian", nu: float = 4.0) -> Tensor:
    """``log p_c(r)`` per sample, a product over dimensions: ``(..., N, D), (..., 1, D) -> (..., N)``."""
    z2 = (r / sigma).pow(2)
    if clean == "gaussian":
        per = -0.5 * z2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
    else:
        per = (math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
               - torch.log(sigma) - (nu + 1) / 2 * torch.log1p(z2 / nu))
    return per.sum(dim=-1)


def posterior(r: Tensor, log_q: Tensor, pi: Tensor, sigma: Tensor, clean: str = "gaussian",
              nu: float = 4.0) -> Tensor:
    """``w_i``, the probability that sample i is clean: ``(..., N)``."""
    a = torch.log(pi).unsqueeze(-1) + clean_log_density(r, sigma, clean, nu)
    b = torch.log1p(-pi).unsqueeze(-1) + log_q
    return torch.sigmoid(a - b)


@torch.no_grad()
def fit_em(r: Tensor, log_q: Tensor, clean: str = "gaussian", nu: float = 4.0, iters: int = 200,
           tol: float = 1e-7, pi_max: float = 1.0 - 1e-6) -> tuple[Tensor, Tensor]:
    """EM for π and σ with q held fixed: ``r (..., N, D)``, ``log_q (..., N)`` -> ``(π (...), σ (..., 1, D))``
    (float64); :func:`posterior` gives each sample's w from them.

    Starts from π = 0.9 and σ = 1.4826·MAD of r (robust, so the corrupted share does not inflate it); stops when π
    moves less than ``tol``. For the Student-t component, σ's M-step uses the usual latent precisions
    ``u_i = (ν + 1) / (ν + r²/σ²)`` per dimension (Liu & Rubin, Statistica Sinica 1995) with ν fixed.
    """
    if clean not in CLEAN:
        raise ValueError(f"mixture clean component must be one of {CLEAN}, got {clean!r}")
    r = r.double()
    log_q = log_q.double()
    med = r.median(dim=-2, keepdim=True).values
    sigma = (1.4826 * (r - med).abs().median(dim=-2, keepdim=True).values).clamp_min(1e-8)
    pi = torch.full(r.shape[:-2], 0.9, dtype=torch.float64, device=r.device)
    for _ in range(iters):
        w = posterior(r, log_q, pi, sigma, clean, nu)                     # (..., N)
        new_pi = w.mean(dim=-1).clamp(1e-6, pi_max)
        u = torch.ones_like(r) if clean == "gaussian" else (nu + 1) / (nu + (r / sigma).pow(2))
        ww = w.unsqueeze(-1)
        sigma = ((ww * u * r * r).sum(dim=-2, keepdim=True) / ww.sum(dim=-2, keepdim=True).clamp_min(TINY)
                 ).sqrt().clamp_min(1e-8)
        done = tol > 0 and bool((new_pi - pi).abs().max() < tol)   # tol 0: a fixed number of steps, no sync
        pi = new_pi
        if done:
            break
    return pi, sigma


class MixtureNLLLoss(nn.Module):
    """Negative log-likelihood of a clean / corrupted label mixture (:mod:`kdreg.mixture`):

    ``L = −mean_i log[ π·p_c(y_i − s_i; σ) + (1 − π)·q(y_i) ]``,

    with π and σ re-estimated by EM on the current residuals at every step (detached: the model is fitted, the
    mixture is estimated), so the loss adapts to the noise as it trains. Its gradient is ``w_i``-weighted least
    squares, ``w_i`` the posterior of being clean: with clean labels π → 1 and, for a Gaussian p_c, it is MSE
    up to scale; with corrupted labels the samples q explains better stop pulling.

    - ``outlier="labels"`` (``loss: mixture``, kdreg's own): q is the KDE of the noisy training labels, the
      density a resampled label is drawn from;
    - ``outlier="uniform"`` (``gum``): q uniform over the labels' range, the Gaussian-uniform mixture of DeepGUM
      (Lathuilière, Mesejo, Alameda-Pineda & Horaud, "DeepGUM: Learning Deep Robust Regression with a
      Gaussian-Uniform Mixture Model", ECCV 2018), here without its per-sample weighting schedule.

    ``fit(y)`` records q from the whole training set (the trainer calls it once). ``em_iters`` EM steps per call,
    from π = 0.9 and σ = 1.4826·MAD: stateless, so a resumed training is the same training.
    """

    def __init__(self, outlier: str = "labels", clean: str = "gaussian", nu: float = 4.0, em_iters: int = 10):
        super().__init__()
        if outlier not in ("labels", "uniform") or clean not in CLEAN or nu <= 0 or em_iters < 1:
            raise ValueError(f"mixture loss: outlier must be labels | uniform, clean one of {CLEAN}, "
                             f"nu > 0 and em_iters >= 1; got {outlier!r}, {clean!r}, {nu}, {em_iters}")
        self.outlier, self.clean, self.nu, self.em_iters = outlier, clean, float(nu), int(em_iters)
        self.density = LabelDensity(outlier)

    def fit(self, y: Tensor, t: Tensor | None = None) -> "MixtureNLLLoss":
        self.density.fit(y)
        return self

    def forward(self, pred, y: Tensor, t: Tensor | None = None) -> Tensor:
        if not self.density.fitted:
            raise RuntimeError("MixtureNLLLoss.fit(y) must be called on the training set before the loss is used")
        s = label_head(pred)
        check_pair(s, y)
        r = y - s
        log_q = self.density(y)
        pi, sigma = fit_em(r.detach(), log_q, self.clean, self.nu, iters=self.em_iters, tol=0.0)
        pi, sigma = pi.to(r.dtype), sigma.to(r.dtype)
        a = torch.log(pi).unsqueeze(-1) + clean_log_density(r, sigma, self.clean, self.nu)
        b = torch.log1p(-pi).unsqueeze(-1) + log_q
        return -torch.logaddexp(a, b).mean(-1)


class GUMLoss(MixtureNLLLoss):
    """DeepGUM's Gaussian-uniform mixture (Lathuilière et al., ECCV 2018): :class:`MixtureNLLLoss` with q uniform
    over the training labels' range, ``L = −mean_i log[π·N(y_i; s_i, σ²) + (1 − π)/|range|]``."""

    def __init__(self, clean: str = "gaussian", nu: float = 4.0, em_iters: int = 10):
        super().__init__("uniform", clean, nu, em_iters)

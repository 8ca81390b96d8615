"""The clean / corrupted label mixture (kdreg.mixture) and the losses built on it."""
import numpy as np
import pytest
import torch

from kdreg import mixture
from kdreg.losses import GUMLoss, MixtureNLLLoss, TORLoss, get_loss


def synthetic(n=4000, pi=0.7, sigma=0.1, seed=0, clean="gaussian"):
    """Labels y = t + clean noise (share pi) or y ~ U(-3, 3); returns y, t, mask of corrupted (N, 1)."""
    g = np.random.default_rng(seed)
    t = g.uniform(-1, 1, size=(n, 1))
    noise = g.standard_t(4, size=(n, 1)) if clean == "student_t" else g.normal(size=(n, 1))
    y = t + sigma * noise
    bad = g.random(n) > pi
    y[bad] = g.uniform(-3, 3, size=(bad.sum(), 1))
    return torch.tensor(y), torch.tensor(t), bad


@pytest.mark.parametrize("clean", ["gaussian", "student_t"])
def test_em_recovers_pi_and_sigma(clean):
    y, t, bad = synthetic(pi=0.7, sigma=0.1, clean=clean)
    log_q = mixture.LabelDensity().fit(y)(y)
    pi, sigma = mixture.fit_em(y - t, log_q, clean)
    w = mixture.posterior(y - t, log_q, pi, sigma, clean)
    # q is the labels' own density (clean and corrupted together), so π comes out a little under 0.7; Student-t's
    # far tails (ν = 4) are partly explained by q too
    assert abs(float(pi) - 0.7) < (0.05 if clean == "gaussian" else 0.08)
    assert abs(float(sigma.squeeze()) - 0.1) < 0.015
    rejected = (w < 0.5).numpy()
    # precision: Student-t's far clean tails are partly rejected too
    assert (rejected & bad).sum() / rejected.sum() > (0.9 if clean == "gaussian" else 0.85)
    assert (rejected & bad).sum() / bad.sum() > 0.8             # recall (corrupted labels near t stay in)


def test_clean_labels_are_kept():
    y, t, _ = synthetic(pi=1.0, sigma=0.1, clean="student_t")
    tor = TORLoss(threshold="mixture").fit(y.float(), t.float())
    assert float(tor.pi) > 0.97
    assert tor.keep_mask(y.float(), t.float()).float().mean() > 0.99   # at p = 0 under 1% rejected


def test_grid_density_matches_the_exact_kde():
    y = torch.tensor(np.random.default_rng(1).normal(size=(500, 2)))
    exact = mixture.label_density(y).log()
    grid = mixture.log_density(y, mixture.density_grid(y, points=1024))
    # linear interpolation, and the grid counts each label's own kernel: it matters only at isolated labels (there
    # by design: an isolated wrong label must not look clean for want of neighbours), so those are left out
    diff = (exact - grid).abs()[exact > np.log(0.01)]
    assert len(diff) > 450 and diff.median() < 0.02 and diff.max() < 0.2


def test_stacked_fit_is_each_models_fit():
    ys, ts = zip(*[synthetic(n=600, pi=p, seed=s)[:2] for s, p in enumerate((0.6, 0.9, 1.0))])
    y, t = torch.stack(ys).float(), torch.stack(ts).float()
    tor = TORLoss(threshold="mixture").fit(y, t)
    for b in range(3):
        alone = TORLoss(threshold="mixture").fit(y[b], t[b])
        assert torch.allclose(tor.pi[b], alone.pi, atol=1e-6)
        assert torch.equal(tor.keep_mask(y, t)[b], alone.keep_mask(y[b], t[b]))


def test_weight_mode_weights_by_the_posterior():
    y, t, _ = synthetic(n=300, pi=0.7)
    y, t = y.float(), t.float()
    tor = TORLoss(threshold="mixture", mode="weight").fit(y, t)
    s = torch.zeros_like(y, requires_grad=True)
    loss = tor(s, y, t)
    w = tor.clean_weight(y, t)
    assert torch.allclose(loss, (w * (s - y).pow(2).squeeze(-1)).sum() / w.sum())
    loss.backward()
    # each sample pulls in proportion to its posterior: a sure outlier not at all
    assert torch.allclose(s.grad.squeeze(-1), (2 * w * (s - y).squeeze(-1) / w.sum()).detach(), atol=1e-7)
    with pytest.raises(ValueError, match="weight.*needs threshold 'mixture'"):
        TORLoss(mode="weight", threshold="mad")


@pytest.mark.parametrize("cls", [MixtureNLLLoss, GUMLoss])
def test_mixture_nll_gradient_float64(cls):
    y, _, _ = synthetic(n=64, pi=0.7)
    loss = cls().fit(y)
    s = (y + 0.05 * torch.randn_like(y)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: loss(p, y), (s,))


def test_mixture_nll_is_mse_like_on_clean_labels():
    """π → 1 on clean labels, so every sample pulls like least squares: gradients proportional to the residual."""
    y, t, _ = synthetic(n=500, pi=1.0, sigma=0.05)
    loss = MixtureNLLLoss().fit(y)
    s = t.clone().requires_grad_(True)
    loss(s, y).backward()
    ratio = (s.grad / (s - y).detach()).squeeze(-1)
    assert ratio.std() / ratio.mean().abs() < 0.05


def test_methods_build_by_name():
    assert isinstance(get_loss("gum"), GUMLoss) and get_loss("gum").outlier == "uniform"
    assert get_loss("mixture").outlier == "labels"
    with pytest.raises(ValueError, match="outlier"):
        MixtureNLLLoss(outlier="gamma")

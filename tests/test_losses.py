"""Property tests of every loss in the registry."""
import math

import pytest
import torch

from kdreg.losses import (METHODS, AILLoss, HuberLoss, MSELoss, TeacherBoundedLoss, TORLoss, TukeyLoss,
                          get_loss, loss_options)
from kdreg.models import TwoHeadOutput


def batch(n=64, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n, d, generator=g)
    t = y + 0.1 * torch.randn(n, d, generator=g)
    s = torch.randn(n, d, generator=g, requires_grad=True)
    return s, y, t


def call(loss, s, y, t):
    """Feed one tensor or two heads, whichever the loss wants; fit first when it needs training-set stats."""
    if hasattr(loss, "fit"):
        loss.fit(y, t)
    pred = TwoHeadOutput(s, s) if isinstance(loss, type(get_loss("multitask"))) else s
    return loss(pred, y, t)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_builds_and_gives_a_finite_scalar(name):
    s, y, t = batch()
    value = call(get_loss(name), s, y, t)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.uses_teacher])
def test_no_gradient_reaches_the_teacher(name):
    s, y, t = batch()
    t = t.clone().requires_grad_(True)
    loss = get_loss(name)
    if hasattr(loss, "fit"):
        loss.fit(y, t.detach())
    pred = TwoHeadOutput(s, s) if METHODS[name].heads == 2 else s
    loss(pred, y, t).backward()
    assert t.grad is None
    assert s.grad.abs().sum() > 0


def test_tor_with_infinite_threshold_is_mse():
    s, y, t = batch()
    t = t + 5 * torch.randn_like(t)  # large disagreements: a finite δ would reject some
    tor = TORLoss(threshold="fixed", delta=1e12).fit(y, t)
    assert torch.allclose(tor(s, y, t), MSELoss()(s, y))
    teacher_mode = TORLoss(mode="teacher", threshold="fixed", delta=1e12).fit(y, t)
    assert torch.allclose(teacher_mode(s, y, t), MSELoss()(s, y))


def test_tor_rejected_samples_get_zero_gradient_and_kept_samples_do_not():
    s, y, t = batch(n=10, d=1)
    y = y.clone()
    y[:3] += 50.0  # three gross outliers far from the teacher
    tor = TORLoss(threshold="mad", k=3).fit(y, t)
    keep = tor.keep_mask(y, t)
    assert keep[:3].logical_not().all() and keep[3:].all()
    tor(s, y, t).backward()
    assert torch.equal(s.grad[:3], torch.zeros_like(s.grad[:3]))
    assert (s.grad[3:].abs() > 0).all()


def test_tor_drop_value_is_mean_over_kept_and_zero_when_none_kept():
    s, y, t = batch(n=8, d=1)
    y = y.clone()
    y[:2] += 50.0
    tor = TORLoss().fit(y, t)
    expected = ((s[2:] - y[2:]) ** 2).sum(-1).mean()
    assert torch.allclose(tor(s, y, t), expected)
    none_kept = TORLoss(threshold="fixed", delta=0.0).fit(y + 1.0, t)
    assert none_kept(s, y + 1.0, t).item() == 0.0


def test_tor_teacher_mode_swaps_the_target_of_rejected_samples():
    s, y, t = batch(n=8, d=2)
    y = y.clone()
    y[:2] += 50.0
    tor = TORLoss(mode="teacher").fit(y, t)
    target = torch.cat([t[:2], y[2:]])
    assert torch.allclose(tor(s, y, t), ((s - target) ** 2).sum(-1).mean())


def test_tor_quantile_rejects_the_top_q():
    s, y, t = batch(n=100, d=1)
    y = y + torch.linspace(0, 10, 100)[:, None]  # residual grows with the index
    tor = TORLoss(threshold="quantile", q=0.2).fit(y, t)
    assert int((~tor.keep_mask(y, t)).sum()) == 20


def test_tor_label_scale_thresholds_in_label_units():
    y = torch.zeros(4, 1)
    t = torch.tensor([[0.1], [0.2], [0.3], [1.0]])
    # standardized units ×10 = label units: residuals 1, 2, 3, 10 against a fixed δ = 5 in label units
    tor = TORLoss(threshold="fixed", delta=5.0, label_scale=[10.0]).fit(y, t)
    assert tor.keep_mask(y, t).tolist() == [True, True, True, False]


def test_tor_needs_fit():
    s, y, t = batch()
    with pytest.raises(RuntimeError, match="fit"):
        TORLoss()(s, y, t)


def test_teacher_bounded_extra_term_inactive_where_student_beats_teacher():
    y = torch.zeros(4, 1)
    t = torch.full((4, 1), 1.0)           # teacher error 1 on every sample
    s = torch.tensor([[0.1], [0.5], [2.0], [3.0]], requires_grad=True)  # better, better, worse, worse
    value = TeacherBoundedLoss(nu=0.5)(s, y, t)
    err = s.detach().pow(2).squeeze(1)
    expected = (err + 0.5 * torch.tensor([0.0, 0.0, 1.0, 1.0]) * err).mean()
    assert torch.allclose(value, expected)
    value.backward()
    # gradient 2s/N where inactive, 2s·1.5/N where active
    assert torch.allclose(s.grad.squeeze(1), 2 * s.detach().squeeze(1) * torch.tensor([1, 1, 1.5, 1.5]) / 4)


def test_teacher_bounded_equals_mse_when_student_always_better():
    s, y, t = batch()
    t = y + 100.0
    assert torch.allclose(TeacherBoundedLoss()(s, y, t), MSELoss()(s, y))


def test_ail_phi_stays_in_unit_interval_also_outside_fitted_range():
    s, y, t = batch(n=50)
    ail = AILLoss().fit(y, t)
    phi = ail.phi(y, t)
    assert phi.min() >= 0 and phi.max() <= 1
    assert torch.isclose(phi.max(), torch.tensor(1.0)) and torch.isclose(phi.min(), torch.tensor(0.0))
    far = ail.phi(y, t + 100.0)  # errors beyond the fitted max must clamp to 0, not go negative
    assert far.min() >= 0 and far.max() <= 1


def test_ail_formula():
    y = torch.zeros(3, 1)
    t = torch.tensor([[0.0], [1.0], [2.0]])    # e = 0, 1, 4 → Φ = 1, 0.75, 0
    s = torch.tensor([[1.0], [1.0], [1.0]])
    ail = AILLoss(alpha=0.5).fit(y, t)
    expected = (0.5 * torch.tensor([1.0, 1, 1]) + 0.5 * torch.tensor([1.0, 0.75, 0.0]) * torch.tensor([1.0, 0, 1])).mean()
    assert torch.allclose(ail(s, y, t), expected)


def test_huber_hand_values():
    y = torch.zeros(3, 2)
    s = torch.tensor([[0.5, 0.0], [2.0, 0.0], [-3.0, 1.0]])
    # δ = 1: 0.125 ; 1·(2 − 0.5) = 1.5 ; 2.5 + 0.5 = 3.0 → mean 4.625 / 3
    assert math.isclose(HuberLoss(1.0)(s, y).item(), (0.125 + 1.5 + 3.0) / 3, rel_tol=1e-6)


def test_tukey_hand_values():
    # residuals −2, −1, 0, 1, 2, 30: median 0.5, MAD 1.5 → scale 1.4826·1.5
    r = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0, 30.0])[:, None]
    y = torch.zeros_like(r)
    c = 4.685
    scale = 1.4826 * 1.5
    u = r.squeeze(1) / scale
    rho = [c * c / 6 * (1 - (1 - (ui / c) ** 2) ** 3) if abs(ui) <= c else c * c / 6 for ui in u.tolist()]
    assert math.isclose(TukeyLoss(c)(r, y).item(), sum(rho) / 6, rel_tol=1e-5)


def test_tukey_gross_outlier_has_zero_gradient():
    r = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0, 30.0])[:, None].requires_grad_(True)
    TukeyLoss()(r, torch.zeros(6, 1)).backward()
    assert r.grad[5].item() == 0.0 and r.grad[4].item() != 0.0


def test_multitask_adds_lambda_times_teacher_head_error():
    s, y, t = batch()
    h_t = torch.randn_like(s)
    loss = get_loss("multitask", lam=2.0)
    expected = MSELoss()(s, y) + 2.0 * ((h_t - t) ** 2).sum(-1).mean()
    assert torch.allclose(loss(TwoHeadOutput(s, h_t), y, t), expected)


def test_multitask_rejects_a_single_head():
    s, y, t = batch()
    with pytest.raises(ValueError, match="two-headed"):
        get_loss("multitask")(s, y, t)


def test_unknown_loss_name_is_a_value_error_naming_the_choices():
    with pytest.raises(ValueError, match="unknown loss.*'tor_multitsk'.*tor_multitask"):
        get_loss("tor_multitsk")


def test_bad_loss_options_are_value_errors():
    with pytest.raises(ValueError, match="bad options"):
        get_loss("kd_mix", beta=1.0)
    with pytest.raises(ValueError, match="mode"):
        get_loss("tor", mode="clip")
    with pytest.raises(ValueError, match="fixed"):
        get_loss("tor", threshold="fixed")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_labels_are_value_errors(bad):
    s, y, t = batch()
    y = y.clone()
    y[3, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        MSELoss()(s, y)
    with pytest.raises(ValueError, match="NaN or infinite"):
        TORLoss().fit(y, t)


def test_mismatched_shapes_are_value_errors():
    s, y, t = batch()
    with pytest.raises(ValueError, match="mismatched shapes"):
        MSELoss()(s, y[:, :1])
    with pytest.raises(ValueError, match="mismatched shapes"):
        get_loss("kd")(s, y, t[:10])


def test_loss_options_merges_tor_and_multitask_sections():
    cfg = {"tor": {"threshold": "quantile", "q": 0.3}, "multitask": {"lambda": 0.5}}
    opts = loss_options("tor_multitask", cfg)
    assert opts == {"threshold": "quantile", "q": 0.3, "lam": 0.5}
    loss = get_loss("tor_multitask", **opts)
    assert loss.lam == 0.5 and loss.label_loss.threshold == "quantile"

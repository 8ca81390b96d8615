"""Stacked training must follow each model's own trajectory: equal to training it alone, seed for seed."""
import numpy as np
import pytest
import torch
from conftest import sinusoid_group

from kdreg.losses import METHODS, get_loss
from kdreg.models import TwoHeadOutput, create_model
from kdreg.stacked import StackedMLP
from kdreg.train import train_method_students, train_student, train_students, train_teacher, train_teachers

MEMBERS = [(0.0, 0), (0.3, 1), (0.3, 2)]
TEACHER = {"model": {"hidden": [16, 16]}, "train": {"epochs": 60, "lr": 0.01, "eval_every": 5}}
STUDENT = {"model": {"hidden": [4]}, "train": {"epochs": 80, "lr": 0.02},
           "loss_options": {"tor": {"k": 3.0}, "multitask": {"lambda": 1.0}}}


@pytest.fixture(scope="module")
def group():
    return sinusoid_group(MEMBERS)


def test_stacked_forward_equals_each_model():
    models = []
    for s in range(3):
        torch.manual_seed(s)
        models.append(create_model({"in_dim": 2, "out_dim": 2, "hidden": [5, 3], "heads": 2}))
    stack = StackedMLP(models)
    x = torch.randn(7, 2)
    out = stack(x)
    for b, m in enumerate(models):
        single = m(x)
        assert torch.allclose(out.label[b], single.label, atol=1e-6)
        assert torch.allclose(out.teacher[b], single.teacher, atol=1e-6)
    # the unstacked state dicts load into the single architecture
    for state, m in zip(stack.state_dicts(), models):
        m.load_state_dict(state)


@pytest.mark.parametrize("arch", [
    {"in_dim": 1, "out_dim": 1, "hidden": [8, 6]},                       # outer-product first layer, dot-product head
    {"in_dim": 3, "out_dim": 2, "hidden": [5], "heads": 2},             # batched matmuls, two heads
    {"in_dim": 1, "out_dim": 1, "hidden": [4], "heads": 2},             # the paper's student
    {"in_dim": 2, "out_dim": 1, "hidden": [6, 1, 4], "activation": "relu"},  # a one-wide hidden layer
])
@pytest.mark.parametrize("batched_input", [False, True])
def test_written_out_backward_equals_autograd_of_each_model(arch, batched_input):
    """The stack's written-out forward and backward give each model the output and gradients that autograd
    gives the single model (float64, so only the formulas are compared)."""
    models = []
    for s in range(3):
        torch.manual_seed(s)
        models.append(create_model(arch).double())
    stack = StackedMLP(models).double()
    assert stack.fused is not None
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 9, arch["in_dim"], generator=g, dtype=torch.float64) if batched_input else \
        torch.randn(9, arch["in_dim"], generator=g, dtype=torch.float64)
    weights = [torch.randn(3, 9, arch["out_dim"], generator=g, dtype=torch.float64) for _ in range(2)]

    def scalar(out, b=None):
        heads = list(out) if isinstance(out, TwoHeadOutput) else [out]
        pick = (lambda h, w: (h * w).sum()) if b is None else (lambda h, w: (h * w[b]).sum())
        return sum(pick(h, w) for h, w in zip(heads, weights))

    scalar(stack(x)).backward()
    for b, m in enumerate(models):
        out = m(x[b] if batched_input else x)
        scalar(out, b).backward()
        stacked_out = stack(x)
        heads = zip(stacked_out, out) if isinstance(out, TwoHeadOutput) else [(stacked_out, out)]
        for hs, h1 in heads:
            assert torch.allclose(hs[b], h1, atol=1e-12)
        linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
        for lin, w, bias in zip(linears, stack.weights, stack.biases):
            assert torch.allclose(w.grad[b], lin.weight.grad.t(), atol=1e-12)
            assert torch.allclose(bias.grad[b, 0], lin.bias.grad, atol=1e-12)


@pytest.mark.parametrize("name", list(METHODS))
def test_losses_with_a_model_axis_equal_each_model_alone(name):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(3, 40, 2, generator=g)
    y[:, :5] += 6.0  # outliers, so TOR rejects some
    t = y + 0.2 * torch.randn(3, 40, 2, generator=g)
    t[:, :5] -= 6.0
    s = torch.randn(3, 40, 2, generator=g)
    pred = TwoHeadOutput(s, s * 0.5) if METHODS[name].heads == 2 else s
    stacked = get_loss(name)
    if hasattr(stacked, "fit"):
        stacked.fit(y, t)
    values = stacked(pred, y, t)
    assert values.shape == (3,)
    for b in range(3):
        single = get_loss(name)
        if hasattr(single, "fit"):
            single.fit(y[b], t[b])
        pred_b = TwoHeadOutput(s[b], s[b] * 0.5) if METHODS[name].heads == 2 else s[b]
        assert torch.allclose(values[b], single(pred_b, y[b], t[b]), rtol=1e-5, atol=1e-6)


def test_stacked_teachers_equal_one_at_a_time(group):
    ds, noisies, seeds = group
    stacked = train_teachers(ds, noisies, TEACHER, seeds, "cpu")
    for res, noisy, seed in zip(stacked, noisies, seeds):
        alone = train_teacher(ds, noisy, TEACHER, seed, "cpu")
        assert res.metrics["best_epochs"] == alone.metrics["best_epochs"]
        np.testing.assert_allclose(res.t_dev, alone.t_dev, rtol=1e-4, atol=1e-5)
        assert res.metrics["rmse"] == pytest.approx(alone.metrics["rmse"], rel=1e-4)


@pytest.mark.parametrize("method", ["scratch", "oracle", "ail", "tukey", "tor", "tor_multitask"])
@pytest.mark.parametrize("batch_size", [None, 32])
def test_stacked_students_equal_one_at_a_time(group, method, batch_size):
    ds, noisies, seeds = group
    cfg = {**STUDENT, "train": {**STUDENT["train"], "batch_size": batch_size}}
    t_devs = [ds.y_dev + 0.01] * len(seeds)
    stacked = train_students(ds, noisies, t_devs, method, cfg, seeds, "cpu")
    for res, noisy, t_dev, seed in zip(stacked, noisies, t_devs, seeds):
        alone = train_student(ds, noisy, t_dev, method, cfg, seed, "cpu")
        for key, value in alone.metrics.items():
            if isinstance(value, float) and not np.isnan(value):
                assert res.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
        for k, v in alone.state.items():
            torch.testing.assert_close(res.state[k], v, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch_size", [None, 32])
def test_every_method_in_one_stack_equals_each_method_alone(group, batch_size):
    """All methods' students trained in one process and one optimizer step (a stack per method, one summed loss)
    get exactly what each method's own training gives them, bit for bit: the methods do not leak into each
    other, so a job of many methods and a job per method write the same results."""
    ds, noisies, seeds = group
    cfg = {**STUDENT, "train": {**STUDENT["train"], "batch_size": batch_size}}
    configs = {m: {**cfg, "predict_head": "auto"} if METHODS[m].heads == 2 else cfg for m in METHODS}
    t_devs = [ds.y_dev + 0.01] * len(seeds)
    together = train_method_students(ds, noisies, t_devs, configs, seeds, "cpu")
    assert list(together) == list(METHODS)
    for method in METHODS:
        alone = train_students(ds, noisies, t_devs, method, configs[method], seeds, "cpu")
        for res, own in zip(together[method], alone):
            assert res.metrics.keys() == own.metrics.keys()
            for key, value in own.metrics.items():
                assert res.metrics[key] == value or (np.isnan(value) and np.isnan(res.metrics[key])), (method, key)
            for k, v in own.state.items():
                assert torch.equal(res.state[k], v), (method, k)


def test_methods_with_other_training_settings_train_apart(group):
    ds, noisies, seeds = group
    fast = {**STUDENT, "train": {**STUDENT["train"], "epochs": 20}}
    out = train_method_students(ds, noisies, [ds.y_dev] * len(seeds), {"scratch": STUDENT, "kd": fast}, seeds, "cpu")
    assert {r.metrics["epochs_trained"] for r in out["kd"]} == {20}
    assert {r.metrics["epochs_trained"] for r in out["scratch"]} == {STUDENT["train"]["epochs"]}


def test_teacher_patience_stops_each_teacher_as_it_would_alone(group):
    ds, noisies, seeds = group
    cfg = {**TEACHER, "train": {**TEACHER["train"], "epochs": 400, "patience": 3}}
    stacked = train_teachers(ds, noisies, cfg, seeds, "cpu")
    trained = [r.metrics["epochs_trained"] for r in stacked]
    assert max(trained) < 400  # it stops
    for res, noisy, seed in zip(stacked, noisies, seeds):
        alone = train_teacher(ds, noisy, cfg, seed, "cpu")
        # stopped after exactly `patience` checks without a better validation error
        assert res.metrics["epochs_trained"] == alone.metrics["epochs_trained"] == res.metrics["best_epochs"][0] + 15
        assert res.metrics["best_epochs"] == alone.metrics["best_epochs"]
        np.testing.assert_allclose(res.t_dev, alone.t_dev, rtol=1e-4, atol=1e-5)
    full = train_teachers(ds, noisies, {**cfg, "train": {**cfg["train"], "patience": 0}}, seeds, "cpu")
    assert all(r.metrics["epochs_trained"] == 400 for r in full)


@pytest.mark.parametrize("method", ["scratch", "tor_multitask"])
def test_student_patience_stops_each_student_as_it_would_alone(group, method):
    ds, noisies, seeds = group
    t_devs = [ds.y_dev + 0.01] * len(seeds)
    cfg = {**STUDENT, "train": {**STUDENT["train"], "epochs": 600, "lr": 0.05, "eval_every": 5, "patience": 4}}
    stacked = train_students(ds, noisies, t_devs, method, cfg, seeds, "cpu")
    assert max(r.metrics["epochs_trained"] for r in stacked) < 600  # the stack stops
    for res, noisy, t_dev, seed in zip(stacked, noisies, t_devs, seeds):
        alone = train_student(ds, noisy, t_dev, method, cfg, seed, "cpu")
        # each stops after exactly `patience` checks without a better validation error, stacked or alone
        for r in (res, alone):
            assert r.metrics["epochs_trained"] == r.metrics["best_epoch"] + 4 * 5
        # stacked and alone round apart by ~1e-7 per step; on a plateau that can move the best epoch by a check
        assert abs(res.metrics["best_epoch"] - alone.metrics["best_epoch"]) <= 2 * 5
        assert res.metrics["rmse"] == pytest.approx(alone.metrics["rmse"], rel=2e-2, abs=1e-4)
    full = train_students(ds, noisies, t_devs, method, {**cfg, "train": {**cfg["train"], "patience": 0}}, seeds, "cpu")
    assert all(r.metrics["epochs_trained"] == 600 for r in full)


def test_a_student_keeps_its_best_validation_epoch(group):
    ds, noisies, seeds = group
    t_devs = [ds.y_dev + 0.01] * len(seeds)
    cfg = {**STUDENT, "train": {**STUDENT["train"], "eval_every": 10}}
    best = train_students(ds, noisies, t_devs, "tor", cfg, seeds, "cpu")
    last = train_students(ds, noisies, t_devs, "tor", {**cfg, "keep_best": False}, seeds, "cpu")
    for b, l in zip(best, last):
        assert l.metrics["best_epoch"] == l.metrics["epochs_trained"] == 80
        assert b.metrics["best_epoch"] % 10 == 0 and b.metrics["best_epoch"] <= 80
        # the kept epoch is never worse on the validation criterion than the last one
        assert b.metrics["val_error"] <= l.metrics["val_error"] + 1e-9
        if b.metrics["best_epoch"] == 80:
            assert b.metrics["rmse"] == pytest.approx(l.metrics["rmse"], rel=1e-6)


def test_predict_head_auto_takes_the_head_with_the_lower_validation_error(group):
    ds, noisies, seeds = group
    # a teacher far from the labels: its head must then lose on the (mostly clean) validation labels
    t_devs = [ds.y_dev + 2.0] * len(seeds)
    cfg = {**STUDENT, "predict_head": "auto"}
    results = train_students(ds, noisies, t_devs, "tor_multitask", cfg, seeds, "cpu")
    for res in results:
        m = res.metrics
        chosen = "teacher" if m["teacher_head_val_error"] < m["label_head_val_error"] else "label"
        assert m["head"] == chosen == "label" and m["head_is_teacher"] == 0.0
        assert m["rmse"] == m[f"{chosen}_head_rmse"]
    good = train_students(ds, noisies, [ds.y_dev] * len(seeds), "tor_multitask", cfg, seeds, "cpu")
    for res in good:
        m = res.metrics
        assert m["head"] == ("teacher" if m["teacher_head_val_error"] < m["label_head_val_error"] else "label")
        assert m["rmse"] == m[f"{m['head']}_head_rmse"]


@pytest.mark.parametrize("batch_size", [None, 32])
def test_stacked_cross_fit_teachers_equal_one_at_a_time(group, batch_size):
    """Cross-fitted teachers trained as one stack of members x folds, each fit on its own rows, get what each
    member's K fits give it alone: the same best epochs, out-of-fold predictions and test error."""
    ds, noisies, seeds = group
    cfg = {**TEACHER, "cross_fit": 4, "train": {**TEACHER["train"], "batch_size": batch_size}}
    assert int((~ds.val).sum()) % 4 == 0
    stacked = train_teachers(ds, noisies, cfg, seeds, "cpu", stack_size=4)  # one member's 4 fits a stack
    for res, noisy, seed in zip(stacked, noisies, seeds):
        alone = train_teacher(ds, noisy, cfg, seed, "cpu")
        assert res.metrics["best_epochs"] == alone.metrics["best_epochs"] and len(res.states) == 4
        assert res.metrics["epochs_trained"] == alone.metrics["epochs_trained"]
        np.testing.assert_allclose(res.t_dev, alone.t_dev, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(res.t_test, alone.t_test, rtol=1e-4, atol=1e-5)
        for mine, theirs in zip(res.states, alone.states):
            for k, v in theirs.items():
                torch.testing.assert_close(mine[k], v, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("extra", [
    {"tor": {"k": 2.0}},                                             # MSE refits: every round one stack
    {"tor": {"threshold": "mixture"}, "loss": "tukey", "refine_loss": "mse"},
    {"tor": {"k": 2.0}, "cross_fit": 2, "refine_rounds": 2},        # members x folds, two refits
    {"tor": {"k": 2.0}, "refine_loss": "huber"},                     # refits of another loss: one at a time
])
def test_refined_teachers_stacked_equal_one_at_a_time(group, extra):
    """Refinement: round 0 trained as one stack, each refit as one stack too (a member's rejected rows weigh
    zero), or one fit at a time for a loss other than MSE; the same kept fractions, best epochs and predictions as
    every round alone."""
    ds, noisies, seeds = group
    cfg = {**TEACHER, "refine_rounds": 1, **extra}
    stacked = train_teachers(ds, noisies, cfg, seeds, "cpu")
    for res, noisy, seed in zip(stacked, noisies, seeds):
        alone = train_teacher(ds, noisy, cfg, seed, "cpu")
        assert res.metrics["refine"] == alone.metrics["refine"]
        assert res.metrics["best_epochs"] == alone.metrics["best_epochs"]
        assert res.metrics["epochs_trained"] == alone.metrics["epochs_trained"]
        np.testing.assert_allclose(res.t_dev, alone.t_dev, rtol=1e-4, atol=1e-5)

"""Student restarts: several initializations per model, the one with the lowest noisy-validation error kept."""
import numpy as np
import pytest
import torch
from conftest import ROOT, sinusoid_group

from kdreg.config import load_params
from kdreg.student import restart_seed, restarts
from kdreg.train import train_method_students, train_student, train_students

MEMBERS = [(0.0, 0), (0.3, 1), (0.3, 2)]
STUDENT = {"model": {"hidden": [4]}, "train": {"epochs": 60, "lr": 0.02},
           "loss_options": {"tor": {"k": 3.0}, "multitask": {"lambda": 1.0}}, "predict_head": "auto"}


@pytest.fixture(scope="module")
def group():
    return sinusoid_group(MEMBERS)


def _same(a, b):
    for key, value in b.metrics.items():
        assert a.metrics[key] == value or (np.isnan(value) and np.isnan(a.metrics[key])), key
    for k, v in b.state.items():
        assert torch.equal(a.state[k], v), k


def test_one_restart_is_todays_student(group):
    ds, noisies, seeds = group
    t_devs = [ds.y_dev + 0.01] * len(seeds)
    plain = train_students(ds, noisies, t_devs, "tor_multitask", STUDENT, seeds, "cpu")
    one = train_students(ds, noisies, t_devs, "tor_multitask", {**STUDENT, "restarts": 1}, seeds, "cpu")
    for a, b in zip(one, plain):
        _same(a, b)
        assert "restart" not in a.metrics


@pytest.mark.parametrize("method", ["scratch", "tor_multitask"])
def test_each_model_keeps_its_restart_with_the_lowest_validation_error(group, method):
    ds, noisies, seeds = group
    t_devs = [ds.y_dev + 0.01] * len(seeds)
    chosen = train_students(ds, noisies, t_devs, method, {**STUDENT, "restarts": 3}, seeds, "cpu")
    # each restart trained on its own, from its own seed (restart 0: the usual one)
    tries = [train_students(ds, noisies, t_devs, method, STUDENT, [restart_seed(s, r) for s in seeds], "cpu")
             for r in range(3)]
    assert len({restart_seed(seeds[0], r) for r in range(3)}) == 3
    for b, res in enumerate(chosen):
        errors = [tries[r][b].metrics["val_error"] for r in range(3)]
        r = res.metrics["restart"]
        assert res.metrics["restarts"] == 3
        assert errors[r] == pytest.approx(min(errors), rel=1e-5)
        assert res.metrics["restart_val_error_worst"] == pytest.approx(max(errors), rel=1e-5)
        # the kept student is that restart's, as trained alone (a larger stack: float rounding only)
        assert res.metrics["rmse"] == pytest.approx(tries[r][b].metrics["rmse"], rel=1e-4)
        for k, v in tries[r][b].state.items():
            torch.testing.assert_close(res.state[k], v, rtol=1e-4, atol=1e-5)
        assert res.metrics["val_error"] <= max(errors)


def test_one_student_alone_gets_its_restarts_too(group):
    """`kdreg train-student` trains one model with train_student: restarts must not be ignored there."""
    ds, noisies, seeds = group
    t_dev = ds.y_dev + 0.01
    cfg = {**STUDENT, "restarts": 3}
    alone = train_student(ds, noisies[1], t_dev, "tor_multitask", cfg, seeds[1], "cpu")
    stacked = train_students(ds, noisies[1:2], [t_dev], "tor_multitask", cfg, seeds[1:2], "cpu")[0]
    assert alone.metrics["restarts"] == 3 and alone.metrics["restart"] == stacked.metrics["restart"]
    assert alone.metrics["rmse"] == pytest.approx(stacked.metrics["rmse"], rel=1e-4)
    tries = [train_student(ds, noisies[1], t_dev, "tor_multitask", STUDENT, restart_seed(seeds[1], r), "cpu")
             for r in range(3)]
    assert alone.metrics["val_error"] == min(t.metrics["val_error"] for t in tries)


def test_methods_with_other_restarts_train_apart(group):
    ds, noisies, seeds = group
    t_devs = [ds.y_dev] * len(seeds)
    out = train_method_students(ds, noisies, t_devs, {"scratch": STUDENT, "kd": {**STUDENT, "restarts": 2}},
                                seeds, "cpu")
    assert all("restart" not in r.metrics for r in out["scratch"])
    assert all(r.metrics["restarts"] == 2 for r in out["kd"])
    alone = train_students(ds, noisies, t_devs, "scratch", STUDENT, seeds, "cpu")
    for a, b in zip(out["scratch"], alone):
        _same(a, b)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_bad_restarts_are_refused_with_the_key_named(bad):
    with pytest.raises(ValueError, match="restarts"):
        restarts({"restarts": bad})


@pytest.mark.parametrize("bad", [0, 101, 2.5, "two"])
def test_params_with_bad_restarts_are_refused(tmp_path, bad):
    import yaml
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["datasets"]["sinusoid"]["student"]["restarts"] = bad
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match="restarts"):
        load_params(str(path))
    params["datasets"]["sinusoid"]["student"]["restarts"] = 3
    path.write_text(yaml.safe_dump(params))
    assert load_params(str(path))["datasets"]["sinusoid"]["student"]["restarts"] == 3

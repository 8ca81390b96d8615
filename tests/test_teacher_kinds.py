"""Teacher kinds (``teacher.kind``): ``network`` (one network, the paper's teacher) and ``ensemble`` (the mean of
``ensemble_size`` networks that differ in seed only, trained in one stack)."""
import copy

import numpy as np
import pytest
import torch

from kdreg.config import check_params
from kdreg.data import make_sinusoid
from kdreg.noise import NoisyLabels
from kdreg.teacher import ensemble_size, fit_seed, train_teacher, train_teachers

MEMBERS = [(0.0, 0), (0.3, 1)]
TEACHER = {"model": {"hidden": [16, 16]}, "train": {"epochs": 40, "lr": 0.01, "eval_every": 5}}


@pytest.fixture(scope="module")
def group():
    torch.set_num_threads(1)
    ds = make_sinusoid(n_train=150, n_test=50, seed=0)
    noisies = [NoisyLabels.make(ds.y_dev, "replace", p, s) for p, s in MEMBERS]
    return ds, noisies, [s for _, s in MEMBERS]


def test_ensemble_size_of_each_kind():
    assert ensemble_size({}) == 1 and ensemble_size({"kind": "network"}) == 1
    assert ensemble_size({"kind": "ensemble"}) == 5 and ensemble_size({"kind": "ensemble", "ensemble_size": 3}) == 3
    for bad, says in (({"kind": "forest"}, "teacher.kind must be one of"),
                      ({"kind": "ensemble", "ensemble_size": 0}, "integer >= 1"),
                      ({"kind": "ensemble", "ensemble_size": True}, "integer >= 1"),
                      ({"ensemble_size": 3}, "needs teacher.kind: ensemble")):
        with pytest.raises(ValueError, match=says):
            ensemble_size(bad)
    # member 0 is the single network, the others have seeds of their own
    assert fit_seed(7, 0, 0, 0) != fit_seed(7, 0, 0, 1) != fit_seed(7, 0, 0, 2)


def test_an_ensemble_of_one_is_the_single_network_teacher(group):
    ds, noisies, seeds = group
    one = train_teachers(ds, noisies, {**TEACHER, "kind": "ensemble", "ensemble_size": 1}, seeds, "cpu")
    single = train_teachers(ds, noisies, TEACHER, seeds, "cpu")
    for a, b in zip(one, single):
        np.testing.assert_array_equal(a.t_dev, b.t_dev)
        np.testing.assert_array_equal(a.t_test, b.t_test)
        assert a.metrics == b.metrics


@pytest.mark.parametrize("extra", [{}, {"cross_fit": 2}, {"refine_rounds": 1, "tor": {"k": 2.0}},
                                   {"refine_rounds": 1, "refine_loss": "huber", "tor": {"k": 2.0}}])
def test_stacked_ensemble_equals_its_networks_trained_one_at_a_time(group, extra):
    """Stacked (every member's K × E networks in one stack) and one network at a time give the same networks,
    and the teacher predicts their mean: out of fold on the training rows, on validation and test."""
    ds, noisies, seeds = group
    cfg = {**TEACHER, "kind": "ensemble", "ensemble_size": 3, **extra}
    k = extra.get("cross_fit", 1)
    stacked = train_teachers(ds, noisies, cfg, seeds, "cpu")
    for res, noisy, seed in zip(stacked, noisies, seeds):
        alone = train_teacher(ds, noisy, cfg, seed, "cpu")
        assert len(res.states) == len(alone.states) == 3 * k
        assert res.metrics["best_epochs"] == alone.metrics["best_epochs"]
        assert res.metrics.get("refine") == alone.metrics.get("refine")
        np.testing.assert_allclose(res.t_dev, alone.t_dev, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(res.t_test, alone.t_test, rtol=1e-4, atol=1e-5)
        # the three networks are different models, not one trained three times
        key = next(iter(res.states[0]))
        assert not torch.equal(res.states[0][key], res.states[1][key])


def test_ensemble_predicts_the_mean_of_its_networks(group):
    from kdreg.inputs import model_config, prepare
    from kdreg.models import create_model
    from kdreg.trainer import predict
    ds, noisies, seeds = group
    cfg = {**TEACHER, "kind": "ensemble", "ensemble_size": 3}
    res = train_teacher(ds, noisies[1], cfg, seeds[1], "cpu")
    data = prepare(ds, noisies[1], torch.device("cpu"))
    preds = []
    for state in res.states:
        net = create_model(model_config(ds, cfg["model"], role="teacher"))
        net.load_state_dict(state)
        preds.append(predict(net, data.x_test))
    np.testing.assert_allclose(res.t_test, data.y_scaler.inverse(np.mean(preds, axis=0)), rtol=1e-5, atol=1e-6)
    # an ensemble of three is a different teacher from its first network
    single = train_teacher(ds, noisies[1], TEACHER, seeds[1], "cpu")
    assert np.abs(res.t_test - single.t_test).max() > 1e-4


def test_params_check_refuses_an_ensemble_size_without_the_ensemble_kind(committed_params):
    params = copy.deepcopy(committed_params)
    params["datasets"]["sinusoid"]["teacher"]["ensemble_size"] = 3
    with pytest.raises(ValueError, match=r"datasets.sinusoid.teacher.ensemble_size: 3 needs teacher.kind: ensemble"):
        check_params(params)
    params["datasets"]["sinusoid"]["teacher"]["kind"] = "ensemble"
    check_params(params)


def test_an_ensemble_teacher_through_the_cli_counts_and_evaluates_every_network(tmp_path, capsys):
    """`kdreg train-teacher` with kind ensemble: its config.yaml counts the deployed parameters of all its
    networks, and `kdreg evaluate` of its checkpoint (the mean of every saved network) gives the run's test RMSE."""
    import json

    import yaml

    from kdreg.cli import main as cli
    data, noisy, out = tmp_path / "clean.npz", tmp_path / "noisy.npz", tmp_path / "teacher"
    make_sinusoid(n_train=100, n_test=20, seed=0).save(data)
    assert cli(["corrupt", "--data", str(data), "--level", "0.3", "--seed", "0", "--out", str(noisy)]) == 0
    sizes = {}
    for kind, extra in (("network", {}), ("ensemble", {"kind": "ensemble", "ensemble_size": 3})):
        cfg = {**TEACHER, **extra}
        assert cli(["train-teacher", "--data", str(data), "--noisy", str(noisy), "--config", json.dumps(cfg),
                    "--seed", "0", "--device", "cpu", "--out-dir", str(out / kind)]) == 0
        sizes[kind] = yaml.safe_load((out / kind / "config.yaml").read_text())["resolved"]["parameters"]
    assert sizes["ensemble"] == 3 * sizes["network"]
    capsys.readouterr()
    assert cli(["evaluate", "--checkpoint", str(out / "ensemble" / "model.pt"), "--data", str(data)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    trained = json.loads((out / "ensemble" / "metrics.json").read_text())
    assert evaluated["rmse"] == pytest.approx(trained["rmse"], rel=1e-5)


def test_the_schema_takes_the_teacher_kinds_and_refuses_others(tmp_path, committed_params):
    import yaml

    from kdreg.config import load_params
    from pathlib import Path
    schema = Path(__file__).resolve().parents[1] / "workflow/schemas/params.schema.yaml"
    params = copy.deepcopy(committed_params)
    params["datasets"]["sinusoid"]["teacher"].update(kind="ensemble", ensemble_size=4)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    loaded = load_params(tmp_path / "params.yaml", schema=schema)
    assert ensemble_size(loaded["datasets"]["sinusoid"]["teacher"]) == 4
    # absent stays absent: a default would enter every teacher's frozen config and change its results' keys
    assert "kind" not in load_params(Path(__file__).resolve().parents[1] / "params.yaml",
                                     schema=schema)["datasets"]["sinusoid"]["teacher"]
    params["datasets"]["sinusoid"]["teacher"]["kind"] = "forest"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ValueError, match="forest"):
        load_params(tmp_path / "params.yaml", schema=schema)

"""Teacher kinds (``teacher.kind``): ``network`` (one network, the paper's teacher) and ``ensemble`` (the mean of
``ensemble_size`` networks that differ in seed only, trained in one stack)."""
import copy

import numpy as np
import pytest
import torch
from conftest import sinusoid_group

from kdreg.config import check_params
from kdreg.data import make_sinusoid
from kdreg.teacher import train_teacher, train_teachers
from kdreg.teacher_kinds import AllRowsRejected, ensemble_size, fit_seed, validation_error

MEMBERS = [(0.0, 0), (0.3, 1)]
TEACHER = {"model": {"hidden": [16, 16]}, "train": {"epochs": 40, "lr": 0.01, "eval_every": 5}}


@pytest.fixture(scope="module")
def group():
    return sinusoid_group(MEMBERS)


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


def test_an_auto_teacher_over_network_and_ensemble_saves_the_size_of_the_kind_it_chose(tmp_path):
    """`kind: auto` over [network, ensemble] with an ensemble_size: a model that keeps the network deploys one
    network, one that keeps the ensemble all of them (a saved network choice used to be refused after training)."""
    import json

    import yaml

    from kdreg.cli import main as cli
    data, out = tmp_path / "clean.npz", tmp_path / "teacher"
    make_sinusoid(n_train=100, n_test=20, seed=0).save(data)
    one = 1 * 16 + 16 + 16 * 16 + 16 + 16 * 1 + 1                         # a 1-16-16-1 network: 321 parameters
    cfg = {**TEACHER, "kind": "auto", "auto_kinds": ["network", "ensemble"], "ensemble_size": 3}
    chosen = {}
    for seed in range(4):
        noisy = tmp_path / f"noisy{seed}.npz"
        assert cli(["corrupt", "--data", str(data), "--level", "0.3", "--seed", str(seed), "--out", str(noisy)]) == 0
        run = out / f"s{seed}"
        assert cli(["train-teacher", "--data", str(data), "--noisy", str(noisy), "--config", json.dumps(cfg),
                    "--seed", str(seed), "--device", "cpu", "--out-dir", str(run)]) == 0
        kind = json.loads((run / "metrics.json").read_text())["teacher_kind"]
        resolved = yaml.safe_load((run / "config.yaml").read_text())["resolved"]
        chosen[seed] = kind
        assert resolved["parameters"] == (3 if kind == "ensemble" else 1) * one
    assert set(chosen.values()) == {"network", "ensemble"}, chosen          # both branches were saved


def test_deployed_networks_counts_the_chosen_kind_only():
    from kdreg.teacher_kinds import deployed_networks
    auto = {"kind": "auto", "auto_kinds": ["network", "ensemble"], "ensemble_size": 3}
    assert deployed_networks(auto, {"teacher_kind": "network"}) == 1
    assert deployed_networks(auto, {"teacher_kind": "ensemble"}) == 3
    assert deployed_networks({"kind": "auto"}, {"teacher_kind": "ensemble"}) == 5        # the default size
    assert deployed_networks({"kind": "ensemble", "ensemble_size": 2}, {}) == 2
    assert deployed_networks({}, {}) == 1 and deployed_networks({"kind": "gbdt"}, {}) == 1


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


def test_a_table_dataset_and_a_variant_take_the_teacher_kinds(tmp_path, committed_params):
    """A user's own table takes the optional teacher keys as the built-in datasets do, and a variant can set them
    (they are absent from params.yaml, as every optional teacher key is); a misspelt one is still refused."""
    import yaml
    from pathlib import Path

    from kdreg.config import load_params
    from kdreg.variants import apply_overrides
    schema = Path(__file__).resolve().parents[1] / "workflow/schemas/params.schema.yaml"
    params = copy.deepcopy(committed_params)
    params["datasets"]["mytab"] = {"enabled": True, "kind": "table", "rdataset": "MASS/Boston", "target": "medv",
                                   "teacher": {"kind": "auto", "auto_kinds": ["network", "gbdt"], "cross_fit": 5,
                                               "refine_rounds": 1, "gbdt": {"loss": "absolute_error"},
                                               "refine_readmit": {"neighbours": 20, "share": 0.9}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    loaded = load_params(tmp_path / "params.yaml", schema=schema)
    assert loaded["datasets"]["mytab"]["teacher"]["gbdt"] == {"loss": "absolute_error"}
    varied = apply_overrides(committed_params, {"datasets.sinusoid.teacher.kind": "ensemble",
                                                "datasets.sinusoid.teacher.ensemble_size": 3}, "v")
    assert ensemble_size(varied["datasets"]["sinusoid"]["teacher"]) == 3
    with pytest.raises(ValueError, match="has no key 'knid'"):
        apply_overrides(committed_params, {"datasets.sinusoid.teacher.knid": "ensemble"}, "v")


# --- gbdt: boosted trees -----------------------------------------------------------------------------------

def test_tree_ensemble_predicts_as_scikit_learn_does():
    """The exported trees walk as scikit-learn's predictor walks them, NaN inputs included, for each label."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from kdreg.gbdt import fit_gbdt
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = np.stack([np.sin(x[:, 0]), x[:, 1] ** 2 + 0.1 * rng.normal(size=300)], 1).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan                 # missing values take each node's learned side
    x_val = rng.normal(size=(60, 4)).astype(np.float32)
    y_val = np.stack([np.sin(x_val[:, 0]), x_val[:, 1] ** 2], 1).astype(np.float32)
    x_val[:5, 0] = np.nan
    ensemble, kept = fit_gbdt(x, y, x_val, y_val, {"max_iter": 40, "learning_rate": 0.1}, seed=3)
    with torch.no_grad():
        mine = ensemble(torch.from_numpy(x_val)).numpy()
    for d in range(2):
        theirs = HistGradientBoostingRegressor(max_iter=kept[d], learning_rate=0.1, max_leaf_nodes=15,
                                               min_samples_leaf=10, early_stopping=False, random_state=3)
        theirs.fit(x.astype(np.float64), y[:, d].astype(np.float64))
        np.testing.assert_array_equal(mine[:, d], theirs.predict(x_val.astype(np.float64)).astype(np.float32))
        # the kept number of trees is the validation optimum of the staged predictions
        errors = [np.median(np.abs(p - y_val[:, d])) for p in HistGradientBoostingRegressor(
            max_iter=40, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=10, early_stopping=False,
            random_state=3).fit(x.astype(np.float64), y[:, d]).staged_predict(x_val.astype(np.float64))]
        assert kept[d] == int(np.argmin(errors)) + 1


def test_a_tree_state_pointing_outside_itself_is_refused():
    from kdreg.gbdt import TreeEnsemble, fit_gbdt
    x = np.random.default_rng(1).normal(size=(100, 2)).astype(np.float32)
    y = x[:, :1].copy()
    ensemble, _ = fit_gbdt(x, y, x[:20], y[:20], {"max_iter": 5}, seed=0)
    state = ensemble.state_dict()
    assert state["depth"].shape == () and state["root"].shape == state["dim"].shape == (5,)
    for name, bad in (("left", lambda v: v + 10 ** 6), ("dim", lambda v: v + 1), ("depth", lambda v: v + 10 ** 6),
                      ("depth", lambda v: v.reshape(1)),
                      ("value", lambda v: v[:-1]), ("feature", lambda v: v.to(torch.float64))):
        broken = {**state, name: bad(state[name].clone())}
        with pytest.raises(ValueError, match="tree ensemble state"):
            TreeEnsemble(1).load_state_dict(broken)
    with pytest.raises(ValueError, match="not a tree ensemble's state"):
        TreeEnsemble(1).load_state_dict({k: v for k, v in state.items() if k != "root"})


def test_gbdt_teacher_cross_fits_out_of_fold_and_refines(group):
    """Cross-fitted trees: each fold's rows are predicted by the trees that never saw them; a refit round keeps
    rows by TOR like the network teachers; stacked and one-at-a-time calls give the same teacher."""
    from kdreg.inputs import prepare
    from kdreg.models import create_model
    from kdreg.seeding import rng
    from kdreg.trainer import predict
    ds, noisies, seeds = group
    cfg = {**TEACHER, "kind": "gbdt", "cross_fit": 3, "gbdt": {"max_iter": 30, "loss": "absolute_error"}}
    res = train_teachers(ds, noisies, cfg, seeds, "cpu")
    for r, noisy, seed in zip(res, noisies, seeds):
        alone = train_teacher(ds, noisy, cfg, seed, "cpu")
        np.testing.assert_array_equal(r.t_dev, alone.t_dev)
        assert len(r.states) == 3 and len(r.metrics["trees"]) == 3 and r.model_config["kind"] == "gbdt"
        data = prepare(ds, noisy, torch.device("cpu"))
        n = len(data.x)
        fold = rng(seed, "folds").permutation(n) % 3
        train_rows = np.flatnonzero(~ds.val)
        for k, state in enumerate(r.states):
            trees = create_model(r.model_config)
            trees.load_state_dict(state)
            own = np.flatnonzero(fold == k)
            np.testing.assert_allclose(r.t_dev[train_rows[own]], data.y_scaler.inverse(predict(trees, data.x[own])),
                                       rtol=1e-6)
    refined = train_teachers(ds, noisies, {**cfg, "refine_rounds": 1, "tor": {"k": 2.0}}, seeds,
                             "cpu")
    assert all(0 < r.metrics["refine"][0]["kept_fraction"] < 1 for r in refined[1:])


def test_tree_fits_in_worker_processes_are_the_fits_made_here(group):
    """A job's --threads fits trees in that many processes side by side: the same teachers, byte for byte, as
    fitting them one after another here (the workers run one OpenMP thread each, this process its default)."""
    from kdreg.trees import fit_threads, set_tree_workers, tree_pool
    ds, noisies, seeds = group
    cfg = {**TEACHER, "kind": "gbdt", "cross_fit": 3, "refine_rounds": 1, "tor": {"k": 2.0},
           "gbdt": {"max_iter": 30, "loss": "absolute_error"}}
    here = train_teachers(ds, noisies, cfg, seeds, "cpu")
    set_tree_workers(2)
    try:
        pooled = train_teachers(ds, noisies, cfg, seeds, "cpu")
        with pytest.raises(ValueError, match="teacher.gbdt.loss must be one of"):  # a worker's error, said here
            train_teachers(ds, noisies, {**cfg, "gbdt": {"loss": "cubic"}}, seeds, "cpu")
        with tree_pool(2) as pool:  # n workers hold n cores: one thread each, the job's OMP_NUM_THREADS or not
            assert pool.submit(fit_threads).result() == {"openmp": 1, "blas": 1}
    finally:
        set_tree_workers(1)
    for a, b in zip(here, pooled):
        np.testing.assert_array_equal(a.t_dev, b.t_dev)
        np.testing.assert_array_equal(a.t_test, b.t_test)
        assert a.metrics == b.metrics and len(a.states) == len(b.states) == 3
        for sa, sb in zip(a.states, b.states):
            assert all(torch.equal(sa[name], sb[name]) for name in sa)


def test_a_tree_worker_that_dies_is_named_with_the_way_out():
    import os

    from kdreg.trees import set_tree_workers, tree_pool
    set_tree_workers(2)
    try:
        with pytest.raises(RuntimeError, match="a process fitting boosted trees died .* rerun with --threads 1"):
            with tree_pool(2) as pool:
                pool.submit(os._exit, 1).result()   # a worker killed mid-fit (the OOM killer, say)
    finally:
        set_tree_workers(1)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_tree_workers_must_be_a_positive_integer(workers):
    from kdreg.trees import set_tree_workers
    with pytest.raises(ValueError, match="tree workers must be an integer >= 1"):
        set_tree_workers(workers)


def test_auto_keeps_each_models_kind_with_the_lowest_validation_error(group):
    from kdreg.teacher_kinds import validation_error
    ds, noisies, seeds = group
    cfg = {**TEACHER, "kind": "auto", "auto_kinds": ["network", "gbdt"], "gbdt": {"max_iter": 30}}
    auto = train_teachers(ds, noisies, cfg, seeds, "cpu")
    alone = {k: train_teachers(ds, noisies, {**TEACHER, "kind": k, **({"gbdt": {"max_iter": 30}} if k == "gbdt"
                                                                       else {})}, seeds, "cpu")
             for k in ("network", "gbdt")}
    for i, (r, noisy) in enumerate(zip(auto, noisies)):
        errors = {k: validation_error(alone[k][i], ds, noisy) for k in alone}
        assert r.metrics["teacher_kind"] == min(errors, key=errors.get)
        assert r.metrics["teacher_kind_val_errors"] == pytest.approx(errors, rel=1e-6)
        np.testing.assert_array_equal(r.t_test, alone[r.metrics["teacher_kind"]][i].t_test)
        for k in alone:  # every candidate's scores, as scalars the tables read
            assert r.metrics[f"kind_{k}_rmse"] == pytest.approx(alone[k][i].metrics["rmse"], rel=1e-6)
            assert r.metrics[f"kind_{k}_val_error"] == pytest.approx(errors[k], rel=1e-6)


def test_a_gbdt_teacher_through_the_cli_saves_tensors_and_evaluates(tmp_path, capsys):
    import json

    from kdreg.cli import main as cli
    data, noisy, out = tmp_path / "clean.npz", tmp_path / "noisy.npz", tmp_path / "teacher"
    make_sinusoid(n_train=100, n_test=20, seed=0).save(data)
    assert cli(["corrupt", "--data", str(data), "--level", "0.3", "--seed", "0", "--out", str(noisy)]) == 0
    cfg = {**TEACHER, "kind": "gbdt", "gbdt": {"max_iter": 20}}
    assert cli(["train-teacher", "--data", str(data), "--noisy", str(noisy), "--config", json.dumps(cfg),
                "--seed", "0", "--device", "cpu", "--out-dir", str(out)]) == 0
    assert (out / "model.pt").read_bytes()[8:9] == b"{"   # a safetensors header, no pickle
    capsys.readouterr()
    assert cli(["evaluate", "--checkpoint", str(out / "model.pt"), "--data", str(data)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["rmse"] == pytest.approx(json.loads((out / "metrics.json").read_text())["rmse"], rel=1e-5)


@pytest.mark.parametrize("teacher, says", [
    ({"kind": "gbdt", "loss": "tukey"}, "teacher.loss: tukey is a network's loss"),
    ({"kind": "network", "gbdt": {"max_iter": 5}}, "teacher.gbdt: settings of boosted trees"),
    ({"kind": "ensemble", "auto_kinds": ["gbdt"]}, "teacher.auto_kinds: the kinds kind auto chooses from"),
])
def test_params_check_refuses_teacher_settings_of_another_kind(committed_params, teacher, says):
    params = copy.deepcopy(committed_params)
    params["datasets"]["sinusoid"]["teacher"].update(teacher)
    with pytest.raises(ValueError, match=says):
        check_params(params)


def test_params_check_refuses_trees_on_images(committed_params):
    params = copy.deepcopy(committed_params)
    params["datasets"]["digits"]["teacher"]["kind"] = "gbdt"
    with pytest.raises(ValueError, match="datasets.digits.teacher.kind: gbdt reads tables"):
        check_params(params)
    params["datasets"]["digits"]["teacher"].update(kind="auto", auto_kinds=["gbdt"])
    with pytest.raises(ValueError, match="datasets.digits.teacher.auto_kinds: gbdt alone"):
        check_params(params)
    params["datasets"]["digits"]["teacher"]["auto_kinds"] = ["gbdt", "network"]
    check_params(params)


def test_a_tree_refit_without_folds_is_refused_before_and_during_training(group, committed_params):
    ds, noisies, seeds = group
    with pytest.raises(ValueError, match=r"set teacher.gbdt.cross_fit: 5 \(the trees' own folds\) or teacher.cross_fit"):
        train_teacher(ds, noisies[0], {**TEACHER, "kind": "gbdt", "refine_rounds": 1}, seeds[0], "cpu")
    params = copy.deepcopy(committed_params)
    params["datasets"]["sinusoid"]["teacher"].update(kind="auto", refine_rounds=1)
    with pytest.raises(ValueError, match="teacher.cross_fit: a gbdt teacher's refinement needs out-of-fold"):
        check_params(params)
    params["datasets"]["sinusoid"]["teacher"]["cross_fit"] = 5
    check_params(params)
    del params["datasets"]["sinusoid"]["teacher"]["cross_fit"]
    params["datasets"]["sinusoid"]["teacher"]["gbdt"] = {"cross_fit": 5}  # the trees' own folds serve too
    check_params(params)
    params["datasets"]["sinusoid"]["teacher"]["kind"] = "ensemble"
    params["datasets"]["sinusoid"]["teacher"]["refine_rounds"] = 0
    with pytest.raises(ValueError, match="gbdt.cross_fit: the trees' own folds, but no tree teacher"):
        check_params(params)


def test_auto_gives_the_trees_their_own_folds_and_the_network_none(group):
    """``gbdt.cross_fit``: under auto the tree candidate refines on its own out-of-fold predictions while the
    network candidate fits every row once: each equals that kind trained alone with those folds."""
    ds, noisies, seeds = group
    refine = {"refine_rounds": 1, "tor": {"k": 2.0}}
    cfg = {**TEACHER, **refine, "kind": "auto", "auto_kinds": ["network", "gbdt"],
           "gbdt": {"cross_fit": 3, "max_iter": 20}}
    chosen = train_teacher(ds, noisies[0], cfg, seeds[0], "cpu")
    trees = train_teacher(ds, noisies[0], {**TEACHER, **refine, "kind": "gbdt", "cross_fit": 3,
                                           "gbdt": {"max_iter": 20}}, seeds[0], "cpu")
    network = train_teacher(ds, noisies[0], {**TEACHER, **refine}, seeds[0], "cpu")
    errors = chosen.metrics["teacher_kind_val_errors"]
    assert errors["gbdt"] == pytest.approx(validation_error(trees, ds, noisies[0]), abs=1e-9)
    assert errors["network"] == pytest.approx(validation_error(network, ds, noisies[0]), abs=1e-9)
    assert len(network.states) == 1 and len(trees.states) == 3  # one network; three folds of trees


def test_auto_drops_a_candidate_that_fails_and_fails_only_when_all_do(group, monkeypatch):
    import kdreg.tree_teacher as tree_teacher
    ds, noisies, seeds = group

    def refuses(*args, **kwargs):
        raise AllRowsRejected()
    monkeypatch.setattr(tree_teacher, "gbdt_problem", refuses)
    cfg = {**TEACHER, "kind": "auto", "auto_kinds": ["gbdt", "network"]}
    for r in train_teachers(ds, noisies, cfg, seeds, "cpu"):
        assert r.metrics["teacher_kind"] == "network" and r.metrics["teacher_kind_val_errors"]["gbdt"] is None
    with pytest.raises(ValueError, match="rejected every training sample"):
        train_teachers(ds, noisies, {**cfg, "auto_kinds": ["gbdt"]}, seeds, "cpu")

    def misconfigured(*args, **kwargs):  # a settings error is no rejection: it stops auto, it drops no candidate
        raise ValueError("teacher.gbdt.loss must be one of ...")
    monkeypatch.setattr(tree_teacher, "gbdt_problem", misconfigured)
    with pytest.raises(ValueError, match="teacher.gbdt.loss"):
        train_teachers(ds, noisies, cfg, seeds, "cpu")


def test_a_candidate_config_trains_alone_what_auto_trains_as_that_candidate(group):
    """``candidate_config`` (what benchmarks/teacher_kinds.py trains each kind with) gives, trained alone, the
    teacher ``kind: auto`` trained as that candidate: the same validation error, kind by kind."""
    from kdreg.teacher_kinds import candidate_config
    ds, noisies, seeds = group
    cfg = {**TEACHER, "loss": "tukey", "kind": "auto", "auto_kinds": ["network", "ensemble", "gbdt"],
           "ensemble_size": 2, "gbdt": {"max_iter": 20}}
    assert "gbdt" not in candidate_config(cfg, "network") and "ensemble_size" not in candidate_config(cfg, "network")
    trees = candidate_config(cfg, "gbdt")
    assert (trees["kind"], trees["loss"], trees["gbdt"]) == ("gbdt", "mse", {"max_iter": 20})  # the trees' own loss
    assert "auto_kinds" not in trees and candidate_config(cfg, "ensemble")["ensemble_size"] == 2
    errors = train_teacher(ds, noisies[1], cfg, seeds[1], "cpu").metrics["teacher_kind_val_errors"]
    for kind in ("network", "ensemble", "gbdt"):
        alone = train_teacher(ds, noisies[1], candidate_config(cfg, kind), seeds[1], "cpu")
        assert errors[kind] == pytest.approx(validation_error(alone, ds, noisies[1]), abs=1e-9)
    assert len({round(e, 6) for e in errors.values()}) == 3  # three different teachers, not one thrice

"""Short real trainings on a shrunk sinusoid: the same entry points the pipeline calls."""
import json

import numpy as np
import pytest
import torch

from kdreg.cli import main as cli
from kdreg.data import make_sinusoid
from kdreg.noise import NoisyLabels
from kdreg.train import train_student, train_teacher

TEACHER = {"model": {"hidden": [32, 32], "activation": "tanh"},
           "train": {"epochs": 300, "lr": 0.01, "eval_every": 10}, "loss": "mse"}
STUDENT = {"model": {"hidden": [4], "activation": "tanh"}, "train": {"epochs": 300, "lr": 0.02},
           "loss_options": {"tor": {"threshold": "mad", "k": 3}}, "predict_head": "label"}


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    ds = make_sinusoid(n_train=300, n_test=200, seed=0)
    noisy = NoisyLabels.make(ds.y_dev, "replace", 0.3, seed=0)
    teacher = train_teacher(ds, noisy, TEACHER, seed=0, device="cpu")
    return ds, noisy, teacher


def test_teacher_learns_the_sine_through_the_noise(setup):
    ds, noisy, teacher = setup
    assert teacher.t_dev.shape == ds.y_dev.shape and teacher.t_test.shape == ds.y_test.shape
    noisy_rmse = float(np.sqrt(((noisy.y - ds.y_dev) ** 2).mean()))
    assert teacher.metrics["rmse"] < 0.2 < noisy_rmse
    assert 10 <= teacher.metrics["best_epochs"][0] <= 300


def test_tor_multitask_student_beats_scratch_and_rejects_outliers(setup):
    ds, noisy, teacher = setup
    scratch = train_student(ds, noisy, teacher.t_dev, "scratch", STUDENT, seed=0, device="cpu")
    tor_mt = train_student(ds, noisy, teacher.t_dev, "tor_multitask", STUDENT, seed=0, device="cpu")
    assert tor_mt.metrics["rmse"] < scratch.metrics["rmse"]
    assert tor_mt.metrics["rejection_precision"] > 0.8 and tor_mt.metrics["rejection_recall"] > 0.6
    for head in ("label", "teacher", "mean"):
        assert f"{head}_head_rmse" in tor_mt.metrics
    assert "rejection_precision" not in scratch.metrics


def test_training_is_deterministic(setup):
    ds, noisy, teacher = setup
    a = train_student(ds, noisy, teacher.t_dev, "tor", STUDENT, seed=1, device="cpu")
    b = train_student(ds, noisy, teacher.t_dev, "tor", STUDENT, seed=1, device="cpu")
    assert a.metrics == b.metrics


def test_cross_fit_teacher_predicts_out_of_fold(setup):
    """Fold 1's labels carry +5: the teacher trained without fold 0 (on fold 1) predicts +5 on fold 0, the one
    trained without fold 1 (on clean fold 0) predicts clean values on fold 1. In-fold predictions would be the
    other way round."""
    from kdreg.seeding import rng
    ds, _, _ = setup
    train = ~ds.val
    fold = rng(0, "folds").permutation(int(train.sum())) % 2  # the split train_teacher draws for seed 0
    offset = np.zeros(ds.y_dev.shape, dtype=np.float32)
    offset[np.flatnonzero(train)[fold == 1]] = 5.0
    shifted = NoisyLabels(ds.y_dev + offset, np.zeros(len(ds.y_dev), dtype=bool), "replace", 0.0, 0)
    epochs = 300  # validated once, at the end: no early stopping to hide what each teacher learned
    cfg = {**TEACHER, "cross_fit": 2, "train": {**TEACHER["train"], "epochs": epochs, "eval_every": epochs}}
    res = train_teacher(ds, shifted, cfg, seed=0, device="cpu")
    error = (res.t_dev - ds.y_dev)[train, 0]
    assert len(res.states) == 2
    assert error[fold == 0].mean() > 3.0  # learned from fold 1's +5 labels
    assert abs(error[fold == 1].mean()) < 1.0  # learned from fold 0's clean labels


def test_method_needing_a_teacher_without_one_is_an_error(setup):
    ds, noisy, _ = setup
    with pytest.raises(ValueError, match="needs teacher predictions"):
        train_student(ds, noisy, None, "kd", STUDENT, seed=0, device="cpu")


def test_cli_end_to_end(tmp_path, setup, capsys):
    data, noisy = tmp_path / "clean.npz", tmp_path / "noisy.npz"
    assert cli(["make-data", "--config", '{"n_train": 200, "n_test": 100}', "--out", str(data)]) == 0
    assert cli(["corrupt", "--data", str(data), "--level", "0.2", "--seed", "0", "--out", str(noisy)]) == 0
    tcfg = json.dumps({**TEACHER, "train": {**TEACHER["train"], "epochs": 40}})
    scfg = json.dumps({**STUDENT, "train": {"epochs": 40, "lr": 0.02}})
    t_dir, s_dir = tmp_path / "teacher", tmp_path / "student"
    common = ["--data", str(data), "--noisy", str(noisy), "--seed", "0", "--device", "cpu"]
    assert cli(["train-teacher", *common, "--config", tcfg, "--out-dir", str(t_dir)]) == 0
    assert cli(["train-student", "--method", "tor_multitask", "--teacher", str(t_dir / "predictions.npz"),
                *common, "--config", scfg, "--out-dir", str(s_dir)]) == 0
    for name in ("config.yaml", "model.pt", "predictions.npz", "metrics.json"):
        assert (s_dir / name).exists()
    metrics = json.loads((s_dir / "metrics.json").read_text())
    capsys.readouterr()
    assert cli(["evaluate", "--checkpoint", str(s_dir / "model.pt"), "--data", str(data)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["rmse"] == pytest.approx(metrics["rmse"], rel=1e-5)
    # a finished run is never overwritten silently
    assert cli(["train-student", "--method", "scratch", *common, "--config", scfg, "--out-dir", str(s_dir)]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert json.loads((s_dir / "metrics.json").read_text()) == metrics


def test_cli_reports_missing_files_clearly(tmp_path, capsys):
    assert cli(["corrupt", "--data", str(tmp_path / "nope.npz"), "--level", "0.1", "--seed", "0",
                "--out", str(tmp_path / "n.npz")]) == 2
    err = capsys.readouterr().err
    assert "nope.npz" in err


def test_cli_group_steps_write_every_set_and_refuse_mismatched_lists(tmp_path, capsys):
    data = tmp_path / "clean.npz"
    assert cli(["make-data", "--config", '{"n_train": 200, "n_test": 100}', "--out", str(data)]) == 0
    noise = tmp_path / "noise"
    # several noisy sets in one process, each equal to the one a call of its own writes
    assert cli(["corrupt", "--data", str(data), "--level", "0", "0.3", "--seed", "0", "1",
                "--out", str(noise / "p0_s0.npz"), str(noise / "p0.3_s1.npz")]) == 0
    assert cli(["corrupt", "--data", str(data), "--level", "0.3", "--seed", "1", "--out", str(tmp_path / "one.npz")]) == 0
    assert (noise / "p0.3_s1.npz").read_bytes() == (tmp_path / "one.npz").read_bytes()
    assert cli(["corrupt", "--data", str(data), "--level", "0.1", "0.2", "--seed", "0",
                "--out", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 2
    assert "one --seed and one --out per --level" in capsys.readouterr().err
    assert not (tmp_path / "a.npz").exists()
    scfg = json.dumps({**STUDENT, "train": {"epochs": 5, "lr": 0.02}})
    common = ["--data", str(data), "--noisy-dir", str(noise), "--models", "0:0", "0.3:1"]
    assert cli(["train-students", "--method", "scratch", "oracle", *common, "--config", scfg,
                "--out-dir", str(tmp_path / "s")]) == 2
    assert "one --config and one --out-dir per --method" in capsys.readouterr().err
    assert cli(["train-students", "--method", "scratch", "scratch", *common, "--config", scfg, scfg,
                "--out-dir", str(tmp_path / "s1"), str(tmp_path / "s2")]) == 2
    assert "names a method twice" in capsys.readouterr().err
    out = [tmp_path / "scratch", tmp_path / "oracle"]
    assert cli(["train-students", "--method", "scratch", "oracle", *common, "--config", scfg, scfg,
                "--out-dir", *map(str, out)]) == 0
    for d in out:
        assert sorted(p.name for p in d.iterdir() if p.is_dir()) == ["p0.3_s1", "p0_s0"]
        assert json.loads((d / "p0.3_s1" / "metrics.json").read_text())["model"] == d.name


def test_divergence_is_reported_not_hidden(setup):
    ds, noisy, teacher = setup
    cfg = {**STUDENT, "model": {"hidden": [64, 64]}, "train": {"epochs": 20, "lr": 1e30}}
    with pytest.raises(ValueError, match="diverged"):
        train_student(ds, noisy, teacher.t_dev, "scratch", cfg, seed=0, device="cpu")

"""Fault injection with real processes: killed jobs, corrupt files, bad values."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from kdreg.cli import main as cli
from kdreg.data import make_sinusoid
from kdreg.io import load_checkpoint, save_checkpoint
from kdreg.noise import NoisyLabels
from kdreg.train import ResumeDir, train_students, train_teachers

MEMBERS = [(0.0, 0), (0.3, 1)]
TEACHER = {"model": {"hidden": [16, 16]}, "train": {"epochs": 60, "lr": 0.01, "eval_every": 5}}
STUDENT = {"model": {"hidden": [4]}, "train": {"epochs": 80, "lr": 0.02, "batch_size": 32},
           "loss_options": {"tor": {"k": 3.0}}}


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def group():
    torch.set_num_threads(1)
    ds = make_sinusoid(n_train=150, n_test=50, seed=0)
    return ds, [NoisyLabels.make(ds.y_dev, "replace", p, s) for p, s in MEMBERS], [s for _, s in MEMBERS]


def interrupted_then_resumed(train, monkeypatch, resume: ResumeDir, kill_at: int):
    """Run ``train(resume)`` until the state of epoch ``kill_at`` is saved, stop it there, then run it again."""
    import kdreg.trainer as train_mod
    real_save = train_mod._save_state

    def save_then_die(state, epoch, *args):
        real_save(state, epoch, *args)
        if epoch == kill_at:
            raise Killed

    monkeypatch.setattr(train_mod, "_save_state", save_then_die)
    with pytest.raises(Killed):
        train(resume)
    monkeypatch.setattr(train_mod, "_save_state", real_save)
    return train(resume)


def test_interrupted_training_resumes_to_exactly_the_same_result(group, tmp_path, monkeypatch):
    ds, noisies, seeds = group
    whole = train_students(ds, noisies, [ds.y_dev] * 2, "tor", STUDENT, seeds, "cpu")
    # mini-batch training, states every 20 epochs, stopped after epoch 40
    resumed = interrupted_then_resumed(
        lambda r: train_students(ds, noisies, [ds.y_dev] * 2, "tor", STUDENT, seeds, "cpu", resume=r),
        monkeypatch, ResumeDir(tmp_path, every=20), kill_at=40)
    for a, b in zip(whole, resumed):
        assert json.dumps(a.metrics, sort_keys=True) == json.dumps(b.metrics, sort_keys=True)
        for k in a.state:
            assert torch.equal(a.state[k], b.state[k])


def test_interrupted_teachers_resume_with_their_best_epoch(group, tmp_path, monkeypatch):
    ds, noisies, seeds = group
    whole = train_teachers(ds, noisies, TEACHER, seeds, "cpu")
    # stopped mid early-stopping: the best epoch so far must survive the restart
    resumed = interrupted_then_resumed(lambda r: train_teachers(ds, noisies, TEACHER, seeds, "cpu", resume=r),
                                       monkeypatch, ResumeDir(tmp_path, every=15), kill_at=30)
    for a, b in zip(whole, resumed):
        assert json.dumps(a.metrics, sort_keys=True) == json.dumps(b.metrics, sort_keys=True)
        np.testing.assert_array_equal(a.t_dev, b.t_dev)


def test_a_state_from_other_settings_is_refused(group, tmp_path):
    ds, noisies, seeds = group
    train_students(ds, noisies, [ds.y_dev] * 2, "scratch", STUDENT, seeds, "cpu", resume=ResumeDir(tmp_path, 20))
    state = next(tmp_path.glob("students-scratch-*.pt"))
    ckpt = load_checkpoint(state)
    ckpt["fingerprint"] = "deadbeef"
    save_checkpoint(state, ckpt)
    with pytest.raises(ValueError, match="other settings.*delete it"):
        train_students(ds, noisies, [ds.y_dev] * 2, "scratch", STUDENT, seeds, "cpu", resume=ResumeDir(tmp_path, 20))


def _group_cmd(data, noisy_dir, out_dir, epochs, every):
    cfg = json.dumps({**STUDENT, "train": {"epochs": epochs, "lr": 0.02, "batch_size": 16}})
    return [sys.executable, "-m", "kdreg", "train-students", "--method", "scratch", "--data", str(data),
            "--noisy-dir", str(noisy_dir), "--models", "0:0", "0.3:1", "--config", cfg, "--device", "cpu",
            "--threads", "1", "--checkpoint-every", str(every), "--out-dir", str(out_dir)]


@pytest.mark.slow
def test_sigkill_mid_training_then_rerun_gives_the_uninterrupted_metrics(tmp_path):
    data, noisy_dir = tmp_path / "clean.npz", tmp_path / "noisy"
    make_sinusoid(n_train=400, n_test=100, seed=0).save(data)
    ds = make_sinusoid(n_train=400, n_test=100, seed=0)
    for p, s in MEMBERS:
        NoisyLabels.make(ds.y_dev, "replace", p, s).save(noisy_dir / f"p{p:g}_s{s}.npz")
    epochs, every = 1500, 50
    # the reference, uninterrupted
    subprocess.run(_group_cmd(data, noisy_dir, tmp_path / "whole", epochs, every), check=True)
    # the same job, killed with SIGKILL once it has saved a state, then started again
    out = tmp_path / "killed"
    proc = subprocess.Popen(_group_cmd(data, noisy_dir, out, epochs, every))
    resume_dir = tmp_path / "killed.resume"
    deadline = time.time() + 120
    while not any(resume_dir.glob("*.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the job finished before it could be killed; raise the epochs"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(next(resume_dir.glob("*.pt")))
    assert 0 < state["epoch"] < epochs
    assert not (out / "p0_s0" / "metrics.json").exists()
    subprocess.run(_group_cmd(data, noisy_dir, out, epochs, every), check=True)
    for member in ("p0_s0", "p0.3_s1"):
        assert (out / member / "metrics.json").read_bytes() == (tmp_path / "whole" / member / "metrics.json").read_bytes()
    assert not resume_dir.exists()  # spent states are cleaned up


def test_truncated_checkpoint_is_refused_with_the_fix(tmp_path, capsys):
    data = tmp_path / "clean.npz"
    make_sinusoid(n_train=100, n_test=20).save(data)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    assert cli(["evaluate", "--checkpoint", str(ckpt), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "model.pt" in err and "truncated or corrupt" in err and "retrain" in err


def test_corrupt_npz_is_refused_with_the_fix(tmp_path, capsys):
    data = tmp_path / "clean.npz"
    make_sinusoid(n_train=100, n_test=20).save(data)
    blob = data.read_bytes()
    data.write_bytes(blob[: len(blob) // 2])
    assert cli(["corrupt", "--data", str(data), "--level", "0.1", "--seed", "0", "--out", str(tmp_path / "n.npz")]) == 2
    err = capsys.readouterr().err
    assert "clean.npz" in err and ("truncated or corrupt" in err or "checksum" in err)
    assert not (tmp_path / "n.npz").exists()


def test_checksum_mismatch_is_refused(tmp_path, capsys):
    data = tmp_path / "clean.npz"
    make_sinusoid(n_train=100, n_test=20).save(data)
    other = tmp_path / "other.npz"
    make_sinusoid(n_train=100, n_test=20, seed=5).save(other)
    data.write_bytes(other.read_bytes())  # a valid file, but not the one recorded
    assert cli(["corrupt", "--data", str(data), "--level", "0.1", "--seed", "0", "--out", str(tmp_path / "n.npz")]) == 2
    err = capsys.readouterr().err
    assert "checksum" in err and "clean.npz" in err


def test_nan_labels_are_refused_saying_how_many_and_where():
    ds = make_sinusoid(n_train=100, n_test=20)
    y = ds.y_dev.copy()
    y[[3, 7]] = np.nan
    from kdreg.data import Dataset
    with pytest.raises(ValueError, match=r"2 NaN or infinite values in 2 rows \(first rows: \[3, 7\]\)"):
        Dataset(ds.x_dev, y, ds.val, ds.x_test, ds.y_test, ds.name, ds.task)


def test_writes_are_atomic(tmp_path, monkeypatch):
    """A write that dies midway leaves neither a partial file nor a stale temporary."""
    from kdreg import io
    target = tmp_path / "metrics.json"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(io.json, "dumps", boom)
    with pytest.raises(KeyboardInterrupt):
        io.save_json(target, {"a": 1})
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_kdreg_check_reports_present_missing_and_corrupt(tmp_path, committed_params, monkeypatch):
    import yaml

    from conftest import shrink
    from kdreg.check import check
    from kdreg.config import load_params
    from kdreg.layout import Paths, data_config
    from kdreg.variants import frontier_members
    params = shrink(committed_params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    lines, problems = check("params.yaml", root=tmp_path)
    assert problems == 0 and any("missing" in line for line in lines)
    paths = Paths(params, "sinusoid")
    cfg = data_config(params, "sinusoid")
    ds = make_sinusoid(cfg["n_train"], cfg["n_test"], cfg["val_fraction"], cfg["data_seed"])
    ds.save(tmp_path / paths.clean)
    noisy = tmp_path / paths.noisy(0.3, 1)
    NoisyLabels.make(ds.y_dev, "replace", 0.3, 1).save(noisy)
    noisy.write_bytes(noisy.read_bytes()[:100])
    lines, problems = check("params.yaml", root=tmp_path)
    report = "\n".join(lines)
    assert "CORRUPT" in report and "p0.3_s1.npz" in report
    assert f"{paths.clean}: ok" in report
    # once something is built, what is not (3 noisy sets, the teacher, 3 student groups and the frontier's group)
    # is lost work
    loaded = load_params(tmp_path / "params.yaml")  # with the schema's defaults, as check reads it
    resolved = Paths(loaded, "sinusoid")
    missing = resolved.all_group_dirs(params["methods"]) + [paths.noisy(lv, s) for lv, s in paths.groups[0]
                                                          if (lv, s) != (0.3, 1)]
    missing += [resolved.frontier_dir(g, members, loaded["frontier"])
                for g, members in resolved.frontier_groups(frontier_members(loaded["frontier"])).items()]
    assert problems == 1 + len(missing) and f"{len(missing)} made file(s) or trained group(s) missing" in report
    assert all(f"  {m}" in lines for m in missing)
    assert "snakemake --cores all all" in report
    params["noise"]["levels"] = [0.0, 2.0]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    lines, problems = check("params.yaml", root=tmp_path)
    assert problems == 1 and "noise.levels.1" in lines[0]

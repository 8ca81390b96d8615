"""Checkpoints: no file kdreg reads can run code, equal trainings write equal bytes, and a file that is not a
checkpoint (or a malformed config, or an existing output) is refused in one line, without a traceback."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kdreg.cli import main as cli
from kdreg.data import make_sinusoid
from kdreg.io import load_checkpoint, load_npz, save_checkpoint
from kdreg.noise import NoisyLabels
from kdreg.train import ResumeDir, train_students

ROOT = Path(__file__).resolve().parents[1]
STUDENT = {"model": {"hidden": [4]}, "train": {"epochs": 30, "lr": 0.02}}


class Planted:
    """A pickle that runs a shell command when unpickled: what a hostile checkpoint carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant(path: Path, marker: Path, how: str = "torch") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"fingerprint": Planted(marker), "states": [Planted(marker)]}
    if how == "torch":
        torch.save(payload, path)   # a zip archive with the pickle inside, as torch.save writes
    else:
        path.write_bytes(pickle.dumps(payload))


@pytest.fixture
def sinusoid(tmp_path):
    data = tmp_path / "clean.npz"
    make_sinusoid(n_train=100, n_test=20, seed=0).save(data)
    return data


@pytest.mark.parametrize("how", ["torch", "pickle"])
def test_evaluate_refuses_a_planted_pickle_and_runs_nothing(tmp_path, sinusoid, capsys, how):
    evil, marker = tmp_path / "evil.pt", tmp_path / "ran"
    plant(evil, marker, how)
    assert cli(["evaluate", "--checkpoint", str(evil), "--data", str(sinusoid)]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert "evil.pt" in err and "refused" in err and "nothing in it ran" in err and "Traceback" not in err


def test_a_planted_resume_state_is_refused_and_runs_nothing(tmp_path):
    ds = make_sinusoid(n_train=100, n_test=20, seed=0)
    noisies = [NoisyLabels.make(ds.y_dev, "replace", 0.3, s) for s in (0, 1)]
    resume = ResumeDir(tmp_path / "resume", every=10)
    train_students(ds, noisies, [ds.y_dev] * 2, "scratch", STUDENT, [0, 1], "cpu", resume=resume)
    # the job deletes its spent state only in the pipeline; here it stays, at the name a rerun will read
    state = next((tmp_path / "resume").glob("students-*.pt"))
    marker = tmp_path / "ran"
    plant(state, marker)
    with pytest.raises(ValueError, match="refused"):
        train_students(ds, noisies, [ds.y_dev] * 2, "scratch", STUDENT, [0, 1], "cpu", resume=resume)
    assert not marker.exists()


def test_teacher_predictions_with_a_pickled_array_are_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "predictions.npz"
    np.savez(path, t_dev=np.array([Planted(marker)], dtype=object))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_npz(path, ("t_dev",))
    assert not marker.exists()


class Killed(Exception):
    pass


def test_a_planted_frontier_resume_state_is_refused_and_runs_nothing(tmp_path, sinusoid, monkeypatch):
    import kdreg.trainer as trainer
    from kdreg.jobs import run_frontier, run_teachers
    noisy_dir = tmp_path / "noisy"
    NoisyLabels.make(make_sinusoid(n_train=100, n_test=20, seed=0).y_dev, "replace", 0.3, 0).save(
        noisy_dir / "p0.3_s0.npz")
    teacher = {"model": {"hidden": [8]}, "train": {"epochs": 20, "lr": 0.01}}
    run_teachers(str(sinusoid), str(noisy_dir), [(0.3, 0)], teacher, str(tmp_path / "teachers"), "cpu")
    args = (str(sinusoid), str(noisy_dir), [(0.3, 0)], {"kd": STUDENT}, [2], str(tmp_path / "teachers"),
            str(tmp_path / "frontier"), "cpu", True, 0, 10)
    real_save = trainer._save_state

    def save_then_die(resume, epoch, *rest):   # a job killed right after its first saved state
        real_save(resume, epoch, *rest)
        raise Killed

    monkeypatch.setattr(trainer, "_save_state", save_then_die)
    with pytest.raises(Killed):
        run_frontier(*args)
    monkeypatch.setattr(trainer, "_save_state", real_save)
    state = next((tmp_path / "frontier.resume").glob("*.pt"))
    marker = tmp_path / "ran"
    plant(state, marker)
    with pytest.raises(ValueError, match="refused"):
        run_frontier(*args)
    assert not marker.exists()


def _train_student_cli(tmp_path, sinusoid, out):
    noisy = tmp_path / "noisy.npz"
    if not noisy.exists():
        assert cli(["corrupt", "--data", str(sinusoid), "--level", "0.3", "--seed", "0", "--out", str(noisy)]) == 0
    return cli(["train-student", "--method", "scratch", "--data", str(sinusoid), "--noisy", str(noisy), "--config",
                json.dumps(STUDENT), "--seed", "0", "--device", "cpu", "--threads", "1", "--out-dir", str(out)])


def test_two_trainings_write_byte_identical_checkpoints(tmp_path, sinusoid):
    assert _train_student_cli(tmp_path, sinusoid, tmp_path / "a") == 0
    assert _train_student_cli(tmp_path, sinusoid, tmp_path / "b") == 0
    assert (tmp_path / "a/model.pt").read_bytes() == (tmp_path / "b/model.pt").read_bytes()
    ckpt = load_checkpoint(tmp_path / "a/model.pt", required=("run", "states"))
    assert ckpt["run"]["model"] == "scratch" and isinstance(ckpt["states"][0]["backbone.0.weight"], torch.Tensor)
    # and the checkpoint evaluates to the metrics the training wrote
    assert cli(["evaluate", "--checkpoint", str(tmp_path / "a/model.pt"), "--data", str(sinusoid),
                "--out", str(tmp_path / "eval.json")]) == 0
    trained = json.loads((tmp_path / "a/metrics.json").read_text())
    assert json.loads((tmp_path / "eval.json").read_text())["rmse"] == pytest.approx(trained["rmse"], rel=1e-6)


def test_checkpoints_are_equal_bytes_across_processes(tmp_path):
    # safetensors is written by Rust, whose hash maps are seeded per process: the bytes must not depend on it
    code = ("import sys, torch, numpy as np\nfrom kdreg.io import save_checkpoint\n"
            "opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], fused=True)\n"
            "save_checkpoint(sys.argv[1], {'b': 1, 'a': {'x': torch.arange(3.0), 'y': np.arange(2)}, "
            "'opt': opt.state_dict(), 'rng': torch.Generator().manual_seed(0).get_state()[:8], 'inf': float('inf')})\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for name in ("one.pt", "two.pt"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, env=env)
    assert (tmp_path / "one.pt").read_bytes() == (tmp_path / "two.pt").read_bytes()
    state = load_checkpoint(tmp_path / "one.pt")
    assert state["b"] == 1 and state["inf"] == float("inf") and isinstance(state["a"]["y"], np.ndarray)
    assert state["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_a_checkpoint_of_an_earlier_version_still_loads_safely(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"run": {"model": "kd"}, "states": [{"w": torch.ones(2)}]}, path)
    assert torch.equal(load_checkpoint(path)["states"][0]["w"], torch.ones(2))


@pytest.mark.parametrize("content, says", [
    (b"", "an empty file"),
    (b"device: auto\nseeds: 10\n", "text beginning 'device: auto'"),
    (b"\x00\x01\x02garbage", "binary data"),
])
def test_a_file_that_is_not_a_checkpoint_gets_one_line(tmp_path, sinusoid, capsys, content, says):
    path = tmp_path / "params.yaml"
    path.write_bytes(content)
    assert cli(["evaluate", "--checkpoint", str(path), "--data", str(sinusoid)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "params.yaml" in err and "not a kdreg checkpoint" in err and says in err


def test_a_truncated_safetensors_checkpoint_is_named(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"w": torch.ones(100)})
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ValueError, match="model.pt is truncated"):
        load_checkpoint(path)


def test_a_checkpoint_lacking_what_evaluate_needs_is_named(tmp_path, sinusoid, capsys):
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"w": torch.ones(2)})
    assert cli(["evaluate", "--checkpoint", str(path), "--data", str(sinusoid)]) == 2
    assert "not a kdreg model checkpoint" in capsys.readouterr().err


def test_a_malformed_yaml_config_is_refused_without_a_traceback(tmp_path, sinusoid):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {hidden: [4]\ntrain: [")
    noisy = tmp_path / "noisy.npz"
    assert cli(["corrupt", "--data", str(sinusoid), "--level", "0.3", "--seed", "0", "--out", str(noisy)]) == 0
    proc = subprocess.run([sys.executable, "-m", "kdreg", "train-teacher", "--data", str(sinusoid), "--noisy",
                           str(noisy), "--config", str(bad), "--seed", "0", "--out-dir", str(tmp_path / "t")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "bad.yaml is not valid YAML" in proc.stderr


@pytest.mark.parametrize("command", ["make-data", "corrupt"])
def test_data_commands_refuse_an_existing_out_without_overwrite(tmp_path, sinusoid, capsys, command):
    out = tmp_path / "out.npz"
    out.write_bytes(b"someone's work")
    args = (["make-data", "--config", '{"n_train": 50, "n_test": 10}'] if command == "make-data"
            else ["corrupt", "--data", str(sinusoid), "--level", "0.2", "--seed", "0"])
    assert cli([*args, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"someone's work"
    assert cli([*args, "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != b"someone's work"

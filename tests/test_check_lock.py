"""`kdreg check` over every kind of trained group (the frontier's too) from any directory, and the per-group lock
that keeps a second writer out of a group. One tiny real pipeline run: a frontier group and nothing else
trained; the lock's second writers are real processes."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, shrink, snakemake
from kdreg import deps, lock
from kdreg.check import check
from kdreg.cli import main as cli
from kdreg.config import load_params, student_config
from kdreg.layout import Paths
from kdreg.lock import Locked, lock_path, locked
from kdreg.variants import frontier_members

HOLD = ("import sys, time\nfrom kdreg.lock import locked\n"
        "with locked(*sys.argv[1:]):\n    print('held', flush=True)\n    time.sleep(120)\n")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """A checkout-like folder (params.yaml, the workflow's schemas beside it) where the pipeline made one frontier
    group (scratch students of width 2 at p = 0.3, no teacher needed); its path, relative to the folder."""
    root = tmp_path_factory.mktemp("built")
    params = shrink(yaml.safe_load((ROOT / "params.yaml").read_text()))
    params["frontier"].update(methods=["scratch"], widths=[2])
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "workflow").symlink_to(ROOT / "workflow")
    (root / "results").mkdir()
    p = load_params(root / "params.yaml")
    paths = Paths(p, "sinusoid")
    (group, members), = paths.frontier_groups(frontier_members(p["frontier"])).items()
    frontier = paths.frontier_dir(group, members, p["frontier"])
    snakemake(root, frontier)
    assert (root / frontier / "SHA256SUMS").exists()
    return root, frontier


@pytest.fixture
def group(built):
    """The frontier group, restored after the test whatever the test did to it."""
    root, frontier = built
    kept = root.parent / f"{root.name}-kept"
    shutil.copytree(root / frontier, kept, dirs_exist_ok=True)
    yield root / frontier
    shutil.rmtree(root / frontier, ignore_errors=True)
    shutil.copytree(kept, root / frontier)


def check_in(cwd: Path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`kdreg check ARGS` run in ``cwd``: (exit status, report)."""
    monkeypatch.chdir(cwd)
    try:
        cli(["check", *args])
        status = 0
    except SystemExit as exit:
        status = exit.code
    return status, capsys.readouterr().out


def test_check_sees_the_intact_frontier_group(built):
    root, frontier = built
    lines, _ = check("params.yaml", root=root)
    assert "  frontier groups: 1 of 1 present, 0 missing, 0 damaged" in lines
    assert f"  {frontier}" not in lines  # not among the missing
    assert not list(root.rglob("*.lock"))  # the job released its lock when it ended


def damage(group: Path, how: str) -> str:
    """Damage the group; the file or folder a report must name."""
    run = group / "w2" / "scratch" / "p0.3_s1"
    if how == "truncated model":
        (run / "model.pt").write_bytes((run / "model.pt").read_bytes()[:100])
        return str(run / "model.pt")
    if how == "changed predictions":  # same size, other bytes: only the SHA-256 tells
        blob = bytearray((run / "predictions.npz").read_bytes())
        blob[-30] ^= 0xFF
        (run / "predictions.npz").write_bytes(bytes(blob))
        return str(run / "predictions.npz")
    if how == "run deleted":
        shutil.rmtree(run)
        return str(run)
    (group / "SHA256SUMS").unlink()
    return str(group / "SHA256SUMS")


@pytest.mark.parametrize("how", ["truncated model", "changed predictions", "run deleted", "manifest deleted"])
def test_a_damaged_frontier_group_is_named_with_the_fix_from_a_subdirectory(built, group, how, monkeypatch,
                                                                            capsys):
    root, frontier = built
    named = damage(group, how)
    status, report = check_in(root / "results", monkeypatch, capsys, "--params", "../params.yaml")
    assert status == 1 and "no problems found" not in report
    # the paths are the checkout's, read from the params file's folder, not from where the check runs
    assert f"  {frontier}: CORRUPT" in report and Path(named).name in report, report
    assert f"rm -r '../{frontier}'" in report  # the fix, as given, works where the check ran
    assert "frontier groups: 0 of 1 present, 0 missing, 1 damaged" in report


def test_a_deleted_frontier_group_is_missing_and_the_report_says_how_to_rebuild_it(built, group, monkeypatch,
                                                                                     capsys):
    root, frontier = built
    shutil.rmtree(group)
    status, report = check_in(root / "results", monkeypatch, capsys, "--params", "../params.yaml")
    assert status == 1 and f"\n  {frontier}\n" in report and "snakemake --cores all all" in report
    assert "frontier groups: 0 of 1 present, 1 missing, 0 damaged" in report


def test_check_reads_the_checkout_of_the_params_file_or_the_root_given(built, group, monkeypatch, capsys):
    root, frontier = built
    damage(group, "truncated model")
    from_root = check_in(root, monkeypatch, capsys)
    from_below = check_in(root / "results", monkeypatch, capsys, "--params", "../params.yaml")
    assert from_root[0] == from_below[0] == 1
    # the same findings wherever the check runs; the paths of the fixes hold there, and snakemake runs in the checkout
    assert from_below[1].replace("../", "").replace("snakemake runs in the checkout: cd '..' before it\n", "") == \
        from_root[1]
    assert from_below[1].endswith("snakemake runs in the checkout: cd '..' before it\n")
    explicit = check_in(root / "results", monkeypatch, capsys, "--params", "../params.yaml", "--root", "..")
    assert explicit[0] == 1 and f"{frontier}: CORRUPT" in explicit[1]
    elsewhere = check_in(root / "results", monkeypatch, capsys, "--params", "../params.yaml", "--root", ".")
    assert elsewhere[0] == 0 and "nothing built yet" in elsewhere[1]  # --root wins: nothing is built there


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of ``tmp_path/group``; killed at the end."""
    out = tmp_path / "group"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield out, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_second_writer_is_refused_naming_the_lock_and_the_first_writers_pid(holder, tmp_path, capsys):
    out, proc = holder
    held = lock_path(out).read_text()
    with pytest.raises(Locked) as refused:
        with locked(out):
            pytest.fail("a second writer got the lock")
    message = str(refused.value)
    assert str(lock_path(out)) in message and f"process {proc.pid}" in message and f"kill {proc.pid}" in message
    # a job is refused the same way, before it reads or writes anything, as a user error (no traceback)
    assert cli(["train-teachers", "--data", "absent.npz", "--noisy-dir", "absent", "--models", "0:0", "--config",
                "{}", "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdreg train-teachers: error: ") and f"kill {proc.pid}" in err and "Traceback" not in err
    # of several groups, none is kept when one is held (train-students writes one group per method)
    other = tmp_path / "other"
    with pytest.raises(Locked):
        with locked(other, out):
            pass
    assert not lock_path(other).exists() and lock_path(out).read_text() == held  # the holder's lock untouched


def test_the_lock_of_a_killed_writer_is_taken_over_saying_so(holder):
    out, proc = holder
    proc.send_signal(signal.SIGKILL)  # kill -9: the lock stays behind, naming a process that no longer runs
    proc.wait()
    notes = []
    with locked(out, notice=notes.append):
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    assert len(notes) == 1 and f"process {proc.pid}" in notes[0] and "no longer runs" in notes[0]
    assert not lock_path(out).exists()


@pytest.mark.skipif(lock._identity(os.getpid()) is None, reason="needs /proc to tell a reused pid")
def test_a_lock_naming_a_reused_pid_is_stale(tmp_path):
    out = tmp_path / "group"
    # a live process (this one's parent) that started after the lock's writer: the writer is gone, its pid reused
    lock_path(out).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "started": "earlier",
                                          "identity": "another-boot:1"}))
    notes = []
    with locked(out, notice=notes.append):
        pass
    assert notes and not lock_path(out).exists()


def test_a_lock_from_another_host_is_refused_naming_that_host(tmp_path):
    out = tmp_path / "group"
    lock_path(out).write_text(json.dumps({"pid": 1234, "host": "elsewhere.example", "started": "2024-01-01"}))
    with pytest.raises(Locked, match=r"process 1234 on host elsewhere\.example .*rm '.*group\.lock'"):
        with locked(out):
            pass
    assert lock_path(out).exists()


def test_an_unreadable_lock_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(lock, "PAUSE", 0)
    out = tmp_path / "group"
    lock_path(out).write_text("not a lock")
    with pytest.raises(Locked, match=r"does not hold a lock kdreg wrote.*rm '.*group\.lock'"):
        with locked(out):
            pass


def test_the_lock_is_released_after_an_exception(tmp_path, capsys):
    out = tmp_path / "group"
    with pytest.raises(RuntimeError):
        with locked(out):
            raise RuntimeError("a bug mid-job")
    assert not lock_path(out).exists()
    # a job that fails on its input: refused with the problem, and its lock is gone
    assert cli(["train-frontier", "--method", "scratch", "--widths", "2", "--data", str(tmp_path / "absent.npz"),
                "--noisy-dir", str(tmp_path), "--models", "0.3:0", "--config", "{}", "--out-dir", str(out)]) == 2
    assert "absent.npz" in capsys.readouterr().err and not lock_path(out).exists()


def test_a_job_after_a_killed_one_takes_its_lock_over_and_says_so_in_its_log(built, tmp_path):
    """A real job (its own process, as Snakemake runs it), on a group whose writer died: it trains, says in its
    log whose lock it took over, and leaves no lock behind."""
    root, _ = built
    out, log = tmp_path / "students", tmp_path / "job.log"
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    lock_path(out).write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "started": "before"}))
    data = next(root.glob("data/sinusoid/*/clean.npz"))
    config = student_config(load_params(root / "params.yaml"), "sinusoid", "scratch")
    config["train"]["epochs"] = 3
    subprocess.run([sys.executable, "-m", "kdreg", "--log", str(log), "train-students", "--method", "scratch",
                    "--data", str(data), "--noisy-dir", str(next(data.parent.glob("replace_*"))), "--models", "0.3:0",
                    "--config", json.dumps(config), "--device", "cpu", "--threads", "1", "--out-dir", str(out)],
                   check=True)
    assert f"taking over {lock_path(out)}: its process {dead} " in log.read_text()
    assert (out / "SHA256SUMS").exists() and not lock_path(out).exists()


@pytest.mark.parametrize("command", ["train-teachers", "train-students", "train-frontier", "train-teacher",
                                     "train-student"])
def test_every_training_command_declares_the_lock_module(command):
    assert "kdreg.lock" in deps.command_modules(command)

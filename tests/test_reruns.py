"""Trustworthy reruns: derived code inputs, a moved checkout, execution-only settings, damaged or deleted runs
found and named, and the offered fix followed literally. One real (shrunk) pipeline run in a copied checkout,
whose own sources the jobs import, copied again by each test that changes it."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_checkout, rule_kind, shrink

pytestmark = pytest.mark.slow


def run(checkout: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A command in ``checkout`` whose `kdreg` (in Snakemake and in every job) is that checkout's own source."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    proc = subprocess.run(args, cwd=checkout, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def snakemake(checkout: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(checkout, sys.executable, "-m", "snakemake", "--cores", "2", *args, check=check)


def kdreg(checkout: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(checkout, sys.executable, "-m", "kdreg", *args, check=check)


def job_lines(dry_run: str, field: str) -> list[tuple[str, str]]:
    """``(rule, value of field)`` for every job block of a dry run."""
    return [(rule_kind(m.group(1)), m.group(2)) for m in re.finditer(rf"^rule (\S+):\n(?:    .*\n)*?    {field}: (.*)$",
                                                                     dry_run, flags=re.M)]


def rules_declaring(checkout: Path, source: str) -> set[str]:
    """The rules that list ``source`` among their inputs (every job of a forced dry run)."""
    return {rule for rule, inputs in job_lines(snakemake(checkout, "-n", "-F", "all").stdout, "input")
            if source in inputs.split(", ")}


def rules_rerun(checkout: Path) -> dict[str, set[str]]:
    """``{rule: reasons}`` of the jobs a dry run would run."""
    out = {}
    for rule, reason in job_lines(snakemake(checkout, "-n", "all").stdout, "reason"):
        out.setdefault(rule, set()).add(reason.split(":")[0])
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory, ) -> Path:
    """A checkout (git-tracked files) with the shrunk params, after a full pipeline run."""
    checkout = tmp_path_factory.mktemp("finished") / "kdreg"
    copy_checkout(checkout)
    shutil.rmtree(checkout / "results")
    params = shrink(yaml.safe_load((ROOT / "params.yaml").read_text()))
    (checkout / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    snakemake(checkout, "all")
    return checkout


@pytest.fixture
def checkout(finished, tmp_path) -> Path:
    """A copy of the finished checkout (timestamps kept) that a test may change."""
    dest = tmp_path / "copy" / "kdreg"
    shutil.copytree(finished, dest, symlinks=True)
    return dest


def test_a_moved_checkout_reruns_nothing(finished, tmp_path):
    moved = tmp_path / "elsewhere" / "deeper" / "renamed"
    shutil.copytree(finished, moved, symlinks=True)
    assert "Nothing to be done" in snakemake(moved, "-n", "all").stdout


@pytest.mark.parametrize("module, rules", [
    ("plots.py", {"plot_error_vs_noise", "plot_fits", "plot_rejection", "plot_frontier", "plot_frontier_summary"}),
    # the kinds table: units and data paths
    ("datasets.py", {"make_data", "train_teachers", "train_students", "train_frontier", "frontier_table"}),
    ("noise.py", {"corrupt", "train_teachers", "train_students", "train_frontier", "collect", "aggregate", "fits_data",
                  "frontier_table"}),
    ("results.py", {"collect", "aggregate", "fits_data", "frontier_table"}),
    ("stacked.py", {"train_teachers", "train_students", "train_frontier"}),
    ("manifest.py", {"train_teachers", "train_students", "train_frontier", "collect", "frontier_table"}),
])
def test_editing_a_module_reruns_exactly_the_steps_that_import_it(checkout, module, rules):
    source = f"src/kdreg/{module}"
    assert rules_declaring(checkout, source) == rules
    # an edit, not a touch: Snakemake reruns for a newer input only when its content changed
    with open(checkout / source, "a") as f:
        f.write("# edited\n")
    rerun = rules_rerun(checkout)
    direct = {rule for rule, reasons in rerun.items() if "Updated input files" in reasons}
    assert direct and direct <= rules  # the others are shown as downstream of these
    if module == "plots.py":  # nothing downstream of a figure: exactly the plot jobs rerun
        assert set(rerun) == rules | {"all"} or set(rerun) == rules


def test_execution_settings_retrain_nothing(checkout):
    params = yaml.safe_load((checkout / "params.yaml").read_text())
    params["pipeline"].update(stack=False, teacher_stack_size=1, student_stack_size=3, checkpoint_every=7)
    (checkout / "params.yaml").write_text(yaml.safe_dump(params))
    assert "Nothing to be done" in snakemake(checkout, "-n", "all").stdout


def test_every_module_a_command_imports_is_a_declared_input(finished, tmp_path):
    """The static import reading (kdreg.deps) against the modules each command really loads."""
    from kdreg import deps
    data = next(finished.glob("data/sinusoid/*/clean.npz"))
    noise_dir = next(data.parent.glob("replace_*"))
    teachers = next(finished.glob("models/sinusoid/*/*/teachers/g0-*"))
    runs = next(finished.glob("models/sinusoid/*/*/runs-*.csv"))
    out = tmp_path / "out"
    config = json.dumps(yaml.safe_load((finished / "params.yaml").read_text())["datasets"]["sinusoid"]["student"]
                        | {"loss_options": {}})
    commands = {
        "make-data": ["make-data", "--config", '{"n_train": 50, "n_test": 10}', "--out", f"{out}/d.npz"],
        "corrupt": ["corrupt", "--data", str(data), "--level", "0.3", "--seed", "0", "--out", f"{out}/n.npz"],
        "train-students": ["train-students", "--method", "tor", "--data", str(data), "--noisy-dir", str(noise_dir),
                           "--models", "0.3:0", "--teacher-dir", str(teachers), "--config", config, "--device", "cpu",
                           "--out-dir", f"{out}/s"],
        "collect": ["collect", "--groups", str(teachers), "--out", f"{out}/runs.csv"],
        "aggregate": ["aggregate", "--runs", str(runs), "--methods", "scratch", "tor", "--metrics", f"{out}/m.json",
                      "--table-md", f"{out}/t.md", "--table-csv", f"{out}/t.csv", "--error-csv", f"{out}/e.csv",
                      "--rejection-csv", f"{out}/r.csv"],
        "plot": ["plot", "rejection", str(finished / "results/plots/sinusoid_rejection.csv"), "--out", f"{out}/r.png"],
    }
    driver = ("import json, sys\nfrom kdreg.cli import main\nrc = main(sys.argv[1:])\n"
              "print(json.dumps([rc, sorted(m for m in sys.modules if m.split('.')[0] == 'kdreg')]))")
    for command, argv in commands.items():
        proc = run(finished, sys.executable, "-c", driver, *argv)
        rc, loaded = json.loads(proc.stdout.strip().splitlines()[-1])
        assert rc == 0, (command, proc.stderr[-2000:])
        undeclared = set(loaded) - set(deps.command_modules(command)) - {"kdreg.deps"}
        assert not undeclared, f"kdreg {command} imports {undeclared}, which its rule does not declare"


def fix_from(message: str) -> list[Path]:
    """The paths the offered fix says to delete (rm -r '<folder>' or rm '<file>' '<file>')."""
    match = re.search(r"rm (?:-r )?((?:'[^']+' ?)+)", message)
    assert match, message
    assert "snakemake --cores all all" in message, message
    return [Path(p) for p in re.findall(r"'([^']+)'", match.group(1))]


def rebuild(checkout: Path) -> None:
    """The rebuild command the fixes, `kdreg check` and the README give, as they give it."""
    run(checkout, sys.executable, "-m", "snakemake", "--cores", "all", "all")


def contents(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def group_of(checkout: Path, pattern: str) -> Path:
    return next(checkout.glob(pattern))


TEACHERS, STUDENTS = "models/sinusoid/*/*/teachers/g0-*", "models/sinusoid/*/*/students/tor_multitask/g0-*"


@pytest.mark.parametrize("damage", ["truncate student model", "delete teacher metrics", "delete student manifest"])
def test_damaged_runs_are_named_and_the_offered_fix_rebuilds_them(checkout, damage):
    """Damage inside a finished group: `kdreg check` and collection name it; the fix they offer, followed
    literally, brings the group back bit for bit, and everything downstream with it."""
    before = (checkout / "results/metrics/sinusoid.json").read_bytes()
    group = group_of(checkout, STUDENTS if "student" in damage else TEACHERS)
    kept = contents(group)
    if damage == "truncate student model":
        victim = group / "p0.3_s1/model.pt"
        victim.write_bytes(victim.read_bytes()[:100])
    elif damage == "delete teacher metrics":
        victim = group / "p0.3_s1/metrics.json"
        victim.unlink()
    else:
        victim = group / "SHA256SUMS"
        victim.unlink()
    check = kdreg(checkout, "check", check=False)
    assert check.returncode == 1 and str(group.relative_to(checkout)) in check.stdout and "CORRUPT" in check.stdout
    # collection reads it: it stops, naming the file, on the console (not only in its log)
    groups = [str(p.relative_to(checkout)) for p in checkout.glob("models/sinusoid/*/*/*/g0-*")]
    groups += [str(p.relative_to(checkout)) for p in checkout.glob("models/sinusoid/*/*/students/*/g0-*")]
    collect = kdreg(checkout, "--log", "collect.log", "collect", "--groups", *groups, "--out", "runs.csv",
                    check=False)
    assert collect.returncode == 2 and str(group.relative_to(checkout)) in collect.stderr
    # the fix, followed literally
    for path in fix_from(collect.stderr):
        shutil.rmtree(checkout / path)
    rebuild(checkout)
    assert contents(group) == kept  # the group is back, as it was
    assert kdreg(checkout, "check").returncode == 0
    assert (checkout / "results/metrics/sinusoid.json").read_bytes() == before


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_a_deleted_group_is_a_finding_and_the_rebuild_command_brings_it_back(checkout, role):
    group = group_of(checkout, TEACHERS if role == "teacher" else STUDENTS)
    kept, learned = contents(group), contents(group_of(checkout, STUDENTS))
    shutil.rmtree(group)
    check = kdreg(checkout, "check", check=False)
    assert check.returncode == 1 and "no problems found" not in check.stdout
    assert str(group.relative_to(checkout)) in check.stdout and "snakemake --cores all all" in check.stdout
    rebuild(checkout)
    assert contents(group) == kept
    assert contents(group_of(checkout, STUDENTS)) == learned  # retrained on the rebuilt teacher: the same
    assert "no problems found" in kdreg(checkout, "check").stdout


def test_a_damaged_noisy_set_is_refused_and_the_offered_fix_rebuilds_it(checkout):
    noisy = group_of(checkout, "data/sinusoid/*/replace_*/p0.3_s1.npz")
    kept, teachers = noisy.read_bytes(), contents(group_of(checkout, TEACHERS))
    damaged = bytearray(kept)
    damaged[len(damaged) // 2:len(damaged) // 2 + 4] = b"\xff\xff\xff\xff"
    noisy.write_bytes(bytes(damaged))
    proc = run(checkout, sys.executable, "-m", "snakemake", "--cores", "2", "headline", check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert str(noisy.relative_to(checkout)) in message and "checksum" in message
    # refused before any job: Snakemake deleted nothing that learned from the damaged set
    assert contents(group_of(checkout, TEACHERS)) == teachers and "Select jobs to execute" not in message
    for path in fix_from(message):
        (checkout / path).unlink()
    rebuild(checkout)
    assert noisy.read_bytes() == kept
    assert contents(group_of(checkout, TEACHERS)) == teachers
    assert "no problems found" in kdreg(checkout, "check").stdout


def test_a_disabled_dataset_leaves_no_current_looking_results(checkout, tmp_path):
    csv = tmp_path / "table.csv"
    import numpy as np
    r = np.random.default_rng(0)
    x = r.uniform(-1, 1, 120)
    csv.write_text("x,y\n" + "".join(f"{a:.5f},{2 * a + 0.1 * b:.5f}\n" for a, b in zip(x, r.normal(size=120))))
    params = yaml.safe_load((checkout / "params.yaml").read_text())
    params["datasets"]["sinusoid"]["enabled"] = False
    params["methods"] = ["scratch"]
    params["datasets"]["tiny"] = {"enabled": True, "kind": "table", "path": str(csv), "target": "y",
                                  "teacher": {"model": {"hidden": [8]}, "train": {"epochs": 5}},
                                  "student": {"train": {"epochs": 5}}}
    (checkout / "params.yaml").write_text(yaml.safe_dump(params))
    snakemake(checkout, "metrics")
    assert (checkout / "results/metrics/tiny.json").exists()
    assert not (checkout / "results/metrics/sinusoid.json").exists()
    assert (checkout / "results/disabled/sinusoid/metrics/sinusoid.json").exists()
    assert (checkout / "results/disabled/sinusoid/figures/sinusoid_fits.png").exists()

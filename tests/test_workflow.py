"""The Snakemake workflow and the DVC stage, run for real on a shrunk config."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, copy_checkout, rule_kind, shrink, snakemake


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Jobs per rule kind (the grouped noise and student jobs are a rule each, counted together)."""
    stats = dry_run_output.split("Job stats:", 1)[1].split("\ntotal", 1)[0]  # the first table (it is printed twice)
    counts = {}
    for m in re.finditer(r"^(\S+)\s+(\d+)$", stats, flags=re.M):
        counts[rule_kind(m.group(1))] = counts.get(rule_kind(m.group(1)), 0) + int(m.group(2))
    return counts


def per_method_jobs(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["pipeline"]["student_jobs"] = 0
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def test_dry_run_has_the_expected_jobs(workdir):
    counts = job_counts(snakemake(workdir, "-n", "figures").stdout)
    # 2 levels x 2 seeds = 4 models in one group: one noise job, one teacher job; its students in two jobs
    # (pipeline.student_jobs), the 3 methods split between them
    assert counts["make_data"] == 1 and counts["corrupt"] == 1
    assert counts["train_teachers"] == 1 and counts["train_students"] == 2
    assert counts["collect"] == counts["aggregate"] == counts["fits_data"] == 1
    assert counts["plot_error_vs_noise"] == counts["plot_fits"] == counts["plot_rejection"] == 1
    # for a cluster: one job per method
    per_method_jobs(workdir)
    assert job_counts(snakemake(workdir, "-n", "figures").stdout)["train_students"] == 3


def test_group_size_cuts_training_into_more_jobs(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["pipeline"]["group_size"] = 1
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    counts = job_counts(snakemake(workdir, "-n", "all").stdout)
    assert counts["corrupt"] == counts["train_teachers"] == 4 and counts["train_students"] == 2 * 4


def test_default_params_dry_run(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    dry = snakemake(tmp_path, "-n", "all").stdout
    counts = job_counts(dry)
    # every job says what it does and for whom: kind.dataset[-variant][.detail].key, or a rule per results name
    # whose wildcards name it (aggregate, plot_fits, study, ...)
    # the digits (an experiment with its own overrides) run under the default params and the variant naming them
    digits = ["digits", "digits-digits_recommended"]
    results_names = {f"sinusoid-{v}" for v in params["variants"] if not v.startswith("digits")} | {"sinusoid"} | {
        f"{d}-benchmark_{k}" for d in params["benchmark"]["datasets"] for k in params["benchmark"]["noise_kinds"]} | {
        *digits}
    for rule in set(re.findall(r"^rule (\S+):", dry, flags=re.M)):
        if "." in rule:
            kind, label, *_, key = rule.split(".")
            assert kind in {"make_data", "corrupt", "train_teachers", "train_students", "train_frontier",
                            "collect"}, rule
            assert label in results_names and re.fullmatch(r"[0-9a-f]{8}", key), rule
        else:
            assert not re.search(r"[0-9a-f]{8}", rule), rule
    # work the variants share runs once: 3 noise sets (replace, gaussian, replace at n_train 200), one teacher
    # group per distinct teacher, and students only where their settings or their teacher differ; the benchmark
    # suite adds its tables: 5 levels x its seeds noise files, one teacher and one job per method each
    suite, kinds = params["benchmark"]["datasets"], len(params["benchmark"]["noise_kinds"])
    # the digits: one clean set and one group of noisy sets, two teacher groups (paper-style, recommended), two
    # student jobs for the default methods and two for the three that read the recommended teacher
    assert counts["corrupt"] == 3 + kinds * len(suite) + 1  # one job per group of noisy sets: all levels x seeds
    assert counts["make_data"] == 2 + len(suite) + 1        # a table's clean data serves both noise kinds
    # the sinusoid's 14 distinct teachers: mse, huber, tukey, refined, cross-fitted, two under gaussian noise, one
    # at n_train 200, the mixture likelihood, the Tukey teacher refitted after mad or after mixture rejection
    # (the rejection study's refit_mixture and refit_weight share one: mode is a student setting), and that refit
    # with the refinement guard (refit_readmit and recommended share it), and two more: that teacher's kind chosen
    # on validation between it and an ensemble of three (readmit_auto), and that ensemble alone (readmit_ensemble)
    assert counts["train_teachers"] == 14 + kinds * len(suite) + 2
    # students: a group's methods not trained by an earlier variant, in two jobs (pipeline.student_jobs): on the
    # sinusoid 12 groups of students with something left to train (sweep_w4_n1000 shares all its students with
    # the default and teacher_tukey), two jobs each; two per suite table
    # the rejection study and recommended add 20 jobs (a job whose methods all train elsewhere already is not one:
    # refit_readmit's students are recommended's), and the restarts study 4 (its teachers are the default's and
    # readmit_auto's; readmit_auto_restarts' scratch and oracle are students_restarts')
    assert counts["train_students"] == 2 * 12 + 24 + 2 * kinds * len(suite) + 4
    assert counts["aggregate"] == 1 + len(params["variants"]) + kinds * len(suite) + 1  # + digits' default run
    assert counts["study"] == len(params["studies"]) and counts["benchmark_summary"] == kinds
    # the frontier trains students only: one job per source (recommended's sinusoid, each suite table per kind),
    # at teachers counted above; one table, a figure per dataset and a summary
    assert counts["train_frontier"] == 1 + kinds * len(suite) and counts["frontier_table"] == 1
    assert counts["plot_frontier"] == 1 + len(suite) and counts["plot_frontier_summary"] == 1
    # one job per method instead: the same students, 130 jobs on the sinusoid
    per_method_jobs(tmp_path)
    counts = job_counts(snakemake(tmp_path, "-n", "all").stdout)
    digit_methods = params["datasets"]["digits"]["overrides"]["methods"]
    assert counts["train_students"] == 130 + kinds * len(suite) * len(params["methods"]) + len(digit_methods) + 3


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["noise"].update(levels=[0.0, 1.5]), "noise.levels.1"),
    (lambda p: p.update(methods=["scratch", "tor_multitsk"]), "methods.1"),
    (lambda p: p.update(sede=3), "sede"),
    (lambda p: p.update(seeds="ten"), "seeds"),
    (lambda p: p["datasets"]["sinusoid"]["student"]["train"].update(lr=-1), "datasets.sinusoid.student.train.lr"),
    (lambda p: p["loss_options"]["tor"].update(threshold="fixed", delta=None), "loss_options.tor"),
    (lambda p: p["figures"].update(fits_level=0.2), "figures.fits_level"),
    (lambda p: p["frontier"].update(variants=["recommnded"]), "frontier.variants names ['recommnded']"),
    (lambda p: p["frontier"].update(levels=[0.2]), "the frontier asks for frontier.levels [0.2]"),
    (lambda p: p["frontier"].update(widths=[0, 4]), "frontier.widths.0"),
])
def test_bad_params_fail_before_any_job_naming_the_key(workdir, edit, message):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    edit(params)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    proc = snakemake(workdir, "-n", "all", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (workdir / "data").exists()


@pytest.mark.slow
def test_pipeline_end_to_end(workdir):
    snakemake(workdir, "all")
    res = workdir / "results"
    for name in ("figures/sinusoid_error_vs_noise.png", "figures/sinusoid_fits.png",
                 "figures/sinusoid_rejection.png", "tables/sinusoid.md", "tables/sinusoid.csv"):
        assert (res / name).stat().st_size > 0, name
    metrics = json.loads((res / "metrics/sinusoid.json").read_text())
    for key in ("p0.3.tor_multitask.rmse_mean", "p0.3.tor_multitask.rmse_ci95", "p0.3.tor_multitask.rmse_vs_scratch",
                "p0.3.tor_multitask.teacher_head_rmse_mean", "p0.3.tor.rejection_precision_mean",
                "p0.3.teacher.rmse_mean", "p0.scratch.rmse_mean"):
        assert key in metrics, key
    table = (res / "tables/sinusoid.md").read_text()
    assert "tor_multitask (teacher head)" in table and "p=0.3" in table
    # the frontier: both widths of both methods at p = 0.3, the teacher's row, its summary and figures
    front = pd.read_csv(res / "tables/frontier.csv")
    assert sorted(front[front.model == "tor_multitask"].width) == [2, 8] and (front.model == "teacher").sum() == 1
    assert "sinusoid.p0.3.best_scratch_rmse" in json.loads((res / "metrics/frontier.json").read_text())
    for name in ("figures/frontier/sinusoid.png", "figures/frontier/summary.png", "tables/frontier_equal_accuracy.md"):
        assert (res / name).stat().st_size > 0, name
    # every model's run directory holds its frozen config with seed, commit and versions
    cfg = yaml.safe_load(next((workdir / "models").rglob("tor_multitask/g0-*/p0.3_s1/config.yaml")).read_text())
    assert cfg["seed"] == 1 and cfg["noise_level"] == 0.3
    assert {"git_commit", "torch", "kdreg"} <= set(cfg["provenance"])
    assert cfg["config"]["train"]["epochs"] == 60
    # a second run has nothing to do
    assert "Nothing to be done" in snakemake(workdir, "-n", "all").stdout
    # determinism: the same params in another directory give byte-identical metrics and tables
    again = workdir / "again"
    again.mkdir()
    shutil.copy(workdir / "params.yaml", again / "params.yaml")
    snakemake(again, "all")
    for name in ("metrics/sinusoid.json", "tables/sinusoid.md", "tables/sinusoid.csv", "evaluation/sinusoid_runs.csv",
                 "tables/frontier.csv", "metrics/frontier.json"):
        assert (again / "results" / name).read_bytes() == (res / name).read_bytes(), name
    # ... and byte-identical datasets and checkpoints (what DVC hashes), Snakemake's own markers aside
    def tree(root):
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != ".snakemake_timestamp"}
    for top in ("data", "models"):
        first, second = tree(workdir / top), tree(again / top)
        assert first.keys() == second.keys(), top
        assert [k for k in first if first[k] != second[k]] == [], top
    # A params change reruns exactly the jobs it affects, even without Snakemake's run records (a fresh clone
    # after `dvc pull` has none): the changed setting is part of the output path.
    shutil.rmtree(workdir / ".snakemake")
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["loss_options"]["tor"]["k"] = 2.0
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    dry = snakemake(workdir, "-n", "all").stdout
    counts = job_counts(dry)
    # the student jobs holding tor and tor_multitask rerun, nothing else
    assert "train_teachers" not in counts and "corrupt" not in counts
    trained = set(re.findall(r"output: [^\n]*models/\S+/students/(\w+)/g", dry))
    assert {"tor", "tor_multitask"} <= trained and counts["train_students"] <= 2
    per_method_jobs(workdir)  # one job per method: only tor's and tor_multitask's
    counts = job_counts(snakemake(workdir, "-n", "all").stdout)
    assert counts["train_students"] == 2 and "train_teachers" not in counts


@pytest.mark.slow
def test_dvc_repro_twice_second_is_a_no_op(tmp_path, committed_params):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    copy_checkout(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(shrink(committed_params), sort_keys=False))
    shutil.rmtree(tmp_path / "results", ignore_errors=True)
    # dvc runs the stage's `snakemake` command from PATH: make it this interpreter's
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    env_run = lambda *cmd: subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env)  # noqa: E731
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@t"], ["git", "config", "user.name", "t"]):
        assert env_run(*cmd).returncode == 0
    dvc = [sys.executable, "-m", "dvc"]
    first = env_run(*dvc, "repro")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (tmp_path / "results/metrics/sinusoid.json").exists()
    assert (tmp_path / "dvc.lock").exists()
    second = env_run(*dvc, "repro")
    assert second.returncode == 0, second.stderr
    assert "didn't change, skipping" in second.stdout and "Running stage" not in second.stdout
    status = env_run(*dvc, "status")
    assert "up to date" in status.stdout


def run_image_dataset(tmp_path, committed_params, name: str, batch_size: int, **settings) -> Path:
    """The shrunk pipeline on only the image dataset ``name`` (2-epoch CNNs, 2 methods); returns its workdir."""
    params = shrink(committed_params)
    params["datasets"]["sinusoid"]["enabled"] = False
    params["methods"] = ["scratch", "tor_multitask"]
    section = params["datasets"][name]
    section.update(enabled=True, **settings)
    section["teacher"]["train"] = {"epochs": 2, "lr": 0.01, "batch_size": batch_size, "eval_every": 1}
    section["student"] = {"model": {"kind": "lenet", "width": 16},
                          "train": {"epochs": 2, "lr": 0.01, "batch_size": batch_size}}
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    snakemake(work, "all")
    return work


@pytest.mark.slow
def test_mpiigaze_pipeline_on_the_fixture(tmp_path, committed_params):
    """Download (a local file:// archive in the real format), verify, extract, prepare, two leave-one-person-out
    folds, CNN teachers and students, aggregation and figures: the real rules on a tiny tree."""
    sys.path.insert(0, str(ROOT / "tests"))
    from mpiigaze_fixture import archive, build

    from kdreg.mpiigaze import PEOPLE
    src = build(tmp_path / "src", people=PEOPLE, days=((1, 4), (2, 1)))
    tgz = archive(src.parent, tmp_path / "MPIIGaze.tar.gz")
    work = run_image_dataset(tmp_path, committed_params, "mpiigaze", 16, url=tgz.as_uri(), per_person=5,
                             folds=["p00", "p01"])
    assert (work / "resources/mpiigaze/MPIIGaze.tar.gz.sha256").exists()
    metrics = json.loads((work / "results/metrics/mpiigaze.json").read_text())
    assert "p0.3.tor_multitask.angular_deg_mean" in metrics and "p0.3.teacher.angular_deg_mean" in metrics
    table = (work / "results/tables/mpiigaze.md").read_text()
    assert "Per fold" in table and "p00" in table and "p01" in table
    assert (work / "results/figures/mpiigaze_error_vs_noise.png").stat().st_size > 0
    runs = (work / "results/evaluation/mpiigaze_runs.csv").read_text()
    assert "mpiigaze.p00" in runs and "mpiigaze.p01" in runs


@pytest.mark.slow
def test_multipie_pipeline_on_the_fixture(tmp_path, committed_params):
    sys.path.insert(0, str(ROOT / "tests"))
    from multipie_fixture import build
    build(tmp_path / "MultiPIE", subjects=(1, 2, 3, 4, 5, 6), sessions=(1,), illuminations=(0, 5))
    work = run_image_dataset(tmp_path, committed_params, "multipie", 32, root=str(tmp_path / "MultiPIE"),
                             image_size=[24, 24], test_fraction=0.34, val_fraction=0.25)
    metrics = json.loads((work / "results/metrics/multipie.json").read_text())
    assert "p0.3.tor_multitask.mae_mean" in metrics and "p0.3.teacher.mae_mean" in metrics
    assert (work / "results/figures/multipie_error_vs_noise.png").stat().st_size > 0
    assert "test mae" in (work / "results/tables/multipie.md").read_text()


def test_multipie_enabled_without_its_data_stops_before_any_job(workdir, tmp_path):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["datasets"]["multipie"].update(enabled=True, root=str(tmp_path / "nowhere"))
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    proc = snakemake(workdir, "-n", "all", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "nowhere is not a folder" in out and "licence" in out
    assert not (workdir / "data").exists()

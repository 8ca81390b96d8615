"""Command-line interface: the steps the workflow calls, each writing to the paths it is given.

    kdreg make-data --dataset sinusoid --config '{"n_train": 1000}' --out data/sinusoid/clean.npz
    kdreg corrupt --data clean.npz --kind replace --level 0.2 --seed 0 --out noisy.npz
    kdreg train-teacher --data clean.npz --noisy noisy.npz --config teacher.yaml --seed 0 --out-dir runs/t
    kdreg train-student --method tor_multitask --data clean.npz --noisy noisy.npz \
        --teacher runs/t/predictions.npz --config student.yaml --seed 0 --out-dir runs/s
    kdreg evaluate --checkpoint runs/s/model.pt --data clean.npz
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

# MKL may use fewer threads than asked when the machine is busy (MKL_DYNAMIC defaults to true), which changes the
# summation order and so the last bits of every result. Measured: a default run beside a CI job changed metrics.
# Fixed thread counts keep runs byte-identical; set before torch is imported.
os.environ.setdefault("MKL_DYNAMIC", "FALSE")
os.environ.setdefault("OMP_DYNAMIC", "FALSE")
# MKL's conditional numerical reproducibility, strict: the same bits run to run whatever the alignment of the
# buffers and the threads MKL gets (a reviewer saw 2 of 34 reruns of one teacher stack part ways; 23 stress runs
# here did not, with or without it: benchmarks/determinism_stress.py). Measured to change no result and no speed
# beyond noise; AUTO keeps the CPU's fastest code branch.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


def read_config(text_or_path: str) -> dict:
    """A run config given as a YAML/JSON file path or an inline JSON object."""
    s = text_or_path.strip()
    if s.startswith("{"):
        return json.loads(s)
    path = Path(text_or_path)
    if not path.exists():
        raise FileNotFoundError(f"config {text_or_path!r} is neither inline JSON nor an existing file")
    import yaml
    return yaml.safe_load(path.read_text()) or {}


def _out_dir(path: str, overwrite: bool) -> Path:
    out = Path(path)
    if (out / "metrics.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a finished run; choose another --out-dir or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _threads(n: int | None) -> None:
    if n:
        import torch
        torch.set_num_threads(n)


def cmd_make_data(a) -> None:
    from kdreg.datasets import build_dataset
    build_dataset(a.dataset, read_config(a.config) if a.config else {}, a.prepared).save(a.out)


def cmd_multipie(a) -> None:
    from kdreg.multipie import prepare
    prepare(a.root, a.out, tuple(a.image_size), a.crop)


def cmd_mpiigaze(a) -> None:
    from kdreg import mpiigaze as mg
    if a.step == "download":
        mg.verify_archive(mg.download(a.url or mg.URL, a.out), downloaded=True)
    elif a.step == "extract":
        mg.verify_archive(a.archive)
        mg.extract(a.archive, a.out)
    else:
        people = a.people or mg.PEOPLE
        mg.prepare(a.root, a.out, people=people, per_person=a.per_person or mg.SAMPLES_PER_PERSON)


def cmd_corrupt(a) -> None:
    from kdreg.data import Dataset
    from kdreg.noise import NoisyLabels
    if not len(a.level) == len(a.seed) == len(a.out):
        raise ValueError(f"corrupt takes one --seed and one --out per --level: got {len(a.level)} levels, "
                         f"{len(a.seed)} seeds, {len(a.out)} outputs")
    ds = Dataset.load(a.data)
    for level, seed, out in zip(a.level, a.seed, a.out):  # a group in one process: a start costs more than a set
        NoisyLabels.make(ds.y_dev, a.kind, level, seed, a.spread).save(out)


def cmd_train_teacher(a) -> None:
    from kdreg.data import Dataset
    from kdreg.jobs import save_teacher_run
    from kdreg.noise import NoisyLabels
    from kdreg.teacher import train_teacher
    _threads(a.threads)
    out = _out_dir(a.out_dir, a.overwrite)
    ds, noisy, cfg = Dataset.load(a.data), NoisyLabels.load(a.noisy), read_config(a.config)
    save_teacher_run(out, ds, noisy, a.seed, cfg, train_teacher(ds, noisy, cfg, a.seed, a.device))


def cmd_train_student(a) -> None:
    from kdreg.data import Dataset
    from kdreg.io import load_npz
    from kdreg.jobs import save_student_run
    from kdreg.noise import NoisyLabels
    from kdreg.student import train_student
    _threads(a.threads)
    out = _out_dir(a.out_dir, a.overwrite)
    ds, noisy, cfg = Dataset.load(a.data), NoisyLabels.load(a.noisy), read_config(a.config)
    t_dev = load_npz(a.teacher, ("t_dev",))["t_dev"] if a.teacher else None
    res = train_student(ds, noisy, t_dev, a.method, cfg, a.seed, a.device)
    save_student_run(out, ds, noisy, a.seed, a.method, cfg, res)


def cmd_evaluate(a) -> None:
    from kdreg.evaluation import evaluate_checkpoint
    from kdreg.io import save_json
    metrics = evaluate_checkpoint(a.checkpoint, a.data)
    if a.out:
        save_json(a.out, metrics)
    print(json.dumps(metrics, indent=2))


def _members(specs):
    from kdreg.layout import parse_member
    return [parse_member(m) for m in specs]


# The workflow passes the settings that decide how fast a group trains, not what it learns (stacking, stack
# sizes, checkpoint interval), in the environment rather than on the command line: Snakemake reruns a job whose
# command changed, and retraining every model because a checkpoint interval changed would be waste. Stacked and
# one-at-a-time training agree to float rounding (tests/test_stacked.py).
EXECUTION_ENV = "KDREG_EXECUTION"


def _execution(a, role: str) -> tuple[bool, int, int]:
    """(stacked, stack size, checkpoint interval): the flags where given, else the workflow's environment."""
    try:
        env = json.loads(os.environ.get(EXECUTION_ENV) or "{}")
    except json.JSONDecodeError as err:
        raise ValueError(f"environment variable {EXECUTION_ENV} is not JSON ({err}); unset it") from None
    stacked = a.stacked if a.stacked is not None else bool(env.get("stack", True))
    size = a.stack_size if a.stack_size is not None else int(env.get(f"{role}_stack_size", 0))
    every = a.checkpoint_every if a.checkpoint_every is not None else int(env.get("checkpoint_every", 0))
    return stacked, size, every


def cmd_train_teachers(a) -> None:
    from kdreg.jobs import run_teachers
    _threads(a.threads)
    run_teachers(a.data, a.noisy_dir, _members(a.models), read_config(a.config), a.out_dir, a.device,
                 *_execution(a, "teacher"))


def cmd_train_students(a) -> None:
    from kdreg.jobs import run_students
    if not len(a.method) == len(a.config) == len(a.out_dir):
        raise ValueError(f"train-students takes one --config and one --out-dir per --method: got {len(a.method)} "
                         f"methods, {len(a.config)} configs, {len(a.out_dir)} output directories")
    if len(set(a.method)) < len(a.method):
        raise ValueError(f"--method names a method twice: {a.method}")
    _threads(a.threads)
    run_students(a.data, a.noisy_dir, _members(a.models), {m: read_config(c) for m, c in zip(a.method, a.config)},
                 dict(zip(a.method, a.out_dir)), a.teacher_dir, a.device, *_execution(a, "student"))


def cmd_collect(a) -> None:
    from kdreg.io import atomic_path
    from kdreg.manifest import verify_group
    from kdreg.results import collect
    # Every group is checked against its manifest: a deleted or damaged run stops collection, named with the fix,
    # rather than silently dropping out of the means.
    runs = collect([run for g in a.groups for run in verify_group(g)])
    with atomic_path(a.out) as tmp:
        runs.to_csv(tmp, index=False, float_format="%.6g")


def cmd_aggregate(a) -> None:
    import shutil

    from kdreg.io import atomic_path
    from kdreg.results import aggregate
    import pandas as pd
    if a.runs_copy:
        with atomic_path(a.runs_copy) as tmp:
            pd.concat([pd.read_csv(r) for r in a.runs]).to_csv(tmp, index=False, float_format="%.6g")
    aggregate(a.runs, a.metric, a.methods, a.metrics, a.table_md, a.table_csv, a.error_csv, a.rejection_csv,
              a.error_wide_csv, a.seeds)


def cmd_fits(a) -> None:
    from kdreg.io import atomic_path
    from kdreg.results import fits
    students = dict(s.split("=", 1) for s in a.student)
    curves, points = fits(a.data, a.noisy, a.teacher, students)
    for df, path in ((curves, a.out), (points, a.points_out)):
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False, float_format="%.6g")


def _labelled_runs(specs: list[str], label: str) -> dict[str, str]:
    """``["a=x.csv", ...]`` -> ``{"a": "x.csv"}``, refusing a spec without ``=``."""
    for spec in (spec for spec in specs if "=" not in spec):
        raise ValueError(f"--runs {spec!r}: expected {label}=RUNS_CSV")
    return dict(spec.split("=", 1) for spec in specs)


def cmd_study(a) -> None:
    from kdreg.study import study
    study(_labelled_runs(a.runs, "VARIANT"), a.metric, a.csv, a.md, a.title)


def cmd_benchmark_summary(a) -> None:
    from kdreg.benchmark import summarize
    summarize(_labelled_runs(a.runs, "DATASET"), a.metric, a.long, a.csv, a.md, a.title)


PLOTS = {"error-vs-noise": "error_vs_noise", "fits": "fits", "rejection": "rejection", "study-gap": "study_gap",
         "study-rejection": "study_rejection", "study-difference": "study_difference",
         "benchmark-summary": "benchmark_summary"}


def cmd_plot(a) -> None:
    from kdreg import plots
    getattr(plots, PLOTS[a.kind])(*a.inputs, out=a.out, title=a.title)


def cmd_check(a) -> None:
    from kdreg.check import check
    lines, problems = check(a.params)
    print("\n".join(lines))
    if problems:
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    from kdreg import __version__
    p = argparse.ArgumentParser(prog="kdreg", description="Knowledge distillation for regression with noisy labels.")
    p.add_argument("--version", action="version", version=f"kdreg {__version__}")
    p.add_argument("--log", metavar="FILE", help="write the output to FILE; an error is also shown on the console")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("make-data", help="build a dataset file (train/validation/test splits)")
    s.add_argument("--dataset", default="sinusoid")
    s.add_argument("--config", help="dataset settings: a YAML/JSON file or inline JSON")
    s.add_argument("--prepared", help="MPIIGaze folds: the prepared Evaluation Subset (.npz)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_make_data)

    s = sub.add_parser("multipie", help="Multi-PIE: prepare the head-pose images of a licensed copy")
    s.add_argument("step", choices=["prepare"])
    s.add_argument("--root", required=True, help="the folder holding session01 ... session04")
    s.add_argument("--image-size", type=int, nargs=2, default=[64, 64], metavar=("H", "W"))
    s.add_argument("--crop", type=float, default=0.8, help="centre crop, as a share of the shorter side")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_multipie)

    s = sub.add_parser("mpiigaze", help="MPIIGaze: download | extract | prepare")
    s.add_argument("step", choices=["download", "extract", "prepare"])
    s.add_argument("--url", help="download: the archive's URL (default: the official one, kdreg.mpiigaze.URL)")
    s.add_argument("--archive", help="extract: the MPIIGaze.tar.gz")
    s.add_argument("--root", help="prepare: the extracted MPIIGaze folder")
    s.add_argument("--people", nargs="*", help="prepare: people to read (default all 15)")
    s.add_argument("--per-person", type=int, help="prepare: eye images per person (default: all 3000)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_mpiigaze)

    s = sub.add_parser("corrupt", help="inject label noise into the development labels")
    s.add_argument("--data", required=True)
    for arg, kind in (("--level", float), ("--seed", int), ("--out", str)):
        s.add_argument(arg, type=kind, required=True, nargs="+", help="one per noisy set")
    s.add_argument("--kind", default="replace", help="replace | gaussian | resample (see kdreg.noise)")
    s.add_argument("--spread", type=float, default=0.5)
    s.set_defaults(func=cmd_corrupt)

    def train_args(s, out_help, many: bool = False):
        """Arguments of every training command (``many``: one --config and --out-dir per method)."""
        nargs = "+" if many else None
        s.add_argument("--data", required=True, help="the dataset file (clean.npz)")
        s.add_argument("--config", required=True, nargs=nargs, help="run settings: a YAML/JSON file or inline JSON")
        s.add_argument("--device", default="auto")
        s.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        s.add_argument("--out-dir", required=True, nargs=nargs, help=out_help)

    def common_train(s):
        train_args(s, "the run directory")
        s.add_argument("--noisy", required=True)
        s.add_argument("--seed", type=int, required=True)
        s.add_argument("--overwrite", action="store_true", help="replace a finished run in --out-dir")

    s = sub.add_parser("train-teacher", help="train the teacher(s) and cache their predictions")
    common_train(s)
    s.set_defaults(func=cmd_train_teacher)

    s = sub.add_parser("train-student", help="train one student with one method")
    s.add_argument("--method", required=True, help="a method of kdreg.methods.METHODS, e.g. tor_multitask")
    s.add_argument("--teacher", help="the teacher's predictions.npz (methods that use a teacher)")
    common_train(s)
    s.set_defaults(func=cmd_train_student)

    def group_train(s, many: bool = False):
        train_args(s, "group directory; one run directory per model inside" + (" (one per method)" if many else ""),
                   many)
        s.add_argument("--noisy-dir", required=True, help="directory of the noisy labels p{level}_s{seed}.npz")
        s.add_argument("--models", nargs="+", required=True, metavar="LEVEL:SEED")
        s.add_argument("--stack", dest="stacked", action=argparse.BooleanOptionalAction, default=None,
                       help="train the group's MLPs as one stack (default), or one at a time (--no-stack)")
        s.add_argument("--stack-size", type=int, default=None, help="models per stack (0, the default: all)")
        s.add_argument("--checkpoint-every", type=int, default=None, metavar="EPOCHS",
                       help="save a resumable training state this often in OUT_DIR.resume/ (0, the default: never)")

    s = sub.add_parser("train-teachers", help="train a group of teachers (one per LEVEL:SEED)")
    group_train(s)
    s.set_defaults(func=cmd_train_teachers)

    s = sub.add_parser("train-students", help="train a group of students (one per LEVEL:SEED) of one or more "
                       "methods, all methods in one stacked model")
    s.add_argument("--method", required=True, nargs="+", help="methods of kdreg.methods.METHODS, e.g. tor_multitask")
    s.add_argument("--teacher-dir", help="the teachers' group directory (methods that use a teacher)")
    group_train(s, many=True)
    s.set_defaults(func=cmd_train_students)

    s = sub.add_parser("collect", help="gather every finished run's metrics into one CSV")
    s.add_argument("--groups", nargs="+", required=True, help="group directories")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_collect)

    s = sub.add_parser("aggregate", help="mean / std / 95%% CI tables, metrics JSON and plot data")
    s.add_argument("--runs", nargs="+", required=True, help="per-run tables (one per fold for MPIIGaze)")
    s.add_argument("--metric", default="rmse", help="the headline metric (the dataset kind's, kdreg.datasets)")
    s.add_argument("--methods", nargs="+", required=True)
    s.add_argument("--seeds", type=int, help="refuse unless every model and level has seeds 0 .. SEEDS-1")
    for name in ("metrics", "table-md", "table-csv", "error-csv", "rejection-csv"):
        s.add_argument(f"--{name}", required=True)
    s.add_argument("--error-wide-csv", help="error vs noise, one column per model (for dvc plots)")
    s.add_argument("--runs-copy", help="also copy the per-run table here (the git-tracked copy)")
    s.set_defaults(func=cmd_aggregate)

    s = sub.add_parser("fits", help="plot data of the fitted curves (1-D inputs)")
    for arg in ("--data", "--noisy", "--out", "--points-out"):
        s.add_argument(arg, required=True)
    s.add_argument("--teacher", required=True, help="a teacher run directory")
    s.add_argument("--student", nargs="+", required=True, metavar="NAME=RUN_DIR")
    s.set_defaults(func=cmd_fits)

    for name, label, helps in (
            ("study", "VARIANT", "compare variants: gap closed, rejection, tor_multitask - tor, per noise level"),
            ("benchmark-summary", "DATASET", "the benchmark suite across datasets: error relative to scratch, gap "
             "closed, mean rank, best or tied-best counts")):
        s = sub.add_parser(name, help=helps)
        s.add_argument("--runs", nargs="+", required=True, metavar=f"{label}=RUNS_CSV", help="each runs table")
        s.add_argument("--metric", default="rmse")
        s.add_argument("--csv", required=True)
        s.add_argument("--md", required=True)
        s.add_argument("--title", default="")
        if name == "benchmark-summary":
            s.add_argument("--long", required=True, help="per-dataset CSV out (--csv: across datasets)")
        s.set_defaults(func=cmd_study if name == "study" else cmd_benchmark_summary)

    s = sub.add_parser("plot", help="draw a figure from plot data")
    s.add_argument("kind", choices=sorted(PLOTS))
    s.add_argument("inputs", nargs="+")
    s.add_argument("--out", required=True)
    s.add_argument("--title", default="")
    s.set_defaults(func=cmd_plot)

    s = sub.add_parser("check", help="validate params.yaml and report which datasets are present, missing or corrupt")
    s.add_argument("--params", default="params.yaml")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("evaluate", help="recompute a checkpoint's test metrics")
    for arg in ("--checkpoint", "--data"):
        s.add_argument(arg, required=True)
    s.add_argument("--out")
    s.set_defaults(func=cmd_evaluate)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from kdreg.memory import keep_freed_memory
    keep_freed_memory()
    from kdreg.io import output_to
    with output_to(args.log) as report:
        try:
            args.func(args)
        except (ValueError, OSError) as err:  # FileNotFoundError, FileExistsError included: the user can fix these
            report(f"kdreg {args.command}: error: {err}")
            return 2
        except Exception as err:  # a bug: the traceback goes to the log, a pointer to it to the console
            if args.log is None:
                raise
            traceback.print_exc()
            report(f"kdreg {args.command}: unexpected {type(err).__name__}: {err} (traceback in {args.log})")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

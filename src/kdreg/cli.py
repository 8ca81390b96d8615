"""Command-line interface: the steps the workflow calls, each writing to the paths it is given.

    kdreg make-data --dataset sinusoid --config '{"n_train": 1000}' --out data/sinusoid/clean.npz
    kdreg corrupt --data clean.npz --kind replace --level 0.2 --seed 0 --out noisy.npz
    kdreg train-teacher --data clean.npz --noisy noisy.npz --config teacher.yaml --seed 0 --out-dir runs/t
    kdreg train-student --method tor_multitask --data clean.npz --noisy noisy.npz \
        --teacher runs/t/predictions.npz --config student.yaml --seed 0 --out-dir runs/s
    kdreg evaluate --checkpoint runs/s/model.pt --data clean.npz
"""
from __future__ import annotations

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
        try:
            return json.loads(s)
        except json.JSONDecodeError as err:
            raise ValueError(f"inline config is not valid JSON ({err})") from None
    path = Path(text_or_path)
    if not path.exists():
        raise FileNotFoundError(f"config {text_or_path!r} is neither inline JSON nor an existing file")
    import yaml
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config {path} is not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"config {path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") \
            from None
    if not isinstance(config, dict):
        raise ValueError(f"config {path} holds a YAML {type(config).__name__}, not a mapping of settings")
    return config


def _out_dir(path: str, overwrite: bool) -> Path:
    out = Path(path)
    if (out / "metrics.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a finished run; choose another --out-dir or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _new_files(paths, overwrite: bool) -> None:
    """Refuse to replace existing output files unless asked: a dataset or noisy set others learned from is work."""
    existing = [p for p in paths if Path(p).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; choose "
                              "another --out or pass --overwrite to replace it")


def _threads(n: int | None) -> None:
    """A job's ``--threads``: torch's threads, and the processes boosted trees are fitted in (kdreg.trees)."""
    if n:
        import torch

        from kdreg.trees import set_tree_workers
        torch.set_num_threads(n)
        set_tree_workers(n)


def cmd_make_data(a) -> None:
    from kdreg.datasets import build_dataset
    _new_files([a.out], a.overwrite)
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
    _new_files(a.out, a.overwrite)
    ds = Dataset.load(a.data)
    for level, seed, out in zip(a.level, a.seed, a.out):  # a group in one process: a start costs more than a set
        NoisyLabels.make(ds.y_dev, a.kind, level, seed, a.spread).save(out)


def cmd_train_teacher(a) -> None:
    from kdreg.data import Dataset
    from kdreg.jobs import save_teacher_run
    from kdreg.noise import NoisyLabels
    from kdreg.lock import locked
    from kdreg.teacher import train_teacher
    _threads(a.threads)
    with locked(a.out_dir):  # before the finished-run check: one writer per run directory (kdreg.lock)
        out = _out_dir(a.out_dir, a.overwrite)
        ds, noisy, cfg = Dataset.load(a.data), NoisyLabels.load(a.noisy), read_config(a.config)
        save_teacher_run(out, ds, noisy, a.seed, cfg, train_teacher(ds, noisy, cfg, a.seed, a.device))


def cmd_train_student(a) -> None:
    from kdreg.data import Dataset
    from kdreg.io import load_npz
    from kdreg.jobs import save_student_run
    from kdreg.noise import NoisyLabels
    from kdreg.lock import locked
    from kdreg.student import train_student
    _threads(a.threads)
    with locked(a.out_dir):  # as in cmd_train_teacher
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


def cmd_train_frontier(a) -> None:
    from kdreg.jobs import run_frontier
    if len(a.method) != len(a.config):
        raise ValueError(f"train-frontier takes one --config per --method: got {len(a.method)} methods, "
                         f"{len(a.config)} configs")
    if len(set(a.method)) < len(a.method) or len(set(a.widths)) < len(a.widths):
        raise ValueError(f"--method or --widths names one twice: {a.method}, {a.widths}")
    _threads(a.threads)
    run_frontier(a.data, a.noisy_dir, _members(a.models), {m: read_config(c) for m, c in zip(a.method, a.config)},
                 a.widths, a.teacher_dir, a.out_dir, a.device, *_execution(a, "student"))


def cmd_frontier_table(a) -> None:
    from kdreg import frontier
    if a.runs:  # derived again from a committed runs table (the results gate)
        if a.students or a.teachers or a.runs_copy:
            raise ValueError("--runs derives the tables from a runs table alone: leave out --students, --teachers "
                             "and --runs-copy")
        runs = frontier.read_runs(a.runs)
    else:
        if not (a.students and a.teachers and a.models and a.runs_copy):
            raise ValueError("frontier-table needs --students, --teachers, --models and --runs-copy (or --runs "
                             "FILE alone, to derive the tables from a runs table)")
        students, teachers = _labelled_dirs(a.students, "SOURCE"), _labelled_dirs(a.teachers, "SOURCE")
        runs = frontier.write_runs(frontier.runs_table(students, teachers, _members(a.models), a.metric), a.runs_copy)
    frontier.write(runs, a.metric, a.csv, a.equal_csv, a.equal_md, a.metrics)


def _labelled_dirs(specs: list[str], label: str) -> dict[str, list[str]]:
    """``["a=x", "a=y", "b=z"]`` -> ``{"a": ["x", "y"], "b": ["z"]}``, refusing a spec without ``=``."""
    out: dict[str, list[str]] = {}
    for spec in specs:
        if "=" not in spec:
            raise ValueError(f"{spec!r}: expected {label}=DIR")
        key, path = spec.split("=", 1)
        out.setdefault(key, []).append(path)
    return out


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


def cmd_plot(a) -> None:
    from kdreg import plots
    from kdreg.cli_parser import PLOTS
    extra = {"dataset": a.dataset} if a.dataset else {}
    try:
        getattr(plots, PLOTS[a.kind])(*a.inputs, out=a.out, title=a.title, **extra)
    except (KeyError, AttributeError, IndexError) as err:  # a column the figure draws from is not there
        raise ValueError(f"{', '.join(a.inputs)} lack{'s' if len(a.inputs) == 1 else ''} what the {a.kind} figure "
                         f"draws ({type(err).__name__}: {err}): not plot data that kdreg wrote; rerun the step "
                         "that writes it (snakemake --cores all all)") from None


def cmd_check(a) -> None:
    from kdreg.check import check
    # --params is relative to the current directory like every path given; check() reads one relative to --root
    lines, problems = check(os.path.abspath(a.params) if a.root else a.params, a.root)
    print("\n".join(lines))
    if problems:
        raise SystemExit(1)


def main(argv=None) -> int:
    from kdreg.cli_parser import build_parser
    args = build_parser().parse_args(argv)
    from kdreg.memory import keep_freed_memory
    keep_freed_memory()
    from kdreg.io import output_to
    with output_to(args.log) as report:
        try:
            globals()["cmd_" + args.command.replace("-", "_")](args)
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

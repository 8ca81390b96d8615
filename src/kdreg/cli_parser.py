"""The command line's arguments: one subcommand per pipeline step. ``kdreg <command>`` runs ``cmd_<command>`` of
:mod:`kdreg.cli` (dashes as underscores), where the step's work is."""
from __future__ import annotations

import argparse

PLOTS = {"error-vs-noise": "error_vs_noise", "fits": "fits", "rejection": "rejection", "study-gap": "study_gap",
         "study-rejection": "study_rejection", "study-difference": "study_difference",
         "benchmark-summary": "benchmark_summary", "frontier": "frontier", "frontier-summary": "frontier_summary",
         "examples": "examples"}


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
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    s = sub.add_parser("multipie", help="Multi-PIE: prepare the head-pose images of a licensed copy")
    s.add_argument("step", choices=["prepare"])
    s.add_argument("--root", required=True, help="the folder holding session01 ... session04")
    s.add_argument("--image-size", type=int, nargs=2, default=[64, 64], metavar=("H", "W"))
    s.add_argument("--crop", type=float, default=0.8, help="centre crop, as a share of the shorter side")
    s.add_argument("--out", required=True)

    s = sub.add_parser("mpiigaze", help="MPIIGaze: download | extract | prepare")
    s.add_argument("step", choices=["download", "extract", "prepare"])
    s.add_argument("--url", help="download: the archive's URL (default: the official one, kdreg.mpiigaze.URL)")
    s.add_argument("--archive", help="extract: the MPIIGaze.tar.gz")
    s.add_argument("--root", help="prepare: the extracted MPIIGaze folder")
    s.add_argument("--people", nargs="*", help="prepare: people to read (default all 15)")
    s.add_argument("--per-person", type=int, help="prepare: eye images per person (default: all 3000)")
    s.add_argument("--out", required=True)

    s = sub.add_parser("corrupt", help="inject label noise into the development labels")
    s.add_argument("--data", required=True)
    for arg, kind in (("--level", float), ("--seed", int), ("--out", str)):
        s.add_argument(arg, type=kind, required=True, nargs="+", help="one per noisy set")
    s.add_argument("--kind", default="replace", help="replace | gaussian | resample (see kdreg.noise)")
    s.add_argument("--spread", type=float, default=0.5)
    s.add_argument("--overwrite", action="store_true", help="replace existing --out files")

    def train_args(s, out_help, many: bool = False, one_out: bool = False):
        """Arguments of every training command (``many``: one --config and, unless ``one_out``, one --out-dir per
        method)."""
        nargs = "+" if many else None
        s.add_argument("--data", required=True, help="the dataset file (clean.npz)")
        s.add_argument("--config", required=True, nargs=nargs, help="run settings: a YAML/JSON file or inline JSON")
        s.add_argument("--device", default="auto")
        s.add_argument("--threads", type=int, default=None, help="CPU threads: torch's, and the processes that fit boosted trees side by side")
        s.add_argument("--out-dir", required=True, nargs=None if one_out else nargs, help=out_help)

    def common_train(s):
        train_args(s, "the run directory")
        s.add_argument("--noisy", required=True)
        s.add_argument("--seed", type=int, required=True)
        s.add_argument("--overwrite", action="store_true", help="replace a finished run in --out-dir")

    s = sub.add_parser("train-teacher", help="train the teacher(s) and cache their predictions")
    common_train(s)

    s = sub.add_parser("train-student", help="train one student with one method")
    s.add_argument("--method", required=True, help="a method of kdreg.methods.METHODS, e.g. tor_multitask")
    s.add_argument("--teacher", help="the teacher's predictions.npz (methods that use a teacher)")
    common_train(s)

    def group_train(s, many: bool = False, one_out: bool = False):
        per_method = " (one per method)" if many and not one_out else ""
        train_args(s, f"group directory; one run directory per model inside{per_method}", many, one_out)
        s.add_argument("--noisy-dir", required=True, help="directory of the noisy labels p{level}_s{seed}.npz")
        s.add_argument("--models", nargs="+", required=True, metavar="LEVEL:SEED")
        s.add_argument("--stack", dest="stacked", action=argparse.BooleanOptionalAction, default=None,
                       help="train the group's MLPs as one stack (default), or one at a time (--no-stack)")
        s.add_argument("--stack-size", type=int, default=None, help="models per stack (0, the default: all)")
        s.add_argument("--checkpoint-every", type=int, default=None, metavar="EPOCHS",
                       help="save a resumable training state this often in OUT_DIR.resume/ (0, the default: never)")

    s = sub.add_parser("train-teachers", help="train a group of teachers (one per LEVEL:SEED)")
    group_train(s)

    s = sub.add_parser("train-students", help="train a group of students (one per LEVEL:SEED) of one or more "
                       "methods, all methods in one stacked model")
    s.add_argument("--method", required=True, nargs="+", help="methods of kdreg.methods.METHODS, e.g. tor_multitask")
    s.add_argument("--teacher-dir", help="the teachers' group directory (methods that use a teacher)")
    group_train(s, many=True)

    s = sub.add_parser("train-frontier", help="the small-model frontier: students of every method at every width "
                       "(one hidden layer) for a group of (LEVEL:SEED) members")
    s.add_argument("--method", required=True, nargs="+", help="methods of kdreg.methods.METHODS, e.g. tor_multitask")
    s.add_argument("--widths", required=True, nargs="+", type=int, help="hidden-layer widths, e.g. 2 4 8")
    s.add_argument("--teacher-dir", help="the teachers' group directory (methods that use a teacher)")
    group_train(s, many=True, one_out=True)

    s = sub.add_parser("frontier-table", help="the frontier table, the equal-accuracy table and their summary")
    s.add_argument("--students", nargs="+", metavar="SOURCE=DIR", help="frontier group directories")
    s.add_argument("--teachers", nargs="+", metavar="SOURCE=DIR", help="teacher group directories")
    s.add_argument("--models", nargs="+", metavar="LEVEL:SEED", help="the frontier's members")
    s.add_argument("--runs-copy", help="write the runs the tables are made of here (the git-tracked copy)")
    s.add_argument("--runs", help="instead of the groups: derive the tables from this runs table (a --runs-copy)")
    s.add_argument("--metric", default="rmse")
    for name in ("csv", "equal-csv", "equal-md", "metrics"):
        s.add_argument(f"--{name}", required=True)

    s = sub.add_parser("collect", help="gather every finished run's metrics into one CSV")
    s.add_argument("--groups", nargs="+", required=True, help="group directories")
    s.add_argument("--out", required=True)

    s = sub.add_parser("aggregate", help="mean / std / 95%% CI tables, metrics JSON and plot data")
    s.add_argument("--runs", nargs="+", required=True, help="per-run tables (one per fold for MPIIGaze)")
    s.add_argument("--metric", default="rmse", help="the headline metric (the dataset kind's, kdreg.datasets)")
    s.add_argument("--methods", nargs="+", required=True)
    s.add_argument("--seeds", type=int, help="refuse unless every model and level has seeds 0 .. SEEDS-1")
    for name in ("metrics", "table-md", "table-csv", "error-csv", "rejection-csv"):
        s.add_argument(f"--{name}", required=True)
    s.add_argument("--error-wide-csv", help="error vs noise, one column per model (for dvc plots)")
    s.add_argument("--runs-copy", help="also copy the per-run table here (the git-tracked copy)")

    s = sub.add_parser("fits", help="plot data of the fitted curves (1-D inputs)")
    for arg in ("--data", "--noisy", "--out", "--points-out"):
        s.add_argument(arg, required=True)
    s.add_argument("--teacher", required=True, help="a teacher run directory")
    s.add_argument("--student", nargs="+", required=True, metavar="NAME=RUN_DIR")

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

    s = sub.add_parser("plot", help="draw a figure from plot data")
    s.add_argument("kind", choices=sorted(PLOTS))
    s.add_argument("inputs", nargs="+")
    s.add_argument("--out", required=True)
    s.add_argument("--title", default="")
    s.add_argument("--dataset", help="frontier: draw this dataset's rows only")

    s = sub.add_parser("check", help="validate params.yaml and report which datasets are present, missing or corrupt")
    s.add_argument("--params", default="params.yaml")
    s.add_argument("--root", help="the checkout whose data/ and models/ to check (default: the params file's folder)")

    s = sub.add_parser("evaluate", help="recompute a checkpoint's test metrics")
    for arg in ("--checkpoint", "--data"):
        s.add_argument(arg, required=True)
    s.add_argument("--out")
    return p

"""The whole reproduction against the machine: `snakemake --cores 2 all` from empty, its wall time over the
arithmetic floor of every model it trained, and where the time went, all measured in one run.

    python benchmarks/full_run_floor.py [--target all] [--params params.yaml] [--in-place] [--keep DIR]
    python benchmarks/full_run_floor.py --analyze RUN_DIR [--wall SECONDS]   # a finished run, without rerunning

The floor is the FLOP every MLP of the run did, read from the run's own files (each run's ``metrics.json`` and
``config.yaml``: teachers, students and frontier students of every dataset and variant): per fit and epoch
3 × 2·N·Σ in·out (forward, input and weight gradients of every layer, both heads of a two-headed student), N the
rows it trained on. A cross-fitted teacher's K fits train on the rows outside their fold, (K−1)/K of N; a refined
teacher's second round trains on the rows its first round kept. That FLOP at the teachers' matmul rate (kdreg's own
products, ``default_run_floor.teacher_matmul_rate``, measured before and after the run on
``pipeline.teacher_threads`` threads, the higher kept: a harsher floor) is the time no implementation could beat on
this machine. The students' FLOP are small, so their time is mostly overhead against it. CNNs (the image
datasets: ``--target digits``) count 3 × their forward conv and linear FLOP per training sample and epoch
(``kdreg.cnn.count_flops`` at the run's image size), at the float32 2048² matmul rate. Data, evaluation and
figures are left out of the floor.

Where the time went comes from Snakemake's own log of the run (``run_profile``): job-seconds per kind of job, the
critical path, and the wall time projected on 8 and 16 cores.

By default the run happens in an empty temporary directory (only the params copied). ``--in-place`` runs it in the
checkout itself, for the run whose results are committed: data/ and models/ must not exist (from empty).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from default_run_floor import rates  # noqa: E402
from run_profile import format_profile, newest_log, parse_log, profile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


ROLE_NAMES = {"teachers": "teachers", "students": "students", "frontier": "frontier students"}


def _per_row_epoch(model: dict) -> int:
    """FLOP of one training row and epoch of an MLP: 3 × 2·Σ in·out (every head counted)."""
    widths = [model["in_dim"], *model["hidden"]]
    backbone = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    return 3 * 2 * (backbone + int(model.get("heads", 1)) * widths[-1] * model["out_dim"])


def _cnn_per_row_epoch(model: dict, cache: dict) -> int:
    """FLOP of one training image and epoch of a CNN: 3 × its forward conv and linear FLOP."""
    key = json.dumps(model, sort_keys=True)
    if key not in cache:
        import torch

        from kdreg.cnn import count_flops, create_image_model
        net = create_image_model(model)
        h, w = model.get("image_size", (36, 60))
        extra = int(model.get("extra_dim", 2))
        inputs = (torch.rand(2, 1, h, w),) + ((torch.zeros(2, extra),) if extra else ())
        cache[key] = 3 * count_flops(net, *inputs)
    return cache[key]


def model_flop(run_dir: Path) -> dict:
    """FLOP of every model run under ``run_dir/models``, per role (teachers, students, frontier), with counts;
    ``cnn_flop``: the CNNs' share of it (held to the square matmul rate)."""
    roles = {r: {"flop": 0.0, "cnn_flop": 0.0, "models": 0, "fits": 0} for r in ("teachers", "students", "frontier")}
    skipped, cnn_cache = 0, {}
    for metrics_path in sorted(run_dir.glob("models/**/metrics.json")):
        parts = metrics_path.relative_to(run_dir).parts
        role = next((r for r in roles if r in parts), None)
        config = yaml.safe_load((metrics_path.parent / "config.yaml").read_text())
        model = config["resolved"]["model"]
        if role is None or model.get("kind") == "gbdt":  # boosted trees: no matmul arithmetic to hold them to
            skipped += 1
            continue
        cnn = model.get("kind", "mlp") != "mlp"
        metrics = json.loads(metrics_path.read_text())
        n = config["resolved"]["splits"]["train"]
        per_row_epoch = _cnn_per_row_epoch(model, cnn_cache) if cnn else _per_row_epoch(model)
        k, kept = 1, [1.0]
        if role == "teachers":
            k = int(config["config"].get("cross_fit", 1))
            kept += [r["kept_fraction"] for r in metrics.get("refine") or []]  # rows of each round, as a share
        # epochs_trained sums every fit of every round; each fit trains (K-1)/K of a round's rows
        rows_per_fit = [n * share * ((k - 1) / k if k > 1 else 1.0) for share in kept]
        epochs_per_fit = metrics["epochs_trained"] / (k * len(kept))
        flop = sum(per_row_epoch * rows * epochs_per_fit * k for rows in rows_per_fit)
        roles[role]["flop"] += flop
        roles[role]["cnn_flop"] += flop if cnn else 0.0
        roles[role]["models"] += 1
        networks = int(config["config"].get("ensemble_size", 5)) if config["config"].get("kind") == "ensemble" else 1
        roles[role]["fits"] += k * len(kept) * (networks if role == "teachers" else 1)
    return {"roles": roles, "flop": sum(r["flop"] for r in roles.values()),
            "cnn_flop": sum(r["cnn_flop"] for r in roles.values()), "skipped": skipped}


def run(target: str, params_path: Path, in_place: bool, keep: Path | None) -> tuple[float, Path]:
    if in_place:
        work = ROOT
        present = [d for d in ("data", "models") if (ROOT / d).exists()]
        if present:
            raise SystemExit(f"--in-place runs from empty: move {', '.join(present)} away first")
        cmd = [sys.executable, "-m", "snakemake", "--cores", "2", target]
    else:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=False)
        work = keep or Path(tempfile.mkdtemp(prefix="kdreg-full-"))
        shutil.copy(params_path, work / "params.yaml")
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2", target]
    start = time.perf_counter()
    # not -q: the log must list every job with its start and finish (run_profile reads them)
    (work / ".snakemake").mkdir(exist_ok=True)
    with open(work / ".snakemake" / "full_run_console.log", "w") as console:
        subprocess.run(cmd, cwd=work, check=True, stdout=console, stderr=subprocess.STDOUT)
    return time.perf_counter() - start, work


def report(target: str, work: Path, wall: float, rate: float, threads: int, before: dict | None,
           after: dict | None) -> str:
    counted = model_flop(work)
    square = max(before["square"], after["square"]) if before and after else rate
    mlp_flop = counted["flop"] - counted["cnn_flop"]
    floor = mlp_flop / (rate * 1e9) + counted["cnn_flop"] / (square * 1e9)
    roles = counted["roles"]
    at = (f"{mlp_flop / 1e12:.1f} TFLOP at {rate:.0f} GFLOP/s" if mlp_flop else "") + (
        f"{'; ' if mlp_flop else ''}CNNs {counted['cnn_flop'] / 1e12:.2f} TFLOP at the square matmul's "
        f"{square:.0f} GFLOP/s" if counted["cnn_flop"] else "")
    lines = ["| measure | ratio / rate | absolute |", "|---|---:|---|",
             f"| `snakemake --cores 2 {target}` from empty / FLOP floor of every model | **{wall / floor:.2f}** | "
             f"{wall:.0f} s / {floor:.0f} s ({at}) |"]
    for role, r in roles.items():
        if r["models"]:
            lines.append(f"| {ROLE_NAMES[role]}: share of the floor | {r['flop'] / counted['flop']:.1%} | "
                         f"{r['flop'] / 1e12:.2f} TFLOP: {r['models']} models, {r['fits']} fits |")
    t = roles["teachers"]
    teacher_floor = (t["flop"] - t["cnn_flop"]) / (rate * 1e9) + t["cnn_flop"] / (square * 1e9)
    if teacher_floor:
        lines.append(f"| the same wall / the teachers' floor alone (the earlier measure) | {wall / teacher_floor:.2f} | "
                     f"{teacher_floor:.0f} s |")
    if counted["skipped"]:
        lines.append(f"| runs not counted (outside teachers, students, frontier) | {counted['skipped']} | |")
    if before and after:
        lines.append(f"| floor's matmul rate: teacher products, {threads} threads | {rate:.0f} GFLOP/s | per stack "
                     "size, before / after: " + ", ".join(f"{b}: {before['per_stack'][b]:.0f} / "
                                                         f"{after['per_stack'][b]:.0f}" for b in before["per_stack"])
                     + " |")
        lines.append(f"| float32 matmul 2048², {threads} threads | {max(before['square'], after['square']):.0f} "
                     f"GFLOP/s | before / after: {before['square']:.0f} / {after['square']:.0f} |")
    jobs = parse_log(newest_log(work).read_text())
    return "\n".join(lines) + "\n\n" + format_profile(profile(jobs, cores=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="all")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--in-place", action="store_true", help="run in the checkout (data/, models/ must not exist)")
    ap.add_argument("--keep", type=Path, help="run in this new directory and keep it (default: a temporary one)")
    ap.add_argument("--analyze", type=Path, metavar="RUN_DIR", help="report on a finished run instead of running")
    ap.add_argument("--wall", type=float, help="with --analyze: the run's wall time (default: from its log)")
    args = ap.parse_args()
    from kdreg.config import load_params
    params = load_params(args.params)
    threads = params["pipeline"]["teacher_threads"]
    if args.analyze:
        saved = args.analyze / ".snakemake" / "full_run_floor.json"
        if saved.exists():  # a run this script made: its own wall time and the rates measured around it
            m = json.loads(saved.read_text())
            m["before"]["per_stack"] = {int(k): v for k, v in m["before"]["per_stack"].items()}
            m["after"]["per_stack"] = {int(k): v for k, v in m["after"]["per_stack"].items()}
            rate = max(m["before"]["teacher"], m["after"]["teacher"])
            print(report(m["target"], args.analyze, args.wall or m["wall"], rate, threads, m["before"], m["after"]))
            return
        jobs = [j for j in parse_log(newest_log(args.analyze).read_text()) if j.end is not None]
        wall = args.wall or (max(j.end for j in jobs) - min(j.start for j in jobs))
        now = rates(params)
        print(report(args.target, args.analyze, wall, now["teacher"], threads, now, now))
        return
    before = rates(params)
    wall, work = run(args.target, Path(args.params), args.in_place, args.keep)
    after = rates(params)
    # kept beside the run, so --analyze can report it again with the rates measured around it
    (work / ".snakemake" / "full_run_floor.json").write_text(json.dumps(
        {"target": args.target, "wall": wall, "before": before, "after": after}, indent=1))
    print(report(args.target, work, wall, max(before["teacher"], after["teacher"]), threads, before, after))
    if not args.in_place and args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

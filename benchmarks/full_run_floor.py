"""The whole reproduction against the machine: `snakemake --cores 2 all` from empty, its wall time over the
teachers' arithmetic floor, both measured in one run.

    python benchmarks/full_run_floor.py [--target all] [--params params.yaml] [--in-place]

The floor is the FLOP every teacher of the run did, read from the run's own files (each teacher run's
``metrics.json`` and ``config.yaml``, every dataset and variant): per fit and epoch 3 × 2·N·Σ in·out (forward,
input and weight gradients of every layer), N the rows it trained on. A cross-fitted teacher's K fits train on the
rows outside their fold, (K−1)/K of N; a refined teacher's second round trains on the rows its first round kept.
That FLOP at the teachers' matmul rate (kdreg's own products, ``default_run_floor.teacher_matmul_rate``, measured
before and after the run on ``pipeline.teacher_threads`` threads, the higher kept: a harsher floor) is the time no
implementation could beat on this machine. Students, data, evaluation and figures are left out of the floor.

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

ROOT = Path(__file__).resolve().parents[1]


def teacher_flop(run_dir: Path) -> dict:
    """FLOP of every teacher run under ``run_dir/models``, with counts for the printout."""
    total, teachers, fits = 0.0, 0, 0
    for metrics_path in sorted(run_dir.glob("models/*/*/*/teachers/*/*/metrics.json")):
        config = yaml.safe_load((metrics_path.parent / "config.yaml").read_text())
        metrics = json.loads(metrics_path.read_text())
        model, n = config["resolved"]["model"], config["resolved"]["splits"]["train"]
        widths = [model["in_dim"], *model["hidden"], model["out_dim"]]
        per_row_epoch = 3 * 2 * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        k = int(config["config"].get("cross_fit", 1))
        kept = [1.0] + [r["kept_fraction"] for r in metrics.get("refine") or []]  # rows of each round, as a share
        # epochs_trained sums every fit of every round; each fit trains (K-1)/K of a round's rows
        rows_per_fit = [n * share * ((k - 1) / k if k > 1 else 1.0) for share in kept]
        epochs_per_fit = metrics["epochs_trained"] / (k * len(kept))
        total += sum(per_row_epoch * rows * epochs_per_fit * k for rows in rows_per_fit)
        teachers += 1
        fits += k * len(kept)
    return {"flop": total, "teachers": teachers, "fits": fits}


def run(target: str, params_path: Path, in_place: bool) -> tuple[float, Path]:
    if in_place:
        work = ROOT
        present = [d for d in ("data", "models") if (ROOT / d).exists()]
        if present:
            raise SystemExit(f"--in-place runs from empty: move {', '.join(present)} away first")
        cmd = [sys.executable, "-m", "snakemake", "--cores", "2", target]
    else:
        work = Path(tempfile.mkdtemp(prefix="kdreg-full-"))
        shutil.copy(params_path, work / "params.yaml")
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2", target]
    start = time.perf_counter()
    subprocess.run(cmd + ["-q"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, work


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="all")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--in-place", action="store_true", help="run in the checkout (data/, models/ must not exist)")
    args = ap.parse_args()
    from kdreg.config import load_params
    params = load_params(args.params)
    threads = params["pipeline"]["teacher_threads"]
    before = rates(params)
    wall, work = run(args.target, Path(args.params), args.in_place)
    after = rates(params)
    rate = max(before["teacher"], after["teacher"])
    counted = teacher_flop(work)
    floor = counted["flop"] / (rate * 1e9)
    if not args.in_place:
        shutil.rmtree(work, ignore_errors=True)
    print("| measure | ratio / rate | absolute |\n|---|---:|---|")
    print(f"| `snakemake --cores 2 {args.target}` from empty / teachers' FLOP floor | **{wall / floor:.2f}** | "
          f"{wall:.0f} s / {floor:.0f} s ({counted['flop'] / 1e12:.1f} TFLOP: {counted['teachers']} teachers, "
          f"{counted['fits']} fits) |")
    print(f"| floor's matmul rate: teacher products, {threads} threads | {rate:.0f} GFLOP/s | per stack size, "
          "before / after: " + ", ".join(f"{b}: {before['per_stack'][b]:.0f} / {after['per_stack'][b]:.0f}"
                                         for b in before["per_stack"]) + " |")
    print(f"| float32 matmul 2048², {threads} threads | {max(before['square'], after['square']):.0f} GFLOP/s | "
          f"before / after: {before['square']:.0f} / {after['square']:.0f} |")


if __name__ == "__main__":
    main()

"""The default run against the machine: wall time from empty over the teachers' arithmetic floor, and stacked over
one-at-a-time student training, measured in one run.

    python benchmarks/default_run_floor.py [--params params.yaml] [--sample 2] [--skip-run]

1. The matmul rate: the teachers' own products (a hidden layer's forward, input-gradient and weight-gradient
   matmuls, features-first as kdreg.stacked runs them) on ``pipeline.teacher_threads`` threads, for one model and
   for a stack of ``teacher_stack_size``; the faster is the rate. Taken before and after the run, the higher kept
   (a harsher floor). A 2048² matmul is printed beside it for reference.
2. The default run (``snakemake --cores 2 headline``: the paper-style sinusoid study, no variants) from an empty
   directory, timed; its FLOP floor is every teacher's ``epochs_trained`` (metrics.json) × 3 × 2·N·Σ in·out (forward,
   input and weight gradients of every layer, N training samples) at that rate.
3. Students: every method of the params × every (level, seed), trained as kdreg trains them (one process, every
   method one stack, ``train_method_students``) and one model at a time (``train_student``). One at a time is
   timed on ``--sample`` (level, seed) members per method and scaled to all of them: each model alone costs the
   same whatever the others do.

Prints a markdown table: ratios first, absolute times and the rates beside them.
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

ROOT = Path(__file__).resolve().parents[1]


def teacher_matmul_rate(threads: int, hidden: int, n: int, stack: int, seconds: float = 1.5) -> float:
    """GFLOP/s of a hidden layer's three products, features first: W^T h, W g, h g^T over a stack of models."""
    import torch
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    # several operand sets, so a stack's activations are not all cache-hot as in a training step
    sets = [(torch.randn(stack, hidden, n, generator=gen), torch.randn(stack, hidden, hidden, generator=gen),
             torch.randn(stack, hidden, n, generator=gen)) for _ in range(max(2, 20 // stack))]
    flop = 3 * 2 * stack * n * hidden * hidden

    def step(k):
        h, w, g = sets[k % len(sets)]
        torch.bmm(w.transpose(1, 2), h)
        torch.bmm(w, g)
        torch.bmm(h, g.transpose(1, 2))

    for k in range(5):
        step(k)
    best = 0.0
    for _ in range(5):  # best of five windows: the machine's rate, not its noise
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            step(count)
            count += 1
        best = max(best, flop * count / (time.perf_counter() - start) / 1e9)
    return best


def square_rate(threads: int, size: int = 2048) -> float:
    import torch
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(5):
        torch.mm(a, b)
    return 5 * 2 * size ** 3 / (time.perf_counter() - start) / 1e9


def rates(params: dict) -> dict:
    pipe = params["pipeline"]
    teacher = params["datasets"]["sinusoid"]["teacher"]["model"]
    n = int(params["datasets"]["sinusoid"]["n_train"] * (1 - params["datasets"]["sinusoid"]["val_fraction"]))
    hidden = int(teacher["hidden"][1])
    per_stack = {b: teacher_matmul_rate(pipe["teacher_threads"], hidden, n, b)
                 for b in sorted({1, pipe["teacher_stack_size"] or 10})}
    return {"teacher": max(per_stack.values()), "per_stack": per_stack,
            "square": square_rate(pipe["teacher_threads"])}


def teacher_flop(run_dir: Path) -> tuple[float, int, int]:
    """(FLOP the run's teachers did at 3 × 2·N·Σ in·out per epoch, teachers, epochs trained in all)."""
    import yaml
    total, teachers, epochs = 0.0, 0, 0
    for metrics in sorted(run_dir.glob("models/sinusoid/*/*/teachers/*/*/metrics.json")):
        config = yaml.safe_load((metrics.parent / "config.yaml").read_text())
        model, n = config["resolved"]["model"], config["resolved"]["splits"]["train"]
        widths = [model["in_dim"], *model["hidden"], model["out_dim"]]
        per_epoch = 3 * 2 * n * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        trained = json.loads(metrics.read_text())["epochs_trained"]
        total += per_epoch * trained
        teachers += 1
        epochs += trained
    return total, teachers, epochs


def default_run(params_path: Path) -> tuple[float, Path]:
    """Seconds of ``snakemake --cores 2 headline`` in an empty directory holding only the params."""
    work = Path(tempfile.mkdtemp(prefix="kdreg-floor-"))
    shutil.copy(params_path, work / "params.yaml")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "2", "headline",
                    "-q"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, work


def _student_child(params_path: str, mode: str, sample: int) -> dict:
    import torch

    from kdreg.memory import keep_freed_memory
    from kdreg.config import load_params, student_config
    from kdreg.datasets import build_dataset
    from kdreg.layout import data_config
    from kdreg.noise import NoisyLabels
    from kdreg.student import train_method_students, train_student
    keep_freed_memory()
    params = load_params(params_path)
    torch.set_num_threads(params["pipeline"]["student_threads"])
    ds = build_dataset("sinusoid", data_config(params, "sinusoid"))
    noise = params["noise"]
    members = [(level, seed) for level in noise["levels"] for seed in range(params["seeds"])]
    noisies = [NoisyLabels.make(ds.y_dev, noise["kind"], level, seed, noise["spread"]) for level, seed in members]
    seeds = [seed for _, seed in members]
    configs = {m: student_config(params, "sinusoid", m) for m in params["methods"]}
    # The students learn from a fixed stand-in teacher (the clean labels): the workload is the students' alone.
    t_devs = [ds.y_dev] * len(members)
    start = time.perf_counter()
    if mode == "stacked":
        train_method_students(ds, noisies, t_devs, configs, seeds, "cpu")
        return {"seconds": time.perf_counter() - start, "models": len(members) * len(configs)}
    # one at a time: `sample` members spread over the levels, every method
    picked = [round(i * (len(members) - 1) / max(1, sample - 1)) for i in range(sample)]
    for m, cfg in configs.items():
        for i in picked:
            train_student(ds, noisies[i], t_devs[i], m, cfg, seeds[i], "cpu")
    seconds = time.perf_counter() - start
    return {"seconds": seconds * len(members) / sample, "measured": seconds, "models": len(members) * len(configs)}


def students(params_path: Path, sample: int) -> dict:
    out = {}
    for mode in ("stacked", "alone"):  # each in a fresh process
        cmd = [sys.executable, __file__, "--params", str(params_path), "--sample", str(sample), "--child", mode]
        out[mode] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--sample", type=int, default=2, help="members per method timed one at a time")
    ap.add_argument("--skip-run", action="store_true", help="students only (no pipeline run)")
    ap.add_argument("--child", choices=["stacked", "alone"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_student_child(args.params, args.child, args.sample)))
        return
    from kdreg.config import load_params
    params = load_params(args.params)
    threads = params["pipeline"]["teacher_threads"]
    before = rates(params)
    lines = []
    if not args.skip_run:
        wall, work = default_run(Path(args.params))
        after = rates(params)
        rate = max(before["teacher"], after["teacher"])
        flop, teachers, epochs = teacher_flop(work)
        floor = flop / (rate * 1e9)
        shutil.rmtree(work, ignore_errors=True)
        lines += [
            f"| default run from empty / teachers' FLOP floor | **{wall / floor:.2f}** | {wall:.0f} s / {floor:.1f} s "
            f"({flop / 1e12:.2f} TFLOP: {teachers} teachers, {epochs} epochs) |",
            f"| floor's matmul rate: teacher products, {threads} threads | {rate:.0f} GFLOP/s | per stack size, "
            f"before / after: " + ", ".join(f"{b}: {before['per_stack'][b]:.0f} / {after['per_stack'][b]:.0f}"
                                           for b in before["per_stack"]) + " |",
            f"| float32 matmul 2048², {threads} threads | {max(before['square'], after['square']):.0f} GFLOP/s | "
            f"before / after: {before['square']:.0f} / {after['square']:.0f} |"]
    st = students(Path(args.params), args.sample)
    alone, stacked = st["alone"], st["stacked"]
    lines.insert(1 if lines else 0,
                 f"| students, one at a time / stacked (all methods, one stack each, one process) | "
                 f"**{alone['seconds'] / stacked['seconds']:.1f}×** | {alone['seconds']:.0f} s / "
                 f"{stacked['seconds']:.1f} s for {stacked['models']} students ({params['pipeline']['student_threads']}"
                 f" thread; one at a time measured on {args.sample} per method, {alone['measured']:.1f} s, scaled) |")
    print("| measure | ratio / rate | absolute |\n|---|---:|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

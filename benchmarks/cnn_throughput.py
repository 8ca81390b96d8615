"""Training throughput of the image networks on synthetic data, next to the machine's matmul rate: the layout
kdreg used before (contiguous NCHW) and the one it trains in now (channels-last), in one run.

    python benchmarks/cnn_throughput.py [--threads 2] [--steps 20] [--batches 64] [--device cpu]
    python benchmarks/cnn_throughput.py --image-size 24 24 --extra-dim 0     # the digits experiment
    python benchmarks/cnn_throughput.py --image-size 24 24 --extra-dim 0 --batches 64 128 --pipeline --dataset digits

For the LeNet student and ResNet-preact-8 teacher (default: 36×60 grayscale eyes plus a 2-D head pose), each
batch size and each layout, it prints training samples per second, the FLOPs per sample (forward convs and linear
layers; a training step costs about 3× that), the achieved GFLOP/s, and its share of the float32
matrix-multiply rate (2048², measured before and after the rows; their mean is the reference). A step is exactly
the pipeline's: :func:`kdreg.trainer.fit` (fused Adam, mini-batches indexed from uint8 images, one model), in a
process that keeps freed memory as every ``kdreg`` command does (:func:`kdreg.memory.keep_freed_memory`).

``--pipeline`` adds the pipeline's way, from ``params.yaml``'s ``pipeline:`` settings: a teacher job trains on
``teacher_threads`` threads, and ``student_jobs`` student jobs run side by side on ``student_threads`` each; the
students' row sums the samples/s of those processes, run at once, against the same matmul rate (measured on
``--threads`` threads, the cores the jobs share). Each is run twice: with glibc's default allocator, which hands
freed blocks back to the kernel so every step page-faults its activations in again, and as kdreg runs them.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from kdreg import cnn
from kdreg.cnn import count_flops, create_image_model
from kdreg.losses import MSELoss
from kdreg.memory import keep_freed_memory
from kdreg.trainer import Inputs, TrainSettings, fit

LAYOUTS = (("before: eager, contiguous", torch.contiguous_format), ("kdreg now: channels-last", torch.channels_last))
NETWORKS = (("LeNet student", {"kind": "lenet"}), ("ResNet-preact-8 teacher", {"kind": "resnet_preact", "depth": 8}))


def matmul_gflops(device: torch.device, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start) / 1e9


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def synthetic(n: int, image_size, extra_dim: int, device):
    """What fit gets in the pipeline: uint8 images ``(n, H, W)`` (plus ``(n, E)`` extra inputs) and ``(n, 2)``."""
    x = torch.randint(0, 256, (n, *image_size), dtype=torch.uint8, device=device)
    if extra_dim:
        x = Inputs(x, torch.randn(n, extra_dim, device=device))
    return x, torch.randn(n, 2, device=device)


def samples_per_second(model, x, y, batch: int, device) -> float:
    """One epoch of :func:`fit` over ``x`` (``len(x) // batch`` steps) after a 3-step warm-up."""
    settings = TrainSettings(epochs=1, batch_size=batch, lr=1e-3)
    fit(model, MSELoss(), x[:3 * batch], y[:3 * batch], None, settings, seed=0)
    _sync(device)
    start = time.perf_counter()
    fit(model, MSELoss(), x, y, None, settings, seed=1)
    _sync(device)
    return len(y) / (time.perf_counter() - start)


def _one(name: str, batch: int, threads: int, steps: int, size, extra: int, keep_memory: bool) -> float:
    """Samples/s of one network at ``batch`` on ``threads`` threads, channels-last, as kdreg trains now; with
    ``keep_memory``, freed memory stays in the process as every ``kdreg`` command keeps it."""
    if keep_memory:
        keep_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = {**dict(NETWORKS)[name], "image_size": list(size), "extra_dim": extra}
    x, y = synthetic(batch * steps, size, extra, torch.device("cpu"))
    return samples_per_second(create_image_model(cfg), x, y, batch, torch.device("cpu"))


def pipeline_rows(size, extra: int, batch: int, steps: int, dataset: str | None = None) -> list[tuple]:
    """(network, batch, processes × threads, samples/s summed over the processes) the way the pipeline runs them;
    with ``dataset``, at the batch sizes its teacher and student train with in params.yaml."""
    from kdreg.config import load_params
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    pipe = params["pipeline"]
    roles = params["datasets"][dataset] if dataset else {}
    plan = (("ResNet-preact-8 teacher", "teacher", 1, int(pipe["teacher_threads"])),
            ("LeNet student", "student", max(1, int(pipe["student_jobs"])), int(pipe["student_threads"])))
    rows = []
    for name, role, procs, threads in plan:
        b = int(roles[role]["train"]["batch_size"]) if dataset else batch
        for keep, allocator in ((False, "glibc's default allocator"), (True, "freed memory kept, as kdreg runs")):
            cmd = [sys.executable, __file__, "--child", name, str(b), str(threads), str(steps), str(int(keep)),
                   "--image-size", *map(str, size), "--extra-dim", str(extra)]
            running = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(procs)]  # at once
            rates = [json.loads(p.communicate()[0]) for p in running]
            rows.append((name, b, f"{procs} × {threads} thread{'s' if threads > 1 else ''}, {allocator}",
                         sum(rates)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per row")
    ap.add_argument("--batches", type=int, nargs="+", default=[64], help="batch sizes (the pipeline's: 64)")
    ap.add_argument("--image-size", type=int, nargs=2, default=[36, 60], metavar=("H", "W"))
    ap.add_argument("--extra-dim", type=int, default=2, help="extra inputs joined to the image features (0: none)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epoch", type=int, default=0, metavar="N",
                    help="also time one full epoch over N synthetic samples at batch 64, as kdreg trains now")
    ap.add_argument("--pipeline", action="store_true",
                    help="also the pipeline's way: the teacher on teacher_threads, student_jobs students at once")
    ap.add_argument("--dataset", help="with --pipeline: the batch sizes of this params.yaml entry's teacher and "
                    "student (e.g. digits)")
    ap.add_argument("--child", nargs=5, metavar=("NETWORK", "BATCH", "THREADS", "STEPS", "KEEP"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # one process of --pipeline: print its samples/s
        name, batch, threads, steps, keep = args.child
        print(json.dumps(_one(name, int(batch), int(threads), int(steps), tuple(args.image_size), args.extra_dim,
                              keep == "1")))
        return
    keep_freed_memory()  # as every kdreg command does (kdreg.memory): the rows above the pipeline's train that way
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    size, extra = tuple(args.image_size), args.extra_dim
    peak_before = matmul_gflops(device)
    rows = []
    for name, cfg in NETWORKS:
        cfg = {**cfg, "image_size": list(size), "extra_dim": extra}
        model = create_image_model(cfg).to(device)
        probe = synthetic(2, size, extra, device)[0]
        flops = count_flops(model, *(probe.tensors if extra else (probe,)))
        n_params = sum(p.numel() for p in model.parameters())
        for batch in args.batches:
            x, y = synthetic(batch * args.steps, size, extra, device)
            for layout, memory_format in LAYOUTS:
                cnn.IMAGE_MEMORY_FORMAT = memory_format
                sps = samples_per_second(model, x, y, batch, device)
                rows.append((name, n_params, flops, batch, layout, sps))
                print(f"  {name}, batch {batch}, {layout}: {sps:,.0f} samples/s", flush=True)
        if args.epoch:
            cnn.IMAGE_MEMORY_FORMAT = torch.channels_last
            x, y = synthetic(args.epoch, size, extra, device)
            start = time.perf_counter()
            samples_per_second(model, x, y, 64, device)
            rows.append((name, n_params, flops, 64, f"one epoch of {args.epoch:,}: "
                         f"{time.perf_counter() - start:.0f} s", None))
    cnn.IMAGE_MEMORY_FORMAT = torch.channels_last
    flops_of = {r[0]: r[2] for r in rows}
    params_of = {r[0]: r[1] for r in rows}
    if args.pipeline:
        for name, batch, how, sps in pipeline_rows(size, extra, args.batches[0], 3 * args.steps, args.dataset):
            rows.append((name, params_of[name], flops_of[name], batch, f"the pipeline's way: {how}", sps))
            print(f"  {name}, the pipeline's way ({how}, batch {batch}): {sps:,.0f} samples/s", flush=True)
    peak_after = matmul_gflops(device)
    peak = (peak_before + peak_after) / 2
    print(f"\ndevice {device}, {args.threads} threads, images {size[0]}×{size[1]}, extra inputs {extra}; float32 "
          f"matmul (2048²): {peak:.1f} GFLOP/s (before the rows {peak_before:.1f}, after {peak_after:.1f})\n")
    print("| network | params | forward MFLOP/sample | batch | layout | samples/s | achieved GFLOP/s (3× fwd) | "
          "share of matmul rate |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for name, n_params, flops, batch, layout, sps in rows:
        if sps is None:
            print(f"| {name} | | | {batch} | {layout} | | | |")
            continue
        achieved = 3 * flops * sps / 1e9
        print(f"| {name} | {n_params:,} | {flops / 1e6:.1f} | {batch} | {layout} | {sps:,.0f} | {achieved:.1f} | "
              f"{achieved / peak:.0%} |")


if __name__ == "__main__":
    main()

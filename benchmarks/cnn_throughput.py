"""Training throughput of the MPIIGaze-sized networks on synthetic data, next to the machine's matmul rate.

    python benchmarks/cnn_throughput.py [--threads 2] [--steps 20] [--device cpu]

For the LeNet student and ResNet-preact-8 teacher (36×60 grayscale inputs plus head pose), batch 32 and 256, it
prints training samples per second (forward, backward, Adam step), the FLOPs per sample (forward convs and linear
layers; a training step costs about 3× that), the achieved GFLOP/s, and the float32 matrix-multiply rate that
bounds it.
"""
from __future__ import annotations

import argparse
import time

import torch

from kdreg.cnn import count_flops, create_image_model


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


def samples_per_second(model, batch: int, steps: int, device) -> float:
    x = torch.rand(batch, 1, 36, 60, device=device)
    pose = torch.randn(batch, 2, device=device)
    y = torch.randn(batch, 2, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for i in range(steps + 3):  # 3 warm-up steps
        if i == 3:
            _sync(device)
            start = time.perf_counter()
        loss = (model(x, pose) - y).pow(2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epoch", type=int, default=0, metavar="N",
                    help="also time one full epoch over N synthetic samples at batch 64 (MPIIGaze: 42000)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    peak = matmul_gflops(device)
    print(f"device {device}, {args.threads} threads; float32 matmul (2048²): {peak:.1f} GFLOP/s\n")
    print("| network | params | forward MFLOP/sample | batch | samples/s | achieved GFLOP/s (3× fwd) | share of matmul rate |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, cfg in (("LeNet student", {"kind": "lenet"}), ("ResNet-preact-8 teacher", {"kind": "resnet_preact", "depth": 8})):
        model = create_image_model(cfg).to(device)
        flops = count_flops(model, torch.rand(2, 1, 36, 60, device=device), torch.zeros(2, 2, device=device))
        n_params = sum(p.numel() for p in model.parameters())
        for batch in (32, 256):
            sps = samples_per_second(model, batch, args.steps, device)
            achieved = 3 * flops * sps / 1e9
            print(f"| {name} | {n_params:,} | {flops / 1e6:.1f} | {batch} | {sps:,.0f} | {achieved:.1f} | "
                  f"{achieved / peak:.0%} |", flush=True)
        if args.epoch:
            start = time.perf_counter()
            samples_per_second(model, 64, args.epoch // 64, device)
            print(f"|   one epoch of {args.epoch:,} samples, batch 64: {time.perf_counter() - start:.0f} s |",
                  flush=True)


if __name__ == "__main__":
    main()

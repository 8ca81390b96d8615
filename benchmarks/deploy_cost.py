"""What a deployed student costs next to its teacher: parameters, bytes of the weights (float32, and the file
torch.save writes), CPU latency per sample at batch 1 and throughput at batch 1024, on one thread.

    python benchmarks/deploy_cost.py [--inputs 1 22] [--widths 2 4 8 16 32 64] [--teacher 128 128 128]

For each input size (1: the sinusoid; 22: the widest suite table, wage) the teacher (tanh MLP, the pipeline's
hidden sizes) and a one-hidden-layer student of each width are built as the pipeline builds them
(kdreg.models.create_model; a two-headed student deploys one head, so it is the one-headed network). Weights are
random: cost depends on shapes only. Latency is the median over repeated single-sample calls under
torch.inference_mode; throughput is samples per second at batch 1024 (median of repeats). The float32 matmul rate
of the same thread, measured in the same run, is printed beside them so the figures read against the machine.
"""
from __future__ import annotations

import argparse
import io
import statistics
import time

import torch

from kdreg.models import create_model, mlp_parameters


def matmul_gflops(n: int = 512, repeats: int = 50) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e9


def _median_time(fn, repeats: int, inner: int) -> float:
    """Median over ``repeats`` of the mean time of ``inner`` calls (seconds per call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def measure(in_dim: int, hidden: list[int]) -> dict:
    torch.manual_seed(0)
    model = create_model({"kind": "mlp", "in_dim": in_dim, "out_dim": 1, "hidden": hidden}).eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    one, batch = torch.randn(1, in_dim), torch.randn(1024, in_dim)
    with torch.inference_mode():
        latency = _median_time(lambda: model(one), repeats=21, inner=200)
        per_batch = _median_time(lambda: model(batch), repeats=21, inner=5)
    return {"parameters": mlp_parameters(in_dim, hidden, 1), "bytes": buf.getbuffer().nbytes,
            "latency_us": latency * 1e6, "throughput": 1024 / per_batch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, nargs="+", default=[1, 22], help="input sizes (features)")
    ap.add_argument("--widths", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    ap.add_argument("--teacher", type=int, nargs="+", default=[128, 128, 128], help="the teacher's hidden sizes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rate = matmul_gflops()
    print(f"torch {torch.__version__}, 1 thread; float32 matmul (512²): {rate:.0f} GFLOP/s\n")
    for in_dim in args.inputs:
        rows = [("teacher " + "-".join(map(str, args.teacher)), measure(in_dim, args.teacher))]
        rows += [(f"student {w}", measure(in_dim, [w])) for w in args.widths]
        teacher = rows[0][1]
        print(f"{in_dim} input(s):\n")
        print("| model | parameters | float32 weights (bytes) | saved state_dict file (bytes) | latency, batch 1 (µs) | throughput, batch 1024 "
              "(samples/s) | teacher latency / this | this throughput / teacher's |")
        print("|---|---|---|---|---|---|---|---|")
        for name, r in rows:
            print(f"| {name} | {r['parameters']:,} | {4 * r['parameters']:,} | {r['bytes']:,} | {r['latency_us']:.1f} | {r['throughput']:,.0f} | "
                  f"{teacher['latency_us'] / r['latency_us']:.2f} | {r['throughput'] / teacher['throughput']:.1f} |")
        print()
    print(f"float32 matmul after: {matmul_gflops():.0f} GFLOP/s")


if __name__ == "__main__":
    main()

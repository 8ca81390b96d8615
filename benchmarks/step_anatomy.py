"""Where one training step's time goes, against its arithmetic: what faster kernels could still gain.

    python benchmarks/step_anatomy.py [--params params.yaml] [--steps 200] [--repeats 5]

Teacher: one step of a stack of ``pipeline.teacher_stack_size`` sinusoid teachers as the pipeline trains them
(params' architecture, the training split's rows in one full batch, MSE, fused Adam, ``kdreg.stacked`` passes) on
``pipeline.teacher_threads`` threads, against the same step's batched matrix products run alone (every layer
with more than one input and output: forward, weight gradient, input gradient). The difference is the
elementwise work: the activation and its gradient, the narrow first and last layers, the loss, Adam. If all of it
were free, the step would take its products' time: the bound on any fusion of the elementwise passes.

Student: one step of the default group's first student job (the methods ``pipeline.student_jobs`` gives it ×
levels × seeds models of the paper's student) on ``pipeline.student_threads`` threads, MSE for every method: as
one stack per method (how kdreg trains them) and as one stack of all, against single elementwise passes over one
(models, hidden, rows) activation tensor.

Losses: each method's loss (params' ``methods`` and ``loss_options``), forward and backward on the outputs of that
student job's models for one method, (models, rows, 1), on the same thread count: the part of a student step that
is the method's own.

Every time is the median of ``--repeats`` windows of ``--steps`` steps, each variant timed in turn (interleaved),
so a drift of the machine's speed touches all of them alike.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from default_run_floor import square_rate, teacher_matmul_rate  # noqa: E402
from full_run_floor import _per_row_epoch  # noqa: E402

from kdreg.config import load_params  # noqa: E402
from kdreg.losses import MSELoss, get_loss, loss_options  # noqa: E402
from kdreg.lossparts import values_checked_upstream  # noqa: E402
from kdreg.methods import get_method  # noqa: E402
from kdreg.models import TwoHeadOutput, create_model  # noqa: E402
from kdreg.stacked import StackedMLP  # noqa: E402


def _rows(params: dict) -> int:
    """The sinusoid's training rows: what one full-batch step of a teacher or a student sees."""
    sin = params["datasets"]["sinusoid"]
    return int(sin["n_train"] * (1 - sin["val_fraction"]))


def _stack(n_models: int, hidden: list[int], activation: str, seed: int) -> StackedMLP:
    torch.manual_seed(seed)
    return StackedMLP([create_model({"in_dim": 1, "out_dim": 1, "hidden": hidden, "activation": activation})
                       for _ in range(n_models)])


def _train_step(stacks: list[StackedMLP], x, y, lr: float):
    """One full-batch step over every stack: (B, N, 1) outputs, a summed per-model MSE, fused Adam."""
    opt = torch.optim.Adam([p for s in stacks for p in s.parameters()], lr=lr, fused=True)
    loss_fn = MSELoss()

    def step():
        loss = sum(loss_fn(s(x), y[: s.n_models], None).sum() for s in stacks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _products(n_models: int, widths: list[int], n: int):
    """The batched products of a stacked step, features first as kdreg.stacked runs them (random operands)."""
    gen = torch.Generator().manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        if a > 1 and b > 1:
            w, h, g, bias = (torch.randn(n_models, *shape, generator=gen) for shape in ((a, b), (a, n), (b, n), (b, 1)))
            layers.append((i > 0, w, h, g, bias))   # i > 0: the layer's input gradient is needed

    def step():
        for need_input, w, h, g, bias in layers:
            torch.baddbmm(bias, w.transpose(1, 2), h)          # forward
            torch.bmm(h, g.transpose(1, 2))                    # weight gradient
            if need_input:
                torch.bmm(w, g)                                # input gradient
    flop = sum(3 * 2 * n_models * n * w.shape[1] * w.shape[2] for _, w, *_ in layers)
    return step, flop


def _timed(variants: dict, steps: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each variant, over interleaved windows."""
    for f in variants.values():
        for _ in range(max(3, steps // 10)):
            f()
    times = {k: [] for k in variants}
    for _ in range(repeats):
        for k, f in variants.items():
            start = time.perf_counter()
            for _ in range(steps):
                f()
            times[k].append((time.perf_counter() - start) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def teacher(params: dict, steps: int, repeats: int) -> None:
    sin, pipe = params["datasets"]["sinusoid"], params["pipeline"]
    model, n_models = sin["teacher"]["model"], pipe["teacher_stack_size"] or 10
    n = _rows(params)
    threads = pipe["teacher_threads"]
    torch.set_num_threads(threads)
    widths = [1, *model["hidden"], 1]
    x = torch.linspace(-math.pi, math.pi, n).unsqueeze(1)
    y = torch.sin(x).expand(n_models, n, 1).contiguous()
    step = _train_step([_stack(n_models, model["hidden"], model["activation"], 0)], x, y, sin["teacher"]["train"]["lr"])
    products, product_flop = _products(n_models, widths, n)
    t = _timed({"step": step, "products": products}, steps, repeats)
    flop = n_models * n * _per_row_epoch({"in_dim": 1, "hidden": model["hidden"], "out_dim": 1})
    square, own = square_rate(threads), teacher_matmul_rate(threads, model["hidden"][1], n, n_models)
    print(f"\nTeacher step: a stack of {n_models} × {'-'.join(map(str, widths))} ({model['activation']}), {n} rows, "
          f"{threads} threads; 2048² matmul {square:.0f} GFLOP/s, the teachers' products {own:.0f} GFLOP/s\n")
    print("| measure | ratio | absolute |")
    print("|---|---:|---|")
    print(f"| the step / its FLOP at the teachers' product rate | **{t['step'] * own * 1e9 / flop:.2f}** | "
          f"{t['step'] * 1e3:.2f} ms / {flop / own / 1e6:.2f} ms ({flop / 1e9:.3f} GFLOP) |")
    print(f"| the step / its batched products alone | {t['step'] / t['products']:.2f} | "
          f"{t['step'] * 1e3:.2f} ms / {t['products'] * 1e3:.2f} ms ({product_flop / t['products'] / 1e9:.0f} "
          f"GFLOP/s in them) |")
    print(f"| the products alone / the step's FLOP at the teachers' product rate (every elementwise pass free) | "
          f"{t['products'] * own * 1e9 / flop:.2f} | elementwise share of the step "
          f"{1 - t['products'] / t['step']:.0%} |")


def student(params: dict, steps: int, repeats: int) -> None:
    sin, pipe = params["datasets"]["sinusoid"], params["pipeline"]
    model = sin["student"]["model"]
    jobs = max(1, pipe["student_jobs"])
    n_methods = math.ceil(len(params["methods"]) / jobs)
    per_method = len(params["noise"]["levels"]) * params["seeds"]
    n = _rows(params)
    threads = pipe["student_threads"]
    torch.set_num_threads(threads)
    x = torch.linspace(-math.pi, math.pi, n).unsqueeze(1)
    total = n_methods * per_method
    y = torch.sin(x).expand(total, n, 1).contiguous()
    lr = sin["student"]["train"]["lr"]
    per_stack = _train_step([_stack(per_method, model["hidden"], model["activation"], m) for m in range(n_methods)],
                            x, y, lr)
    one_stack = _train_step([_stack(total, model["hidden"], model["activation"], 0)], x, y, lr)
    width = model["hidden"][0]
    gen = torch.Generator().manual_seed(0)
    z, out = torch.randn(total, width, n, generator=gen), torch.empty(total, width, n)
    w, b, row = torch.randn(total, width, 1, generator=gen), torch.randn(total, width, 1, generator=gen), x.t()[None]
    passes = {
        "a scaled copy (z · 2)": lambda: torch.mul(z, 2, out=out),
        "sigmoid (tanh as 2σ(2z) − 1)": lambda: torch.sigmoid(z, out=out),
        "the first layer's broadcast outer product": lambda: torch.addcmul(b, w, row, out=out),
        "tanh's gradient": lambda: torch.ops.aten.tanh_backward(z, out),
        "a sum over the rows": lambda: z.sum(2),
    }
    t = _timed({"per_stack": per_stack, "one_stack": one_stack, **passes}, steps, repeats)
    print(f"\nStudent step: {n_methods} methods × {per_method} models of 1-{'-'.join(map(str, model['hidden']))}-1 "
          f"({model['activation']}), {n} rows, {threads} thread(s); elementwise passes over one "
          f"({total}, {width}, {n}) tensor\n")
    print("| measure | ms |")
    print("|---|---:|")
    print(f"| the step, one stack per method (as kdreg trains them) | {t['per_stack'] * 1e3:.2f} |")
    print(f"| the step, one stack of all {total} models | {t['one_stack'] * 1e3:.2f} "
          f"({t['per_stack'] / t['one_stack']:.2f}× faster) |")
    for name in passes:
        print(f"| one pass: {name} | {t[name] * 1e3:.3f} |")


def losses(params: dict, steps: int, repeats: int) -> None:
    per_method = len(params["noise"]["levels"]) * params["seeds"]
    n = _rows(params)
    torch.set_num_threads(params["pipeline"]["student_threads"])
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(per_method, n, 1, generator=gen)
    t = y + 0.1 * torch.randn(per_method, n, 1, generator=gen)           # a teacher close to the labels
    y[:, : n // 5] = 3 * torch.randn(per_method, n // 5, 1, generator=gen)   # a fifth of the labels corrupted
    calls = {}
    for name in params["methods"]:
        loss_fn = get_loss(name, **loss_options(name, params["loss_options"]))
        if hasattr(loss_fn, "fit"):
            loss_fn.fit(y, t)
        label = torch.randn(per_method, n, 1, generator=gen, requires_grad=True)
        out = (TwoHeadOutput(label, torch.randn(per_method, n, 1, generator=gen, requires_grad=True))
               if get_method(name).heads == 2 else label)

        def call(loss_fn=loss_fn, out=out):
            loss_fn(out, y, t).sum().backward()
        calls[name] = call
    with values_checked_upstream():   # as in training: the inputs are checked once, not every step
        t_ms = _timed(calls, steps, repeats)
    print(f"\nLosses: forward and backward on ({per_method}, {n}, 1) outputs, "
          f"{params['pipeline']['student_threads']} thread(s)\n")
    print("| method | ms a step |")
    print("|---|---:|")
    for name, sec in t_ms.items():
        print(f"| `{name}` | {sec * 1e3:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    params = load_params(args.params)
    teacher(params, args.steps, args.repeats)
    student(params, args.steps, args.repeats)
    losses(params, args.steps, args.repeats)


if __name__ == "__main__":
    main()

"""Are repeated teacher trainings byte-identical? Rerun the default first teacher stack in fresh processes.

    python benchmarks/determinism_stress.py --runs 20                 # 20 runs, one after another
    python benchmarks/determinism_stress.py --runs 20 --load 2        # beside 2 busy torch-matmul processes
    python benchmarks/determinism_stress.py --runs 10 --load 1 --load-duty 0.5 --perturb-heap --pad-env --trace
    python benchmarks/determinism_stress.py --runs 10 --epochs 100 --env MKL_CBWR=AUTO,STRICT   # test a fix

Each run is a new Python process that does what the pipeline's first teacher job does: the sinusoid of
``params.yaml`` (``make_sinusoid(1000, 1000, 0.2, 0)``), noise level p = 0 for seeds 0-9 (``NoisyLabels.make``)
and one stack of 10 teachers (``train_teachers(..., stacked=True, stack_size=10)``) on ``--threads`` torch
threads (2), with the environment the CLI sets before torch is imported (``MKL_DYNAMIC=FALSE``,
``OMP_DYNAMIC=FALSE``). A run reports the SHA-256 of each teacher's arrays (t_dev, t_test and every tensor of
its state dict, in a fixed order), its early-stopping epoch and its training time. The parent compares every
run with the first one, prints which teachers (seeds) differ, and exits with status 1 when any run differs.

Ways to disturb the runs (none may change a bit):
``--load K`` keeps K processes busy with float32 matmuls on the same cores (``--load-duty`` < 1: in bursts, so
the runs' threads are delayed at random moments rather than slowed 10x throughout). ``--perturb-heap`` makes
random-sized allocations before the data is built, so numpy-backed input buffers land at other alignments.
``--pad-env`` adds a random-length variable to each run's environment, which moves the main thread's stack (the
thread that does the first half of the stack's models, seeds 0-4, in every 2-thread split). ``--taskset`` pins
the runs to CPUs. ``--trace`` records per-model checksums of every layer's activations and incoming gradients,
of every parameter's gradient and value at every optimizer step, and of every evaluation (~1.3x slower), and
prints the first step and tensor where a run parts from the first one. ``--env KEY=VALUE`` sets variables in the
runs before torch is imported (e.g. ``MKL_CBWR=AUTO,STRICT``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LOAD_CODE = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
duty, period = float(sys.argv[2]), float(sys.argv[3]) / 1000
a = torch.randn(10, 200, 128); b = torch.randn(10, 128, 128)
while True:  # busy with matmuls for duty * period, then asleep for the rest of the period
    end = time.perf_counter() + duty * period
    while time.perf_counter() < end:
        torch.bmm(a, b)
    if duty < 1:
        time.sleep((1 - duty) * period)
"""


def _hash(*arrays) -> str:
    import hashlib
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _checksums(t) -> list[int]:
    """Per-model checksums of a (B, ...) float32 tensor: the sum of its bits as int32 (exact, so any changed
    bit shows, and fast enough to take at every step)."""
    import torch
    t = t.detach().contiguous()
    return t.view(t.shape[0], -1).view(torch.int32).sum(1, dtype=torch.int64).tolist()


def _install_trace(trace: list, n_models: int):
    """Record per-model checksums of each layer's output and incoming gradient, of every parameter's gradient
    and value at every optimizer step, and of each evaluation's output (hooks only; the package code runs
    unchanged apart from the forward pass, which is StackedMLP.forward's own code with recording added)."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    from kdreg.stacked import StackedMLP

    step = {}

    def record(name, t):
        if t is not None and t.dim() >= 1 and t.shape[0] == n_models:
            step[name] = _checksums(t)

    orig_forward = StackedMLP.forward

    def forward(self, x):
        if not self.training or not torch.is_grad_enabled():
            out = orig_forward(self, x)
            step.setdefault("eval", []).append(_checksums(out))
            return out
        record("x", x.expand(n_models, *x.shape) if x.dim() == 2 else x)
        h = x
        n_backbone = len(self.names) - self.n_heads
        for i in range(len(self.names)):
            z = self._linear(h, self.weights[i], self.biases[i])
            record(f"z{i}", z)
            if z.requires_grad:
                z.register_hook(lambda g, i=i: record(f"grad_z{i}", g))
            h = self.act(z) if i < n_backbone else z
            if i < n_backbone:
                record(f"h{i}", h)
        return h

    StackedMLP.forward = forward

    def pre(opt, args, kwargs):
        for group in opt.param_groups:
            for pi, p in enumerate(group["params"]):
                record(f"grad_p{pi}", p.grad)

    def post(opt, args, kwargs):
        for group in opt.param_groups:
            for pi, p in enumerate(group["params"]):
                record(f"p{pi}", p)
        trace.append(dict(step))
        step.clear()

    register_optimizer_step_pre_hook(pre)
    register_optimizer_step_post_hook(post)
    return lambda: trace.append(dict(step))  # the evaluations after the last step


def child(args) -> None:
    """One run: train the stack and print a JSON line of per-teacher hashes."""
    for kv in args.env:
        k, v = kv.split("=", 1)
        os.environ[k] = v
    # What kdreg.cli sets before torch is imported.
    os.environ.setdefault("MKL_DYNAMIC", "FALSE")
    os.environ.setdefault("OMP_DYNAMIC", "FALSE")
    if args.perturb_heap:
        keep = [bytearray(random.randrange(1, 4096)) for _ in range(random.randrange(1, 64))]  # noqa: F841
    import numpy as np
    import torch
    import yaml

    from kdreg.data import make_sinusoid
    from kdreg.noise import NoisyLabels
    from kdreg.train import train_teachers

    torch.set_num_threads(args.threads)
    params = yaml.safe_load(Path(args.params).read_text())
    s = params["datasets"]["sinusoid"]
    cfg = dict(s["teacher"])
    if args.epochs:
        cfg["train"] = {**cfg["train"], "epochs": args.epochs}
    ds = make_sinusoid(s["n_train"], s["n_test"], s["val_fraction"], s["data_seed"])
    seeds = list(range(args.stack))
    level = params["noise"]["levels"][0]
    noisies = [NoisyLabels.make(ds.y_dev, params["noise"]["kind"], level, seed, params["noise"]["spread"])
               for seed in seeds]
    trace: list = []
    finish = _install_trace(trace, len(seeds)) if args.trace else None
    start = time.perf_counter()
    res = train_teachers(ds, noisies, cfg, seeds=seeds, device="cpu", stacked=True, stack_size=args.stack)
    wall = time.perf_counter() - start
    if finish:
        finish()
    per_model = []
    for r in res:
        state = r.states[0]
        per_model.append(_hash(np.asarray(r.t_dev), np.asarray(r.t_test),
                               *(state[k].detach().cpu().numpy() for k in sorted(state))))
    out = {"per_model": per_model, "all": _hash(np.frombuffer("".join(per_model).encode(), np.uint8)),
           "best_epochs": [int(r.metrics["best_epochs"][0]) for r in res],
           "rmse": [float(r.metrics["rmse"]) for r in res], "wall_s": wall,
           "threads": torch.get_num_threads()}
    if args.trace:
        out["trace"] = trace
    print("RESULT " + json.dumps(out), flush=True)


def start_load(n: int, threads: int, duty: float, period_ms: float) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", LOAD_CODE, str(threads), str(duty), str(period_ms)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]


def first_divergence(a: list[dict], b: list[dict]):
    """(step, tensor name, differing models) of the first per-step record where trace b parts from trace a."""
    for s, (ra, rb) in enumerate(zip(a, b)):
        for name in ra:  # in the order recorded: x, z0, h0, ..., grad_z3, ..., grad_p*, p*
            if ra[name] != rb.get(name):
                return s + 1, name, [m for m, (ha, hb) in enumerate(zip(ra[name], rb.get(name, [None] * 99)))
                                     if ha != hb]
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="training runs, each in a fresh process")
    ap.add_argument("--epochs", type=int, default=0, help="epochs per run (0: params.yaml's, 1000)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per run (the pipeline's teacher_threads)")
    ap.add_argument("--stack", type=int, default=10, help="teachers (seeds 0..stack-1) in the stack")
    ap.add_argument("--load", type=int, default=0, help="busy matmul processes beside the runs")
    ap.add_argument("--load-threads", type=int, default=1, help="torch threads of each load process")
    ap.add_argument("--load-duty", type=float, default=1.0,
                    help="share of time each load process is busy (1: always; < 1: bursts of --load-period)")
    ap.add_argument("--load-period", type=float, default=20.0, help="ms per busy + idle cycle of the load")
    ap.add_argument("--perturb-heap", action="store_true", help="random allocations before each run's data")
    ap.add_argument("--pad-env", action="store_true", help="a random-length variable in each run's environment")
    ap.add_argument("--trace", action="store_true", help="per-step checksums; report where runs part")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment of the runs, set before torch is imported (repeatable)")
    ap.add_argument("--taskset", default=None, help="pin the runs to these CPUs (taskset -c LIST)")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--json", default=None, help="also write every run's result here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    cmd = [sys.executable, __file__, "--child", "--epochs", str(args.epochs), "--threads", str(args.threads),
           "--stack", str(args.stack), "--params", args.params] + [f"--env={kv}" for kv in args.env]
    cmd += ["--perturb-heap"] if args.perturb_heap else []
    cmd += ["--trace"] if args.trace else []
    if args.taskset:
        cmd = ["taskset", "-c", args.taskset] + cmd
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_DYNAMIC", "OMP_DYNAMIC")}
    load = start_load(args.load, args.load_threads, args.load_duty, args.load_period)
    results = []
    try:
        for i in range(args.runs):
            if args.pad_env:
                env["DETERMINISM_STRESS_PAD"] = "x" * random.randrange(0, 4096)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                raise RuntimeError(f"run {i} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            r = json.loads(line[0][7:])
            results.append(r)
            ref = results[0]
            diff = [m for m, (a, b) in enumerate(zip(ref["per_model"], r["per_model"])) if a != b]
            msg = f"run {i:3d}: {r['wall_s']:6.2f} s  {r['all'][:12]}  "
            msg += "same as run 0" if not diff else f"DIFFERS in teachers {diff}"
            if diff:
                msg += f"  best epochs {r['best_epochs']} vs {ref['best_epochs']}"
                if args.trace:
                    msg += f"  first divergence (step, tensor, models): {first_divergence(ref['trace'], r['trace'])}"
            print(msg, flush=True)
    finally:
        for p in load:
            p.kill()
            p.wait()
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if k != "trace"} for r in results]))
    outcomes = {}
    for r in results:
        outcomes.setdefault(r["all"], []).append(r)
    walls = sorted(r["wall_s"] for r in results)
    print(f"{len(results)} runs, {len(outcomes)} distinct outcome(s); training time median "
          f"{walls[len(walls) // 2]:.2f} s (min {walls[0]:.2f}, max {walls[-1]:.2f}); "
          f"env {args.env or '-'}, load {args.load}x{args.load_threads} threads (duty {args.load_duty}), "
          f"epochs {args.epochs or 'params'}")
    sys.exit(1 if len(outcomes) > 1 else 0)


if __name__ == "__main__":
    main()

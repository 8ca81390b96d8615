"""How much early-stopping patience does a teacher need? Train full-length teachers once, record every check, and
replay each patience offline.

    python benchmarks/teacher_patience.py                        # params.yaml's sinusoid teacher, p = 0.2 and 0.4
    python benchmarks/teacher_patience.py --losses mse huber tukey --levels 0.1 0.2 0.4 --seeds 10

One stack of ``--seeds`` teachers per (loss, level) trains for the configured epochs with no early stopping,
checking the validation criterion every ``eval_every`` epochs exactly as the pipeline's teachers do (median
Euclidean error on the noisy validation split). Because a stopped model's best epoch is final
(:class:`kdreg.trainer.BestEpochs`), stopping after P checks without improvement selects, for each teacher, the
best check among those made before it stops; the replay gives for each P: the epochs trained (share of the full
run), how many teachers keep the same best epoch as the full run, and the test RMSE (clean labels) relative to it.
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from kdreg.config import load_params
from kdreg.data import make_sinusoid
from kdreg.inputs import model_config, prepare, shared_inputs
from kdreg.losses import get_loss
from kdreg.methods import TEACHER_LOSSES
from kdreg.models import create_model
from kdreg.noise import NoisyLabels
from kdreg.seeding import derive_seed
from kdreg.stacked import StackedMLP
from kdreg.trainer import TrainSettings, fit, predict


def curves(ds, teacher: dict, loss: str, level: float, seeds: list[int], kind: str, spread: float):
    """Validation criterion and clean test RMSE of each teacher at every check: two (checks, B) arrays."""
    noisies = [NoisyLabels.make(ds.y_dev, kind, level, s, spread=spread) for s in seeds]
    preps = [prepare(ds, n, torch.device("cpu")) for n in noisies]
    settings = TrainSettings.from_dict({**teacher["train"], "patience": 0})
    mcfg = model_config(ds, teacher["model"], role="teacher")
    fit_seeds = [derive_seed(s, "teacher", 0, 0) for s in seeds]
    models = []
    for s in fit_seeds:
        torch.manual_seed(s)
        models.append(create_model(mcfg))
    stack = StackedMLP(models)
    x, y = shared_inputs(preps), torch.stack([p.y for p in preps])
    center = np.stack([p.y_scaler.center for p in preps])[:, None, :]
    scale = np.stack([p.y_scaler.scale for p in preps])[:, None, :]
    y_val = np.stack([p.y_val for p in preps])
    val_err, test_rmse, epochs = [], [], []

    def on_eval(epoch):
        pv = predict(stack, preps[0].x_val) * scale + center
        pt = predict(stack, preps[0].x_test) * scale + center
        val_err.append(np.median(np.sqrt(((pv - y_val) ** 2).sum(-1)), axis=1))
        test_rmse.append(np.sqrt(((pt - ds.y_test[None]) ** 2).sum(-1).mean(1)))
        epochs.append(epoch)

    fit(stack, get_loss(TEACHER_LOSSES[loss]), x, y, None, settings, fit_seeds, on_eval=on_eval, desc=loss)
    return np.array(epochs), np.array(val_err), np.array(test_rmse)


def replay(val_err: np.ndarray, patience: int) -> tuple[np.ndarray, np.ndarray]:
    """(index of the selected check, index of the check at which training stops) per teacher."""
    checks, n = val_err.shape
    best, stop = np.zeros(n, dtype=int), np.full(n, checks - 1)
    for b in range(n):
        err, stale = np.inf, 0
        for i in range(checks):
            if val_err[i, b] < err:
                err, best[b], stale = val_err[i, b], i, 0
            else:
                stale += 1
                if patience and stale >= patience:
                    stop[b] = i
                    break
    return best, stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--losses", nargs="+", default=["mse"])
    ap.add_argument("--levels", nargs="+", type=float, default=[0.2, 0.4])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--patience", nargs="+", type=int, default=[3, 5, 10, 20, 30, 50])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    params = load_params(a.params)
    cfg = params["datasets"]["sinusoid"]
    ds = make_sinusoid(cfg["n_train"], cfg["n_test"], cfg["val_fraction"], cfg["data_seed"])
    print(f"{'loss':6} {'p':>4} {'patience':>8} {'epochs':>8} {'share':>6} {'same best':>9} {'test rmse / full':>16}")
    for loss in a.losses:
        for level in a.levels:
            t0 = time.perf_counter()
            teacher = copy.deepcopy(cfg["teacher"])
            epochs, val_err, test = curves(ds, teacher, loss, level, list(range(a.seeds)), params["noise"]["kind"],
                                           params["noise"]["spread"])
            full_best, _ = replay(val_err, 0)
            cols = np.arange(val_err.shape[1])
            full = test[full_best, cols]
            print(f"# {loss} p={level}: full run {time.perf_counter() - t0:.0f} s; best epochs {epochs[full_best].tolist()}")
            for p in a.patience:
                best, stop = replay(val_err, p)
                trained = epochs[stop]
                print(f"{loss:6} {level:4.2f} {p:8d} {trained.mean():8.0f} {trained.mean() / epochs[-1]:6.2f} "
                      f"{(best == full_best).sum():>5d}/{len(best):<3d} {np.mean(test[best, cols] / full):16.3f}")


if __name__ == "__main__":
    main()

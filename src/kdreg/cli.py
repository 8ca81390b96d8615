"""Command-line interface: the steps the workflow calls, each writing to the paths it is given.

    kdreg make-data --dataset sinusoid --config '{"n_train": 1000}' --out data/sinusoid/clean.npz
    kdreg corrupt --data clean.npz --kind replace --level 0.2 --seed 0 --out noisy.npz
    kdreg train-teacher --data clean.npz --noisy noisy.npz --config teacher.yaml --seed 0 --out-dir runs/t
    kdreg train-student --method tor_multitask --data clean.npz --noisy noisy.npz \
        --teacher runs/t/predictions.npz --config student.yaml --seed 0 --out-dir runs/s
    kdreg evaluate --checkpoint runs/s/model.pt --data clean.npz
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kdreg.config import read_config


def _out_dir(path: str, overwrite: bool) -> Path:
    out = Path(path)
    if (out / "metrics.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a finished run; choose another --out-dir or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _threads(n: int | None) -> None:
    if n:
        import torch
        torch.set_num_threads(n)


def cmd_make_data(a) -> None:
    from kdreg.data import make_sinusoid
    cfg = read_config(a.config) if a.config else {}
    if a.dataset != "sinusoid":
        raise ValueError(f"make-data knows the dataset 'sinusoid'; got {a.dataset!r}")
    keys = {"n_train", "n_test", "val_fraction", "data_seed"}
    ds = make_sinusoid(**{("seed" if k == "data_seed" else k): v for k, v in cfg.items() if k in keys})
    ds.save(a.out)


def cmd_corrupt(a) -> None:
    from kdreg.data import Dataset
    from kdreg.noise import NoisyLabels
    ds = Dataset.load(a.data)
    NoisyLabels.make(ds.y_dev, a.kind, a.level, a.seed, a.spread).save(a.out)


def _save_run(out: Path, kind: str, state: dict, config: dict, metrics: dict, **arrays) -> None:
    from kdreg.io import provenance, save_checkpoint, save_json, save_npz, save_yaml
    prov = provenance()
    save_yaml(out / "config.yaml", {**state["run"], "config": config, "provenance": prov})
    save_checkpoint(out / "model.pt", {**state, "kind": kind, "config": config, "provenance": prov})
    save_npz(out / "predictions.npz", **arrays)
    save_json(out / "metrics.json", metrics)  # written last: its presence marks the run finished


def cmd_train_teacher(a) -> None:
    from kdreg.data import Dataset
    from kdreg.noise import NoisyLabels
    from kdreg.train import train_teacher
    _threads(a.threads)
    out = _out_dir(a.out_dir, a.overwrite)
    ds, noisy, cfg = Dataset.load(a.data), NoisyLabels.load(a.noisy), read_config(a.config)
    res = train_teacher(ds, noisy, cfg, a.seed, a.device)
    run = {"dataset": ds.name, "noise_kind": noisy.kind, "noise_level": noisy.level, "seed": a.seed}
    state = {"run": run, "model_config": res.model_config, "states": res.states,
             "y_scaler": res.y_scaler.to_dict(), "x_scaler": res.x_scaler.to_dict() if res.x_scaler else None}
    _save_run(out, "teacher", state, cfg, {**run, **res.metrics}, t_dev=res.t_dev, t_test=res.t_test)


def cmd_train_student(a) -> None:
    from kdreg.data import Dataset
    from kdreg.io import load_npz
    from kdreg.models import TwoHeadOutput
    from kdreg.noise import NoisyLabels
    from kdreg.train import train_student
    _threads(a.threads)
    out = _out_dir(a.out_dir, a.overwrite)
    ds, noisy, cfg = Dataset.load(a.data), NoisyLabels.load(a.noisy), read_config(a.config)
    t_dev = load_npz(a.teacher, ("t_dev",))["t_dev"] if a.teacher else None
    res = train_student(ds, noisy, t_dev, a.method, cfg, a.seed, a.device)
    run = {"dataset": ds.name, "noise_kind": noisy.kind, "noise_level": noisy.level, "seed": a.seed,
           "method": a.method}
    state = {"run": run, "model_config": res.model_config, "states": [res.state],
             "y_scaler": res.y_scaler.to_dict(), "x_scaler": res.x_scaler.to_dict() if res.x_scaler else None}
    pred = res.test_pred
    arrays = {"label": pred.label, "teacher": pred.teacher} if isinstance(pred, TwoHeadOutput) else {"label": pred}
    _save_run(out, "student", state, cfg, {**run, **res.metrics}, **arrays)


def cmd_evaluate(a) -> None:
    import numpy as np
    import torch

    from kdreg.data import Dataset, Standardizer
    from kdreg.io import load_checkpoint, save_json
    from kdreg.models import TwoHeadOutput, create_model, select_head
    from kdreg.train import predict, task_metrics
    ckpt, ds = load_checkpoint(a.checkpoint), Dataset.load(a.data)
    if ckpt["run"]["dataset"] != ds.name:
        raise ValueError(f"{a.checkpoint} was trained on {ckpt['run']['dataset']!r}, not on {ds.name!r} ({a.data})")
    y_scaler = Standardizer.from_dict(ckpt["y_scaler"])
    x = ds.x_test if ckpt["x_scaler"] is None else Standardizer.from_dict(ckpt["x_scaler"]).transform(ds.x_test)
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    preds = []
    for state in ckpt["states"]:
        model = create_model(ckpt["model_config"])
        model.load_state_dict(state)
        preds.append(predict(model, x))
    if isinstance(preds[0], TwoHeadOutput):
        out = TwoHeadOutput(*(y_scaler.inverse(np.mean([p[h] for p in preds], axis=0)) for h in range(2)))
        pred = select_head(out, ckpt["config"].get("predict_head", "label"))
    else:
        pred = y_scaler.inverse(np.mean(preds, axis=0))
    metrics = {**ckpt["run"], **task_metrics(pred, ds.y_test, ds.task)}
    if a.out:
        save_json(a.out, metrics)
    print(json.dumps(metrics, indent=2))


def build_parser() -> argparse.ArgumentParser:
    from kdreg import __version__
    from kdreg.losses import METHODS
    from kdreg.noise import KINDS
    p = argparse.ArgumentParser(prog="kdreg", description="Knowledge distillation for regression with noisy labels.")
    p.add_argument("--version", action="version", version=f"kdreg {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("make-data", help="build a dataset file (train/validation/test splits)")
    s.add_argument("--dataset", default="sinusoid")
    s.add_argument("--config", help="dataset settings: a YAML/JSON file or inline JSON")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_make_data)

    s = sub.add_parser("corrupt", help="inject label noise into the development labels")
    s.add_argument("--data", required=True)
    s.add_argument("--kind", choices=KINDS, default="replace")
    s.add_argument("--level", type=float, required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--spread", type=float, default=0.5)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_corrupt)

    def common_train(s):
        s.add_argument("--data", required=True)
        s.add_argument("--noisy", required=True)
        s.add_argument("--config", required=True, help="run settings: a YAML/JSON file or inline JSON")
        s.add_argument("--seed", type=int, required=True)
        s.add_argument("--device", default="auto")
        s.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        s.add_argument("--out-dir", required=True)
        s.add_argument("--overwrite", action="store_true", help="replace a finished run in --out-dir")

    s = sub.add_parser("train-teacher", help="train the teacher(s) and cache their predictions")
    common_train(s)
    s.set_defaults(func=cmd_train_teacher)

    s = sub.add_parser("train-student", help="train one student with one method")
    s.add_argument("--method", required=True, choices=list(METHODS))
    s.add_argument("--teacher", help="the teacher's predictions.npz (methods that use a teacher)")
    common_train(s)
    s.set_defaults(func=cmd_train_student)

    s = sub.add_parser("evaluate", help="recompute a checkpoint's test metrics")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", required=True)
    s.add_argument("--out")
    s.set_defaults(func=cmd_evaluate)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"kdreg {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The pipeline's training jobs: a group of (noise level, seed) models of one kind, trained in one process
(stacked, see :mod:`kdreg.stacked`, where the architecture allows).

Each model gets its own run directory ``p{level}_s{seed}/`` holding ``config.yaml`` (frozen config, seed, git
commit, package versions), ``model.pt``, ``predictions.npz`` and ``metrics.json`` (written last: its presence
marks the run finished). A job holds its groups' locks (:mod:`kdreg.lock`) from before it reads anything until it
ends, so a group never has two writers.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from kdreg import layout
from kdreg.data import Dataset
from kdreg.io import load_npz, provenance, save_checkpoint, save_json, save_npz, save_yaml
from kdreg.lock import locked
from kdreg.manifest import verify_group, write_manifest
from kdreg.models import TwoHeadOutput
from kdreg.noise import NoisyLabels


def resolved(ds: Dataset, model_config: dict, states: list[dict], networks: int = 1) -> dict:
    """What the params left to the data, as this run resolved it: the input columns, the split sizes and the
    model's architecture and size (``config.yaml``'s ``resolved``; ``kdreg check`` prints the same). An ensemble
    teacher deploys its ``networks`` networks: its size counts them all."""
    n_inputs = int(np.prod(ds.x_dev.shape[1:]))
    return {"features": list(ds.feature_names) if ds.feature_names is not None else f"{n_inputs} inputs",
            "splits": {"train": int((~ds.val).sum()), "val": int(ds.val.sum()), "test": int(len(ds.y_test))},
            "model": dict(model_config),
            "parameters": networks * int(sum(v.numel() for v in states[0].values()))}


def save_run(out: Path, kind: str, run: dict, config: dict, result, metrics: dict, arrays: dict,
             ds: Dataset) -> None:
    """Write one finished run; ``result`` is a TeacherResult or StudentResult."""
    out = Path(out)
    prov = provenance()
    states = result.states if hasattr(result, "states") else [result.state]
    from kdreg.teacher_kinds import deployed_networks
    networks = deployed_networks(config, metrics) if kind == "teacher" else 1
    save_yaml(out / "config.yaml", {**run, "config": config, "resolved": resolved(ds, result.model_config, states,
                                                                                  networks),
                                    "provenance": prov})
    save_checkpoint(out / "model.pt", {
        "kind": kind, "run": run, "config": config, "provenance": prov, "model_config": result.model_config,
        "states": states, "head": metrics.get("head"), "y_scaler": result.y_scaler.to_dict(),
        "x_scaler": result.x_scaler.to_dict() if result.x_scaler is not None else None})
    save_npz(out / "predictions.npz", **arrays)
    save_json(out / "metrics.json", {**run, **metrics})


def _run(ds: Dataset, noisy: NoisyLabels, seed: int, model: str) -> dict:
    """What identifies a run in its config, checkpoint and metrics."""
    return {"dataset": ds.name, "noise_kind": noisy.kind, "noise_level": noisy.level, "seed": seed, "model": model}


def save_teacher_run(out, ds: Dataset, noisy: NoisyLabels, seed: int, config: dict, res) -> None:
    save_run(out, "teacher", _run(ds, noisy, seed, "teacher"), config, res, res.metrics,
             {"t_dev": res.t_dev, "t_test": res.t_test}, ds)


def save_student_run(out, ds: Dataset, noisy: NoisyLabels, seed: int, method: str, config: dict, res) -> None:
    run = _run(ds, noisy, seed, method)
    pred = res.test_pred
    arrays = {"label": pred.label, "teacher": pred.teacher} if isinstance(pred, TwoHeadOutput) else {"label": pred}
    save_run(out, "student", run, config, res, res.metrics, arrays, ds)


def _resume_dir(out_dir: str) -> Path:
    out = Path(out_dir)
    return out.parent / f"{out.name}.resume"


def _load_member(noisy_dir: str, level: float, seed: int) -> NoisyLabels:
    path = Path(noisy_dir) / f"{layout.member_name(level, seed)}.npz"
    noisy = NoisyLabels.load(path)
    if layout.level_tag(noisy.level) != layout.level_tag(level) or noisy.seed != seed:
        raise ValueError(f"{path} holds noise at level {noisy.level}, seed {noisy.seed}, not {level}, {seed}; "
                         "delete it and rerun the noise step")
    return noisy


def run_teachers(data: str, noisy_dir: str, members: list[tuple[float, int]], config: dict, out_dir: str,
                 device: str = "auto", stacked: bool = True, stack_size: int = 0,
                 checkpoint_every: int = 0) -> None:
    """Train the teacher of every (level, seed) in ``members`` (stacked where possible), cache its predictions.

    With ``checkpoint_every`` > 0 the training state is saved in ``{out_dir}.resume/`` (beside the output, which
    Snakemake clears before a rerun) and a rerun of a killed job resumes from it."""
    from kdreg.teacher import train_teachers
    from kdreg.trainer import ResumeDir
    with locked(out_dir):  # first: one writer per group (kdreg.lock)
        ds = Dataset.load(data)
        noisies = [_load_member(noisy_dir, level, seed) for level, seed in members]
        resume = ResumeDir(_resume_dir(out_dir), checkpoint_every)
        results = train_teachers(ds, noisies, config, [seed for _, seed in members], device, stacked, stack_size,
                                 resume)
        for (level, seed), noisy, res in zip(members, noisies, results):
            save_teacher_run(Path(out_dir) / layout.member_name(level, seed), ds, noisy, seed, config, res)
        write_manifest(out_dir)  # last: a group without it is unfinished
        shutil.rmtree(_resume_dir(out_dir), ignore_errors=True)  # every run is saved: the states are spent


def run_students(data: str, noisy_dir: str, members: list[tuple[float, int]], configs: dict[str, dict],
                 out_dirs: dict[str, str], teacher_dir: str | None, device: str = "auto", stacked: bool = True,
                 stack_size: int = 0, checkpoint_every: int = 0) -> None:
    """Train one student of every method of ``configs`` (``{method: config}``) for every (level, seed) in
    ``members`` from the cached teacher predictions, all methods in one stacked model
    (:func:`kdreg.student.train_method_students`); method ``m``'s runs go to ``out_dirs[m]``. Resumable as in
    :func:`run_teachers` (the state beside the first output directory)."""
    from kdreg.student import train_method_students
    from kdreg.trainer import ResumeDir
    with locked(*out_dirs.values()):  # first: one writer per group (kdreg.lock)
        ds, noisies, t_devs = _load_group(data, noisy_dir, members, configs, teacher_dir)
        first = next(iter(out_dirs.values()))
        resume = ResumeDir(_resume_dir(first), checkpoint_every)
        results = train_method_students(ds, noisies, t_devs, configs, [seed for _, seed in members], device, stacked,
                                        stack_size, resume)
        for method, out_dir in out_dirs.items():
            for (level, seed), noisy, res in zip(members, noisies, results[method]):
                save_student_run(Path(out_dir) / layout.member_name(level, seed), ds, noisy, seed, method,
                                 configs[method], res)
            write_manifest(out_dir)
        shutil.rmtree(_resume_dir(first), ignore_errors=True)


def _load_group(data: str, noisy_dir: str, members: list[tuple[float, int]], configs: dict[str, dict],
                teacher_dir: str | None) -> tuple:
    """(dataset, each member's noisy labels, each member's teacher predictions or None where no method of
    ``configs`` reads the teacher)."""
    from kdreg.methods import get_method
    ds = Dataset.load(data)
    readers = [m for m in configs if get_method(m).uses_teacher]
    if readers and not teacher_dir:
        raise ValueError(f"methods {readers} need the teacher's group directory (--teacher-dir)")
    noisies = [_load_member(noisy_dir, level, seed) for level, seed in members]
    if readers:
        verify_group(teacher_dir)  # a damaged teacher is named here, with the fix, not met as a pickle error
    t_devs = [load_npz(Path(teacher_dir) / layout.member_name(level, seed) / "predictions.npz", ("t_dev",))["t_dev"]
              if readers else None for level, seed in members]
    return ds, noisies, t_devs


def run_frontier(data: str, noisy_dir: str, members: list[tuple[float, int]], configs: dict[str, dict],
                 widths: list[int], teacher_dir: str | None, out_dir: str, device: str = "auto",
                 stacked: bool = True, stack_size: int = 0, checkpoint_every: int = 0) -> None:
    """The small-model frontier's students (:mod:`kdreg.frontier` reads them): every method of ``configs`` with one hidden
    layer of each width, one per member, width by width, each width's methods as one stacked model (widths apart:
    a stack runs until its slowest model stops, and the narrowest train longest). Runs go to
    ``{out_dir}/w{width}/{method}/p{level}_s{seed}/``; their metrics add the width and the deployed parameter
    count (one head: :func:`kdreg.models.mlp_parameters`)."""
    from kdreg.config import width_config
    from kdreg.models import mlp_parameters
    from kdreg.student import train_method_students
    from kdreg.trainer import ResumeDir
    with locked(out_dir):  # first: one writer per group (kdreg.lock)
        ds, noisies, t_devs = _load_group(data, noisy_dir, members, configs, teacher_dir)
        resume = ResumeDir(_resume_dir(out_dir), checkpoint_every)  # one state file per width (its configs' key)
        for width in widths:
            wconfigs = {m: width_config(c, width) for m, c in configs.items()}
            results = train_method_students(ds, noisies, t_devs, wconfigs, [seed for _, seed in members], device,
                                            stacked, stack_size, resume)
            for method, runs in results.items():
                for (level, seed), noisy, res in zip(members, noisies, runs):
                    mc = res.model_config
                    res.metrics.update(width=int(width),
                                       parameters=mlp_parameters(mc["in_dim"], mc["hidden"], mc["out_dim"]))
                    save_student_run(Path(out_dir) / f"w{width}" / method / layout.member_name(level, seed), ds,
                                     noisy, seed, method, wconfigs[method], res)
        write_manifest(out_dir)  # last: a group without it is unfinished
        shutil.rmtree(_resume_dir(out_dir), ignore_errors=True)

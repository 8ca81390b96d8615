"""Shared fixtures: the committed params.yaml shrunk to a tiny CPU run of the real pipeline."""
import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def shrink(params: dict) -> dict:
    """2 noise levels, 2 seeds, 3 methods, a 200-sample sinusoid (no other dataset) and a few dozen epochs; no
    variants, no benchmark suite; a frontier of two widths at the default params' teachers."""
    p = copy.deepcopy(params)
    p.update(device="cpu", seeds=2, methods=["scratch", "tor", "tor_multitask"], variants={}, studies={},
             benchmark={"enabled": False})
    p["frontier"] = {"enabled": True, "variants": ["default"], "widths": [2, 8], "methods": ["scratch", "tor_multitask"],
                     "levels": [0.3], "seeds": 2}
    p["noise"]["levels"] = [0.0, 0.3]
    p["figures"] = {"fits_level": 0.3, "fits_seed": 1}
    for name, cfg in p["datasets"].items():  # the sinusoid only: image experiments have tests of their own
        cfg["enabled"] = name == "sinusoid"
    s = p["datasets"]["sinusoid"]
    s.update(n_train=200, n_test=100)
    s["teacher"]["model"]["hidden"] = [32, 32]
    s["teacher"]["train"].update(epochs=60)
    s["student"]["train"].update(epochs=60)
    return p


@pytest.fixture
def committed_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture
def workdir(tmp_path, committed_params):
    """A directory holding a shrunk params.yaml, where Snakemake runs with the repository's Snakefile."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(shrink(committed_params), sort_keys=False))
    return tmp_path


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "params.yaml"), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def copy_checkout(dest: Path) -> None:
    """The files a user's clone has (tracked by git), for runs that need a repository of their own."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def rule_kind(name: str) -> str:
    """A rule's kind: every job that trains or makes data is a rule of its own, named kind.for-whom[.detail].key
    (``train_teachers.sinusoid-teacher_tukey.g0.1a2b3c4d``): ``train_teachers``."""
    return name.split(".", 1)[0]


def sinusoid_group(members):
    """A 150-sample sinusoid and its ``replace`` noisy labels for each (level, seed) member, on one thread: what
    the stacked-training tests compare stacked and one-at-a-time training on."""
    import torch

    from kdreg.data import make_sinusoid
    from kdreg.noise import NoisyLabels
    torch.set_num_threads(1)
    ds = make_sinusoid(n_train=150, n_test=50, seed=0)
    return ds, [NoisyLabels.make(ds.y_dev, "replace", p, s) for p, s in members], [s for _, s in members]

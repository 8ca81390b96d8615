"""Where the pipeline puts things, and how models are grouped into jobs.

One definition shared by the Snakefile and the package, so a path is never spelled twice.

    data/{dataset}/clean.npz                                   the dataset (train/val/test splits)
    data/{dataset}/noisy/{kind}_p{level}_s{seed}.npz           noisy development labels + corruption mask
    models/{dataset}/{kind}/teachers/g{group}/p{level}_s{seed}/            one teacher run
    models/{dataset}/{kind}/students/{method}/g{group}/p{level}_s{seed}/   one student run
    results/{metrics,tables,plots,figures,evaluation,logs}/    small, git-tracked outputs (logs ignored)
"""
from __future__ import annotations

from kdreg.config import seeds as seed_list


def level_tag(level: float) -> str:
    """``0.2 -> "0.2"``, ``0.0 -> "0"``: the shortest exact spelling, used in paths and metric keys."""
    return f"{float(level):g}"


def member_name(level: float, seed: int) -> str:
    return f"p{level_tag(level)}_s{int(seed)}"


def parse_member(spec: str) -> tuple[float, int]:
    """``"0.2:3" -> (0.2, 3)``: one (noise level, seed) pair of a group, as the CLI receives it."""
    try:
        level, seed = spec.split(":")
        return float(level), int(seed)
    except ValueError:
        raise ValueError(f"bad model spec {spec!r}: expected LEVEL:SEED such as 0.2:3") from None


def member_spec(level: float, seed: int) -> str:
    return f"{level_tag(level)}:{int(seed)}"


def groups(params: dict) -> list[list[tuple[float, int]]]:
    """All (noise level, seed) pairs, cut into jobs of ``pipeline.group_size`` models.

    Models in one group share architecture and method, so one process trains them all and pays start-up
    (importing torch, reading data) once. Teachers and students use the same cut, so student group g needs only
    teacher group g.
    """
    members = [(float(level), seed) for level in params["noise"]["levels"] for seed in seed_list(params)]
    size = int(params["pipeline"]["group_size"]) or len(members)
    return [members[i:i + size] for i in range(0, len(members), size)]


def enabled_datasets(params: dict) -> list[str]:
    return [name for name, cfg in params["datasets"].items() if cfg.get("enabled")]


def clean_path(dataset: str) -> str:
    return f"data/{dataset}/clean.npz"


def noisy_path(dataset: str, kind: str, level: float, seed: int) -> str:
    return f"data/{dataset}/noisy/{kind}_{member_name(level, seed)}.npz"


def teacher_group_dir(dataset: str, kind: str, group: int) -> str:
    return f"models/{dataset}/{kind}/teachers/g{group}"


def student_group_dir(dataset: str, kind: str, method: str, group: int) -> str:
    return f"models/{dataset}/{kind}/students/{method}/g{group}"

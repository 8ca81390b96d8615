"""Where the pipeline puts things, and how models are grouped into jobs.

One definition shared by the Snakefile and the package, so a path is never spelled twice:

    data/{dataset}/{data_key}/clean.npz                                the dataset (train / validation / test)
    data/{dataset}/{data_key}/{noise}/p{level}_s{seed}.npz             noisy labels + corruption mask
    models/{dataset}/{data_key}/{noise}/teachers/g{group}-{key}/p{level}_s{seed}/          one teacher run
    models/{dataset}/{data_key}/{noise}/students/{method}/g{group}-{key}/p{level}_s{seed}/ one student run
    models/{dataset}/{data_key}/{noise}/frontier/g{group}-{key}/w{width}/{method}/p{level}_s{seed}/  one frontier run
    models/{dataset}/{data_key}/{noise}/runs-{key}.csv                 every current run's metrics, one row each

``{noise}`` is ``{kind}_spread{spread}``. Each ``*_key`` is a short hash of everything that determines the output
(its config, its group's members, the teacher it learned from). A changed parameter therefore changes the path,
and the job is rerun even where Snakemake has no record of the old run, e.g. in a fresh clone after `dvc pull`:
the targets require the runs table, whose key covers every group, so a change reaches the targets through it.
A run never overwrites a run made with other settings.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from kdreg.config import base_name, enabled_datasets, student_config, teacher_config  # noqa: F401  (re-exported)
from kdreg.io import config_key  # noqa: F401  (the workflow names its keys through layout)
from kdreg.config import seeds as seed_list
from kdreg.noise import level_tag

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


def split_evenly(items: list, parts: int) -> list[list]:
    """``items`` in order, cut into at most ``parts`` runs of sizes differing by at most one."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    cuts = [i * size + min(i, extra) for i in range(parts + 1)]
    return [items[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def units(params: dict, dataset: str) -> list[str]:
    """The independently trained units of a dataset: the dataset itself, or one per leave-one-person-out fold
    (``mpiigaze.p00`` ...)."""
    from kdreg.datasets import kind_of
    cfg = params["datasets"][dataset]
    folds = kind_of(dataset, cfg).folds
    return [f"{dataset}.{fold}" for fold in folds(cfg)] if folds else [dataset]


def prepared_path(params: dict, dataset: str) -> str | None:
    """The prepared file a dataset's units are built from (None for a kind built directly), keyed by the settings
    that select and shape its samples."""
    from kdreg.datasets import kind_of
    base = base_name(dataset)
    cfg = params["datasets"][base]
    kind = kind_of(base, cfg)
    if not kind.prepared:
        return None
    return f"data/{base}/prepared-{config_key({k: cfg.get(k) for k in kind.prepared})}.npz"


def data_config(params: dict, unit: str) -> dict:
    """The settings that make the unit's dataset file (not its models, not where raw data happens to live)."""
    cfg = {k: v for k, v in params["datasets"][base_name(unit)].items()
           if k not in ("enabled", "teacher", "student", "archive", "root", "url", "overrides")}
    if "." in unit:
        cfg["fold"] = unit.split(".", 1)[1]
    return cfg


class Paths:
    """Every path of one dataset under the current params."""

    def __init__(self, params: dict, dataset: str):
        self.params, self.dataset = params, dataset
        noise = params["noise"]
        self.kind, self.spread = noise["kind"], float(noise["spread"])
        self.groups = groups(params)
        self.data_key = config_key(data_config(params, dataset))
        self.noise = f"{self.kind}_spread{self.spread:g}"
        self.data_dir = f"data/{dataset}/{self.data_key}"
        self.clean = f"{self.data_dir}/clean.npz"
        self.noise_dir = f"{self.data_dir}/{self.noise}"
        self.models_dir = f"models/{dataset}/{self.data_key}/{self.noise}"

    def noisy(self, level: float, seed: int) -> str:
        return f"{self.noise_dir}/{member_name(level, seed)}.npz"

    def group_noisy(self, group: int) -> list[str]:
        return [self.noisy(level, seed) for level, seed in self.groups[group]]

    def teacher_key(self, group: int) -> str:
        return config_key({"config": teacher_config(self.params, self.dataset), "members": self.groups[group]})

    def student_key(self, method: str, group: int) -> str:
        from kdreg.methods import get_method
        teacher = self.teacher_key(group) if get_method(method).uses_teacher else None
        return config_key({"config": student_config(self.params, self.dataset, method),
                           "members": self.groups[group], "teacher": teacher})

    def teacher_dir(self, group: int) -> str:
        return f"{self.models_dir}/teachers/g{group}-{self.teacher_key(group)}"

    def student_dir(self, method: str, group: int) -> str:
        return f"{self.models_dir}/students/{method}/g{group}-{self.student_key(method, group)}"

    def frontier_groups(self, members) -> dict[int, list[tuple[float, int]]]:
        """``{group: its members among members}`` for every group holding one: the small-model frontier
        (``frontier:``, :func:`kdreg.variants.frontier_members`) trains one job per such group."""
        wanted = {member_name(level, seed) for level, seed in members}
        chosen = {g: [m for m in group if member_name(*m) in wanted] for g, group in enumerate(self.groups)}
        return {g: ms for g, ms in chosen.items() if ms}

    def frontier_configs(self, frontier: dict) -> dict[str, dict]:
        return {m: student_config(self.params, self.dataset, m) for m in frontier["methods"]}

    def frontier_key(self, group: int, members, frontier: dict) -> str:
        """Keyed like a student group: its configs, widths, members and teacher."""
        return config_key({"configs": self.frontier_configs(frontier), "widths": frontier["widths"],
                           "members": members, "teacher": self.teacher_key(group)})

    def frontier_dir(self, group: int, members, frontier: dict) -> str:
        return f"{self.models_dir}/frontier/g{group}-{self.frontier_key(group, members, frontier)}"

    def all_group_dirs(self, methods) -> list[str]:
        n = range(len(self.groups))
        return [self.teacher_dir(g) for g in n] + [self.student_dir(m, g) for m in methods for g in n]

    def runs_table(self, methods) -> str:
        """The per-run table of exactly the current runs. Its key covers every group, so any change to the
        params gives a new path: the targets require it, and through it every job the change affects."""
        return f"{self.models_dir}/runs-{self.runs_key(methods)}.csv"

    def runs_key(self, methods) -> str:
        return config_key(self.all_group_dirs(methods))



# One results name's outputs, by role: the rules' outputs, and what is set aside when it is no longer current. A
# name is a dataset under the default params or under a variant (kdreg.variants.result_name).
RESULTS = {
    "runs": "results/evaluation/{name}_runs.csv",
    "metrics": "results/metrics/{name}.json",
    "table_md": "results/tables/{name}.md",
    "table_csv": "results/tables/{name}.csv",
    "error": "results/plots/{name}_error_vs_noise.csv",
    "error_wide": "results/plots/{name}_error_vs_noise_wide.csv",
    "rejection": "results/plots/{name}_rejection.csv",
    "fits_curves": "results/plots/{name}_fits.csv",
    "fits_points": "results/plots/{name}_fits_points.csv",
    "figure_error": "results/figures/{name}_error_vs_noise.png",
    "figure_fits": "results/figures/{name}_fits.png",
    "figure_rejection": "results/figures/{name}_rejection.png",
    "figure_examples": "results/figures/{name}_examples.png",
}


def retire_results(current, root=".") -> list[tuple[Path, Path]]:
    """Move the results of every name not in ``current`` (a dataset turned off, a variant removed) into
    ``results/disabled/{name}/``: left in place they would look current (``dvc metrics diff`` would show them
    unchanged); moved, nothing is lost."""
    root = Path(root)
    stale = sorted({p.stem for p in (root / "results/metrics").glob("*.json")} - set(current))
    moved = []
    for name in stale:
        for pattern in RESULTS.values():
            src = root / pattern.format(name=name)
            if src.exists():
                dst = root / "results/disabled" / name / src.relative_to(root / "results")
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(src, dst)
                moved.append((src, dst))
    return moved

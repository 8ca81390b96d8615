# Shared helpers: params validation, the model groups, the package sources each stage runs.
import json
import shlex
from pathlib import Path

from kdreg import layout
from kdreg.config import check_params, student_config, teacher_config, validate_params

# Our own validation (not snakemake.utils.validate) so a bad value is reported with its full key path.
try:
    validate_params(config, workflow.source_path("../schemas/params.schema.yaml"), "params.yaml")
    check_params(config, "params.yaml")
except ValueError as err:
    raise WorkflowError(str(err)) from None

DATASETS = layout.enabled_datasets(config)
METHODS = config["methods"]
# A unit trains independently: a dataset, or one leave-one-person-out fold of it (mpiigaze.p03).
UNITS = {d: layout.units(config, d) for d in DATASETS}
PATHS = {u: layout.Paths(config, u) for d in DATASETS for u in UNITS[d]}
GROUPS = layout.groups(config)
TASKS = {"sinusoid": "regression", "mpiigaze": "gaze", "multipie": "headpose"}

# The package modules each stage runs: an edited module reruns exactly the jobs that import it.
# Absolute, so the workflow also runs with --directory elsewhere (tests, clusters).
SRC = Path(workflow.basedir) / "src" / "kdreg"
CORE = [SRC / f for f in ("__init__.py", "cli.py", "config.py", "io.py", "layout.py", "seeding.py")]
DATA_SRC = CORE + [SRC / f for f in ("data.py", "noise.py", "mpiigaze.py", "multipie.py", "tabular.py", "metrics.py")]
TRAIN_SRC = DATA_SRC + [SRC / f for f in ("losses.py", "models.py", "cnn.py", "stacked.py", "train.py", "jobs.py")]
STACK = "" if config["pipeline"]["stack"] else "--no-stack"
RESULTS_SRC = CORE + [SRC / f for f in ("jobs.py", "results.py")]
PLOT_SRC = CORE + [SRC / "plots.py"]


wildcard_constraints:
    dataset=r"[a-z0-9_]+(\.p\d\d)?",
    datakey="[0-9a-f]{8}",
    key="[0-9a-f]{8}",
    noise=r"[a-z]+_spread[0-9.]+",
    level=r"[0-9.]+",
    seed=r"\d+",
    group=r"\d+",
    method="|".join(METHODS),


def quoted_json(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))


def group_members(wildcards):
    return " ".join(layout.member_spec(level, seed) for level, seed in GROUPS[int(wildcards.group)])


def group_noisy(wildcards):
    return PATHS[wildcards.dataset].group_noisy(int(wildcards.group))


def current(wildcards, key, expected):
    """Refuse to build a path whose key belongs to other params (only current paths are ever requested)."""
    if key != expected:
        raise WorkflowError(f"{wildcards}: key {key} does not match the current params ({expected}); "
                            "request targets (figures, tables, metrics, all) rather than stale paths")
    return key

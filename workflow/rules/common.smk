# Shared helpers: params validation, the model groups, the package sources each step runs.
#
# Shell lines: every value that comes from params.yaml (a path, a URL, a JSON config) is written as {...:q}, which
# shell-quotes it, so no value is ever interpreted by the shell; the rest are wildcards constrained below.
import json
import os

from kdreg import deps, layout
from kdreg.cli import EXECUTION_ENV
from kdreg.config import check_params, load_yaml, student_config, teacher_config, validate_params
from kdreg.datasets import kind_of
from kdreg.methods import get_method

# Our own validation (not snakemake.utils.validate) so a bad value is reported with its full key path; the files
# are read again strictly, since YAML silently keeps the last of two equal keys.
try:
    for configfile_ in workflow.configfiles:
        load_yaml(configfile_)
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
RESULTS = layout.RESULTS
KINDS = {d: kind_of(d, config["datasets"][d]) for d in DATASETS}

# How fast a group trains, never what it learns: through the environment, not the command line, so changing
# these reruns nothing (see kdreg.cli._execution). Jobs on a cluster parse this file again and get it too.
os.environ[EXECUTION_ENV] = json.dumps({k: config["pipeline"][k] for k in
                                        ("stack", "teacher_stack_size", "student_stack_size", "checkpoint_every")})


def code(command):
    """The package sources `kdreg <command>` imports, read from the sources (kdreg.deps), relative to the working
    directory: an edited module reruns exactly the steps that import it, and a moved checkout reruns nothing."""
    return deps.command_sources(command, relative_to=os.getcwd())


wildcard_constraints:
    dataset=r"[a-z0-9_]+(\.p\d\d)?",
    datakey="[0-9a-f]{8}",
    key="[0-9a-f]{8}",
    noise=r"[a-z]+_spread[0-9.]+",
    level=r"[0-9.]+",
    seed=r"\d+",
    group=r"\d+",
    method="|".join(METHODS),


def run_config(obj):
    return json.dumps(obj, sort_keys=True)


def group_members(wildcards):
    return [layout.member_spec(level, seed) for level, seed in GROUPS[int(wildcards.group)]]


def group_noisy(wildcards):
    return PATHS[wildcards.dataset].group_noisy(int(wildcards.group))


def current(wildcards, key, expected):
    """Refuse to build a path whose key belongs to other params (only current paths are ever requested)."""
    if key != expected:
        raise WorkflowError(f"{wildcards}: key {key} does not match the current params ({expected}); "
                            "request targets (figures, tables, metrics, all) rather than stale paths")
    return key


def student_teacher(wildcards):
    """Methods that read the teacher depend on its group; the others start without waiting for it."""
    if not get_method(wildcards.method).uses_teacher:
        return []
    return PATHS[wildcards.dataset].teacher_dir(int(wildcards.group))


def all_groups(wildcards):
    return PATHS[wildcards.dataset].all_group_dirs(METHODS)


# Every target also requires the current runs tables: see layout.Paths.runs_table.
RUNS_TABLES = [p.runs_table(METHODS) for p in PATHS.values()]


# Figures
FITS_LEVEL, FITS_SEED = config["figures"]["fits_level"], config["figures"]["fits_seed"]
FITS_GROUP = next(i for i, g in enumerate(GROUPS) if (float(FITS_LEVEL), int(FITS_SEED)) in g)
FITS_RUN = layout.member_name(FITS_LEVEL, FITS_SEED)
FITS_STUDENTS = [m for m in METHODS if get_method(m).in_fits]
KIND = config["noise"]["kind"]


def dataset_figures(dataset):
    figs = ["figure_error"]
    if KINDS[dataset].curves:  # 1-D input: the fitted curves can be drawn
        figs.append("figure_fits")
    if any(get_method(m).rejects for m in METHODS):
        figs.append("figure_rejection")
    return [RESULTS[f].format(dataset=dataset) for f in figs]

# Shared helpers: params validation, the model groups, the package sources each step runs.
#
# Shell lines: every value that comes from params.yaml (a path, a URL, a JSON config) is written as {...:q}, which
# shell-quotes it, so no value is ever interpreted by the shell; the rest are wildcards constrained below.
import json
import os

from kdreg import deps, layout, variants
from kdreg.cli import EXECUTION_ENV
from kdreg.config import check_params, load_yaml, student_config, teacher_config, validate_params
from kdreg.datasets import kind_of
from kdreg.methods import get_method

# Our own validation (not snakemake.utils.validate) so a bad value is reported with its full key path; the files
# are read again strictly, since YAML silently keeps the last of two equal keys. Every variant is validated too.
try:
    for configfile_ in workflow.configfiles:
        load_yaml(configfile_)
    validate_params(config, workflow.source_path("../schemas/params.schema.yaml"), "params.yaml")
    check_params(config, "params.yaml")
    VARIANTS = variants.resolve(config, workflow.source_path("../schemas/params.schema.yaml"), "params.yaml")
except ValueError as err:
    raise WorkflowError(str(err)) from None

DATASETS = layout.enabled_datasets(config)
# A results name is a dataset under the default params ("sinusoid") or under a variant ("sinusoid-teacher_huber").
# The benchmark suite ("boston-benchmark") runs like a variant whose params enable the suite's tables.
NAMES = {variants.result_name(d, v): (d, p) for v, p in VARIANTS.items() for d in layout.enabled_datasets(p)
         if variants.runs_for(config, v, d)}
BENCHMARK_NAMES = [variants.result_name(d, variants.BENCHMARK) for d in variants.benchmark_datasets(config)]
# A unit trains independently: a dataset, or one leave-one-person-out fold of it (mpiigaze.p03).
UNITS = {name: layout.units(p, d) for name, (d, p) in NAMES.items()}
PATHS = {(name, u): layout.Paths(p, u) for name, (d, p) in NAMES.items() for u in UNITS[name]}
RESULTS = layout.RESULTS
KINDS = {name: kind_of(d, p["datasets"][d]) for name, (d, p) in NAMES.items()}


def methods_of(name):
    return NAMES[name][1]["methods"]


# Every job, by the path it makes. Paths are keyed by content, so a job that two variants share is one entry and
# runs once; a path no current params or variant makes is refused (see job()).
DATA_JOBS, TEACHER_JOBS, STUDENT_JOBS, RUNS_JOBS = {}, {}, {}, {}
for (name_, unit_), paths_ in PATHS.items():
    DATA_JOBS[paths_.clean] = paths_
    for g_ in range(len(paths_.groups)):
        TEACHER_JOBS[paths_.teacher_dir(g_)] = (paths_, g_)
        for m_ in methods_of(name_):
            STUDENT_JOBS[paths_.student_dir(m_, g_)] = (paths_, m_, g_)
    RUNS_JOBS[paths_.runs_table(methods_of(name_))] = (paths_, methods_of(name_))


# Noise jobs: one per group's members whose noisy set no earlier group makes (variants share them by path).
NOISE_JOBS, claimed_ = {}, set()
for (name_, unit_), paths_ in PATHS.items():
    for g_ in range(len(paths_.groups)):
        new_ = [(lvl_, s_) for lvl_, s_ in paths_.groups[g_] if paths_.noisy(lvl_, s_) not in claimed_]
        claimed_.update(paths_.noisy(lvl_, s_) for lvl_, s_ in new_)
        if new_:
            NOISE_JOBS[f"corrupt_{layout.config_key([paths_.noisy(*m) for m in new_])}"] = (paths_, new_)

# Student jobs (pipeline.student_jobs = J > 0): per group, its methods split into J jobs, each one process training
# its methods as one stacked model. A student path that two variants share (scratch under two teachers) belongs to
# the first job that makes it, so every path has exactly one job; names are stable for the same params.
STUDENT_GROUP_JOBS, claimed_ = {}, set()
for (name_, unit_), paths_ in PATHS.items():
    for g_ in range(len(paths_.groups)):
        ms_ = [m for m in methods_of(name_) if paths_.student_dir(m, g_) not in claimed_]
        claimed_.update(paths_.student_dir(m, g_) for m in ms_)
        for part_ in layout.split_evenly(ms_, config["pipeline"]["student_jobs"]):
            STUDENT_GROUP_JOBS[f"train_students_{layout.config_key([paths_.student_dir(m, g_) for m in part_])}"] = (
                paths_, g_, part_)


def job(registry, path):
    """The job that makes ``path`` under the current params and variants."""
    if path not in registry:
        raise WorkflowError(f"{path}: no current params or variant makes this path (it holds settings changed "
                            "since); request targets (figures, tables, metrics, all) rather than stale paths")
    return registry[path]


def data_job(w):
    return job(DATA_JOBS, f"data/{w.dataset}/{w.datakey}/clean.npz")


def teacher_job(w):
    return job(TEACHER_JOBS, f"models/{w.dataset}/{w.datakey}/{w.noise}/teachers/g{w.group}-{w.key}")


def student_job(w):
    return job(STUDENT_JOBS, f"models/{w.dataset}/{w.datakey}/{w.noise}/students/{w.method}/g{w.group}-{w.key}")


def runs_job(w):
    return job(RUNS_JOBS, f"models/{w.dataset}/{w.datakey}/{w.noise}/runs-{w.key}.csv")


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
    method="|".join(sorted({m for name in NAMES for m in methods_of(name)})),
    name=r"[a-z0-9_]+(-[a-z0-9_]+)?",


def run_config(obj):
    return json.dumps(obj, sort_keys=True)


def members(paths, group):
    return [layout.member_spec(level, seed) for level, seed in paths.groups[group]]


def student_teacher(w):
    """Methods that read the teacher depend on its group; the others start without waiting for it."""
    paths, method, group = student_job(w)
    return paths.teacher_dir(group) if get_method(method).uses_teacher else []


def runs_tables(name):
    return [PATHS[name, u].runs_table(methods_of(name)) for u in UNITS[name]]


# Every target also requires the current runs tables: see layout.Paths.runs_table.
RUNS_TABLES = [t for name in NAMES for t in runs_tables(name)]


# Figures: the fits figure shows one (noise level, seed) of one group.
def fits(name):
    """(params, group index, run directory name, students drawn) of a results name's fits figure."""
    p = NAMES[name][1]
    level, seed = p["figures"]["fits_level"], p["figures"]["fits_seed"]
    group = next(i for i, g in enumerate(layout.groups(p)) if (float(level), int(seed)) in g)
    return p, group, layout.member_name(level, seed), [m for m in methods_of(name) if get_method(m).in_fits]


def title(name, what):
    dataset, variant = variants.split_name(name)
    return f"{dataset}{f' [{variant}]' if variant else ''}: {what} ({NAMES[name][1]['noise']['kind']} noise)"


def dataset_figures(name):
    figs = ["figure_error"]
    if KINDS[name].curves:  # 1-D input: the fitted curves can be drawn
        figs.append("figure_fits")
    if any(get_method(m).rejects for m in methods_of(name)):
        figs.append("figure_rejection")
    return [RESULTS[f].format(name=name) for f in figs]


# Studies: named comparisons of variants (params.yaml `studies:`), for every dataset all their variants run for.
STUDIES = {(d, study): members for study, members in config.get("studies", {}).items() for d in DATASETS
           if all(variants.result_name(d, v) in NAMES for v in variants.study_members(members))}


def study_runs(w):
    """``{variant: runs table}`` of a study, in its order (``default``: the params without overrides)."""
    return {v: RESULTS["runs"].format(name=variants.result_name(w.dataset, m))
            for v, m in zip(STUDIES[w.dataset, w.study], variants.study_members(STUDIES[w.dataset, w.study]))}

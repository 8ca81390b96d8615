# Shared helpers: params validation, the model groups, the package sources each step runs.
#
# Shell lines: every value that comes from params.yaml (a path, a URL, a JSON config) is written as {...:q}, which
# shell-quotes it, so no value is ever interpreted by the shell; the rest are wildcards constrained below.
import json
import re
import os

from kdreg import deps, layout, variants
from kdreg.cli import EXECUTION_ENV
from kdreg.config import check_params, load_yaml, student_config, teacher_config, validate_params
from kdreg.datasets import kind_of
from kdreg.io import verify_checksum
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
# Datasets with overrides of their own (datasets.X.overrides: seeds, methods, ...) are experiments beside the
# paper-style headline: `snakemake digits` runs the rotated digits and their variants.
HEADLINE_DATASETS = [d for d in DATASETS if not variants.dataset_overrides(config, d)]
# A results name is a dataset under the default params ("sinusoid") or under a variant ("sinusoid-teacher_huber").
# The benchmark suite ("boston-benchmark") runs like a variant whose params enable the suite's tables.
NAMES = variants.result_names(config, VARIANTS)
# The suite once per noise kind: {kind: ["boston-benchmark_replace", ...]}.
BENCHMARK_KINDS = {k: [variants.result_name(d, variants.benchmark_variant(k)) for d in variants.benchmark_datasets(config)]
                   for k in variants.benchmark_kinds(config)}
BENCHMARK_NAMES = [n for names in BENCHMARK_KINDS.values() for n in names]
# A unit trains independently: a dataset, or one leave-one-person-out fold of it (mpiigaze.p03).
UNITS = {name: layout.units(p, d) for name, (d, p) in NAMES.items()}
PATHS = {(name, u): layout.Paths(p, u) for name, (d, p) in NAMES.items() for u in UNITS[name]}
RESULTS = layout.RESULTS
KINDS = {name: kind_of(d, p["datasets"][d]) for name, (d, p) in NAMES.items()}


def methods_of(name):
    return NAMES[name][1]["methods"]


# Every job, by the path it makes. Paths are keyed by content, so a job that two variants share is one entry and
# runs once. Each job is a rule of its own, named for what it does and for whom: the kind, the results name of the
# first variant that needs it (a job variants share says so in its log), then the key of the folder it writes,
# e.g. train_teachers.sinusoid-teacher_tukey.g0.1a2b3c4d.
DATA_JOBS, TEACHER_JOBS, RUNS_JOBS = {}, {}, {}
# A unit's label: its results name with the fold in place of the dataset (sinusoid-teacher_tukey, mpiigaze.p03).
LABELS = {(name, unit): unit + name[len(NAMES[name][0]):] for name, unit in PATHS}
for (name_, unit_), paths_ in PATHS.items():
    label_ = LABELS[name_, unit_]
    DATA_JOBS.setdefault(paths_.clean, (paths_, label_))
    for g_ in range(len(paths_.groups)):
        TEACHER_JOBS.setdefault(paths_.teacher_dir(g_), (paths_, g_, label_))
    RUNS_JOBS.setdefault(paths_.runs_table(methods_of(name_)), (paths_, methods_of(name_), label_))


def job_name(kind, label, *detail, key):
    return ".".join([kind, label, *map(str, detail), key])


# Noise jobs: one per group's members whose noisy set no earlier group makes (variants share them by path).
NOISE_JOBS, claimed_ = {}, set()
for (name_, unit_), paths_ in PATHS.items():
    for g_ in range(len(paths_.groups)):
        new_ = [(lvl_, s_) for lvl_, s_ in paths_.groups[g_] if paths_.noisy(lvl_, s_) not in claimed_]
        claimed_.update(paths_.noisy(lvl_, s_) for lvl_, s_ in new_)
        if new_:
            key_ = layout.config_key([paths_.noisy(*m) for m in new_])
            NOISE_JOBS[job_name("corrupt", LABELS[name_, unit_], paths_.kind, f"g{g_}", key=key_)] = (paths_, new_)

# A dataset or noisy set changed since it was made would be found only by the first job that reads it, after
# Snakemake had deleted that job's outputs (a valid trained group) to rerun it: every one that exists is checked
# against its recorded checksum here, before any job (~6 MB for the committed params: milliseconds).
damaged_ = []
for path_ in [*DATA_JOBS, *sorted(claimed_)]:
    try:
        if os.path.exists(path_):
            verify_checksum(path_)
    except ValueError as err:
        damaged_.append(str(err))
if damaged_:
    raise WorkflowError("\n".join(damaged_))

# Student jobs: per group, its methods split into pipeline.student_jobs = J jobs, each one process training its
# methods as one stacked model (J = 0: one job per method, for clusters). A student path that two variants share
# (scratch under two teachers) belongs to the first job that makes it, so every path has exactly one job.
STUDENT_GROUP_JOBS, claimed_ = {}, set()
for (name_, unit_), paths_ in PATHS.items():
    for g_ in range(len(paths_.groups)):
        ms_ = [m for m in methods_of(name_) if paths_.student_dir(m, g_) not in claimed_]
        claimed_.update(paths_.student_dir(m, g_) for m in ms_)
        jobs_ = config["pipeline"]["student_jobs"]
        for part_ in (layout.split_evenly(ms_, jobs_) if jobs_ else [[m] for m in ms_]):
            key_ = layout.config_key([paths_.student_dir(m, g_) for m in part_])
            methods_ = part_[0] if len(part_) == 1 else f"{part_[0]}-to-{part_[-1]}"
            STUDENT_GROUP_JOBS[job_name("train_students", LABELS[name_, unit_], f"g{g_}", methods_, key=key_)] = (
                paths_, g_, part_)


def made_for(names):
    """Every file and trained group the pipeline makes for these results names. The targets request them all, so
    one that is deleted (or set aside by `kdreg check`'s fix) is rebuilt, and with it everything that learned
    from it: Snakemake remakes a missing intermediate only when something requested needs it."""
    out = []
    for name in names:
        for u in UNITS[name]:
            paths = PATHS[name, u]
            out.append(paths.clean)
            out += [f for g in range(len(paths.groups)) for n in paths.group_noisy(g) for f in (n, f"{n}.sha256")]
            out += paths.all_group_dirs(methods_of(name))
    return list(dict.fromkeys(out))


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
    if KINDS[name].images:  # example images with their clean and corrupted labels
        figs.append("figure_examples")
    return [RESULTS[f].format(name=name) for f in figs]


# Studies: named comparisons of variants (params.yaml `studies:`), for every dataset all their variants run for.
STUDIES = {(d, study): members for study, members in config.get("studies", {}).items() for d in DATASETS
           if all(variants.result_name(d, v) in NAMES for v in variants.study_members(members))}


def study_runs(w):
    """``{variant: runs table}`` of a study, in its order (``default``: the params without overrides)."""
    return {v: RESULTS["runs"].format(name=variants.result_name(w.dataset, m))
            for v, m in zip(STUDIES[w.dataset, w.study], variants.study_members(STUDIES[w.dataset, w.study]))}

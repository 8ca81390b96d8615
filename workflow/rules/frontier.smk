# The small-model frontier (params.yaml `frontier:`, kdreg.frontier): for each source (a results name of a listed
# variant), students of every width and method, trained at the teachers the source already has (one job per
# source group: nothing but students trains), then one table across sources and the figures.
# `snakemake --cores 2 frontier`.
import sys

from kdreg.layout import member_spec

FRONTIER = config.get("frontier") or {}
try:
    FRONTIER_SOURCES = variants.frontier_sources(config, NAMES)
except ValueError as err:
    raise WorkflowError(str(err)) from None
if FRONTIER.get("enabled") and not FRONTIER_SOURCES:  # e.g. only an image dataset: nothing to vary, not an error
    print(f"kdreg: frontier: no enabled dataset with MLP students runs under frontier.variants {FRONTIER['variants']}:"
          " the frontier is empty (list such variants, or set frontier.enabled: false)", file=sys.stderr)
FRONTIER_DATASETS = list(dict.fromkeys(NAMES[n][0] for n in FRONTIER_SOURCES))
FRONTIER_MEMBERS = variants.frontier_members(FRONTIER) if FRONTIER_SOURCES else []

# One job per (source, group holding frontier members), keyed like a student group (layout.Paths.frontier_key):
# its configs, widths, members and teacher. Sources that agree on all of them share the job.
FRONTIER_JOBS, FRONTIER_RUNS, FRONTIER_TEACHERS = {}, {}, {}
for name_ in FRONTIER_SOURCES:
    for unit_ in UNITS[name_]:
        paths_ = PATHS[name_, unit_]
        for g_, sel_ in paths_.frontier_groups(FRONTIER_MEMBERS).items():
            dir_ = paths_.frontier_dir(g_, sel_, FRONTIER)
            FRONTIER_JOBS.setdefault(dir_, (paths_, g_, sel_, paths_.frontier_configs(FRONTIER), LABELS[name_, unit_],
                                            paths_.frontier_key(g_, sel_, FRONTIER)))
            FRONTIER_RUNS.setdefault(name_, []).append(dir_)
            FRONTIER_TEACHERS.setdefault(name_, []).append(paths_.teacher_dir(g_))


for dir_, (paths_, group_, sel_, configs_, label_, key_) in FRONTIER_JOBS.items():
    reads_teacher_ = any(get_method(m).uses_teacher for m in configs_)

    rule:
        name:
            job_name("train_frontier", label_, f"g{group_}", key=key_)
        conda:
            "../../environment.yml"
        input:
            data=paths_.clean,
            noisy=[paths_.noisy(level, seed) for level, seed in sel_],
            teacher=[paths_.teacher_dir(group_)] if reads_teacher_ else [],
            code=code("train-frontier"),
        output:
            directory(dir_),
        params:
            methods=list(configs_),
            configs=[run_config(c) for c in configs_.values()],
            widths=FRONTIER["widths"],
            noisy_dir=paths_.noise_dir,
            models=[member_spec(level, seed) for level, seed in sel_],
            device=config["device"],
            teacher=["--teacher-dir", paths_.teacher_dir(group_)] if reads_teacher_ else [],
        threads: config["pipeline"]["student_threads"]
        log:
            f"results/logs/frontier/{paths_.dataset}-{paths_.data_key}/{paths_.noise}/g{group_}-{key_}.log",
        shell:
            "python -m kdreg --log {log:q} train-frontier --method {params.methods:q} --widths {params.widths:q}"
            " --data {input.data:q} --noisy-dir {params.noisy_dir:q} --models {params.models:q} {params.teacher:q}"
            " --config {params.configs:q} --device {params.device:q} --threads {threads} --out-dir {output:q}"


# runs: every run the tables are made of, git-tracked, so the results gate derives the tables again without models/
FRONTIER_OUTPUTS = {"csv": "results/tables/frontier.csv", "equal_csv": "results/tables/frontier_equal_accuracy.csv",
                    "equal_md": "results/tables/frontier_equal_accuracy.md", "metrics": "results/metrics/frontier.json",
                    "runs": "results/evaluation/frontier_runs.csv"}


rule frontier_table:
    conda:
        "../../environment.yml"
    input:
        students=[d for n in FRONTIER_SOURCES for d in FRONTIER_RUNS[n]],
        teachers=[d for n in FRONTIER_SOURCES for d in FRONTIER_TEACHERS[n]],
        code=code("frontier-table"),
    output:
        **{k: v for k, v in FRONTIER_OUTPUTS.items() if k != "csv"},
        csv=report(FRONTIER_OUTPUTS["csv"], caption="../report/frontier_table.rst", category="Small-model frontier"),
    params:
        students=[f"{n}={d}" for n in FRONTIER_SOURCES for d in FRONTIER_RUNS[n]],
        teachers=[f"{n}={d}" for n in FRONTIER_SOURCES for d in FRONTIER_TEACHERS[n]],
        models=[member_spec(level, seed) for level, seed in FRONTIER_MEMBERS],
        metric=KINDS[FRONTIER_SOURCES[0]].metric if FRONTIER_SOURCES else "rmse",
    log:
        "results/logs/frontier/table.log",
    shell:
        "python -m kdreg --log {log:q} frontier-table --students {params.students:q} --teachers {params.teachers:q}"
        " --models {params.models:q} --runs-copy {output.runs:q} --metric {params.metric:q} --csv {output.csv:q}"
        " --equal-csv {output.equal_csv:q}"
        " --equal-md {output.equal_md:q} --metrics {output.metrics:q}"


wildcard_constraints:
    frontier_dataset="|".join(FRONTIER_DATASETS) or "none",


rule plot_frontier:
    conda:
        "../../environment.yml"
    input:
        data=FRONTIER_OUTPUTS["csv"],
        code=code("plot"),
    output:
        report("results/figures/frontier/{frontier_dataset}.png", caption="../report/frontier_figure.rst",
               category="Small-model frontier"),
    params:
        title=lambda w: f"{w.frontier_dataset}: test error against student size (one hidden layer of "
              f"{', '.join(map(str, FRONTIER['widths']))} units)",
    log:
        "results/logs/figures/frontier/{frontier_dataset}.log",
    shell:
        "python -m kdreg --log {log:q} plot frontier {input.data:q} --dataset {wildcards.frontier_dataset:q}"
        " --out {output:q} --title {params.title:q}"


rule plot_frontier_summary:
    conda:
        "../../environment.yml"
    input:
        data=FRONTIER_OUTPUTS["csv"],
        code=code("plot"),
    output:
        report("results/figures/frontier/summary.png", caption="../report/frontier_figure.rst",
               category="Small-model frontier"),
    params:
        title="the small-model frontier across datasets: each student's error over the best scratch student of any width",
    log:
        "results/logs/figures/frontier/summary.log",
    shell:
        "python -m kdreg --log {log:q} plot frontier-summary {input.data:q} --out {output:q} --title {params.title:q}"


FRONTIER_TABLES = list(FRONTIER_OUTPUTS.values()) if FRONTIER_SOURCES else []
FRONTIER_FIGURES = ([f"results/figures/frontier/{d}.png" for d in FRONTIER_DATASETS]
                    + ["results/figures/frontier/summary.png"] if FRONTIER_SOURCES else [])


rule frontier:
    """The small-model frontier alone: its students, tables, summary metrics and figures."""
    input:
        FRONTIER_TABLES,
        FRONTIER_FIGURES,
        list(FRONTIER_JOBS),

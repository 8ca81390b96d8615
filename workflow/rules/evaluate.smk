# Evaluation: every run's test metrics into one table, then mean / std / 95% CI over seeds.


def all_groups(wildcards):
    return PATHS[wildcards.dataset].all_group_dirs(METHODS)


rule collect:
    input:
        groups=all_groups,
        code=code("collect"),
    output:
        "models/{dataset}/{datakey}/{noise}/runs-{key}.csv",
    params:
        check=lambda w: current(w, w.key, PATHS[w.dataset].runs_key(METHODS)),
    log:
        "results/logs/collect/{dataset}-{datakey}/{noise}/runs-{key}.log",
    shell:
        KDREG + " collect --groups {input.groups:q} --out {output:q}"


rule aggregate:
    input:
        runs=lambda w: [PATHS[u].runs_table(METHODS) for u in UNITS[w.dataset]],
        code=code("aggregate"),
    output:
        **{role: RESULTS[role] for role in ("runs", "metrics", "table_md", "table_csv", "error", "error_wide",
                                             "rejection")},
    params:
        task=lambda w: TASKS.get(w.dataset, "regression"),
        methods=METHODS,
        seeds=config["seeds"],
    log:
        "results/logs/aggregate/{dataset}.log",
    shell:
        KDREG + " aggregate --runs {input.runs:q} --runs-copy {output.runs:q} --task {params.task}"
        " --methods {params.methods} --seeds {params.seeds} --metrics {output.metrics:q}"
        " --table-md {output.table_md:q} --table-csv {output.table_csv:q} --error-csv {output.error:q}"
        " --error-wide-csv {output.error_wide:q} --rejection-csv {output.rejection:q}"


# Every target also requires the current runs tables: see layout.Paths.runs_table.
RUNS_TABLES = [p.runs_table(METHODS) for p in PATHS.values()]


rule tables:
    input:
        [RESULTS[role].format(dataset=d) for d in DATASETS for role in ("table_md", "table_csv")],
        RUNS_TABLES,


rule metrics:
    input:
        [RESULTS["metrics"].format(dataset=d) for d in DATASETS],
        RUNS_TABLES,

# Evaluation: every run's test metrics into one table, then mean / std / 95% CI over seeds.


def all_groups(wildcards):
    return PATHS[wildcards.dataset].all_group_dirs(METHODS)


rule collect:
    input:
        groups=all_groups,
        code=RESULTS_SRC,
    output:
        "models/{dataset}/{datakey}/{noise}/runs-{key}.csv",
    params:
        check=lambda w: current(w, w.key, PATHS[w.dataset].runs_key(METHODS)),
    log:
        "results/logs/collect/{dataset}-{datakey}/{noise}/runs-{key}.log",
    shell:
        "python -m kdreg collect --groups {input.groups} --out {output} > {log} 2>&1"


rule aggregate:
    input:
        runs=lambda w: [PATHS[u].runs_table(METHODS) for u in UNITS[w.dataset]],
        code=RESULTS_SRC,
    output:
        runs="results/evaluation/{dataset}_runs.csv",
        metrics="results/metrics/{dataset}.json",
        table_md="results/tables/{dataset}.md",
        table_csv="results/tables/{dataset}.csv",
        error="results/plots/{dataset}_error_vs_noise.csv",
        error_wide="results/plots/{dataset}_error_vs_noise_wide.csv",
        rejection="results/plots/{dataset}_rejection.csv",
    params:
        task=lambda w: TASKS.get(w.dataset, "regression"),
        methods=" ".join(METHODS),
    log:
        "results/logs/aggregate/{dataset}.log",
    shell:
        "python -m kdreg aggregate --runs {input.runs} --runs-copy {output.runs} --task {params.task} --methods {params.methods}"
        " --metrics {output.metrics} --table-md {output.table_md} --table-csv {output.table_csv}"
        " --error-csv {output.error} --error-wide-csv {output.error_wide} --rejection-csv {output.rejection} > {log} 2>&1"


# Every target also requires the current runs tables: see layout.Paths.runs_table.
RUNS_TABLES = [p.runs_table(METHODS) for p in PATHS.values()]


rule tables:
    input:
        expand("results/tables/{dataset}.{ext}", dataset=DATASETS, ext=["md", "csv"]),
        RUNS_TABLES,


rule metrics:
    input:
        expand("results/metrics/{dataset}.json", dataset=DATASETS),
        RUNS_TABLES,

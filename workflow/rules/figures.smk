# Figures: drawn from the small plot-data CSVs only, so restyling a figure never retrains.


rule fits_data:
    conda:
        "../../environment.yml"
    input:
        data=lambda w: PATHS[w.name, NAMES[w.name][0]].clean,
        noisy=lambda w: PATHS[w.name, NAMES[w.name][0]].noisy(fits(w.name)[0]["figures"]["fits_level"],
                                                           fits(w.name)[0]["figures"]["fits_seed"]),
        teacher=lambda w: PATHS[w.name, NAMES[w.name][0]].teacher_dir(fits(w.name)[1]),
        students=lambda w: [PATHS[w.name, NAMES[w.name][0]].student_dir(m, fits(w.name)[1]) for m in fits(w.name)[3]],
        runs=lambda w: runs_tables(w.name),  # newer whenever any run changed
        code=code("fits"),
    output:
        curves=RESULTS["fits_curves"],
        points=RESULTS["fits_points"],
    params:
        students=lambda w, input: [f"{m}={d}/{fits(w.name)[2]}" for m, d in zip(fits(w.name)[3], input.students)],
        teacher=lambda w, input: f"{input.teacher}/{fits(w.name)[2]}",
    log:
        "results/logs/fits/{name}.log",
    shell:
        "python -m kdreg --log {log:q} fits --data {input.data:q} --noisy {input.noisy:q} --teacher {params.teacher:q}"
        " --student {params.students:q} --out {output.curves:q} --points-out {output.points:q}"


rule plot_error_vs_noise:
    conda:
        "../../environment.yml"
    input:
        data=RESULTS["error"],
        code=code("plot"),
    output:
        report(RESULTS["figure_error"], caption="../report/error_vs_noise.rst", category="{name}"),
    params:
        title=lambda w: title(w.name, "test error vs label noise"),
    log:
        "results/logs/figures/{name}_error_vs_noise.log",
    shell:
        "python -m kdreg --log {log:q} plot error-vs-noise {input.data:q} --out {output:q} --title {params.title:q}"


rule plot_fits:
    conda:
        "../../environment.yml"
    input:
        curves=RESULTS["fits_curves"],
        points=RESULTS["fits_points"],
        code=code("plot"),
    output:
        report(RESULTS["figure_fits"], caption="../report/fits.rst", category="{name}"),
    params:
        title=lambda w: title(w.name, "fits at p = {fits_level:g}, seed {fits_seed}".format(**fits(w.name)[0]["figures"])),
    log:
        "results/logs/figures/{name}_fits.log",
    shell:
        "python -m kdreg --log {log:q} plot fits {input.curves:q} {input.points:q} --out {output:q} --title {params.title:q}"


rule plot_rejection:
    conda:
        "../../environment.yml"
    input:
        data=RESULTS["rejection"],
        code=code("plot"),
    output:
        report(RESULTS["figure_rejection"], caption="../report/rejection.rst", category="{name}"),
    params:
        title=lambda w: title(w.name, "TOR rejection quality"),
    log:
        "results/logs/figures/{name}_rejection.log",
    shell:
        "python -m kdreg --log {log:q} plot rejection {input.data:q} --out {output:q} --title {params.title:q}"


rule plot_examples:
    conda:
        "../../environment.yml"
    input:
        data=lambda w: PATHS[w.name, UNITS[w.name][0]].clean,
        noisy=lambda w: PATHS[w.name, UNITS[w.name][0]].noisy(NAMES[w.name][1]["figures"]["fits_level"],
                                                            NAMES[w.name][1]["figures"]["fits_seed"]),
        code=code("plot"),
    output:
        report(RESULTS["figure_examples"], caption="../report/examples.rst", category="{name}"),
    params:
        title=lambda w: title(w.name, "training images at p = {fits_level:g}, seed {fits_seed}".format(
            **NAMES[w.name][1]["figures"])),
    log:
        "results/logs/figures/{name}_examples.log",
    shell:
        "python -m kdreg --log {log:q} plot examples {input.data:q} {input.noisy:q} --out {output:q}"
        " --title {params.title:q}"


rule figures:
    input:
        [f for n in NAMES for f in dataset_figures(n)],
        rules.studies.input,
        FRONTIER_FIGURES,
        RUNS_TABLES,
        made_for(NAMES),


rule headline:
    """The default params alone (the paper-style reproduction): figures, tables and metrics, no variants."""
    input:
        [f for d in HEADLINE_DATASETS for f in dataset_figures(d)],
        [RESULTS[role].format(name=d) for d in HEADLINE_DATASETS for role in ("table_md", "table_csv", "metrics")],
        [t for d in HEADLINE_DATASETS for t in runs_tables(d)],
        made_for(HEADLINE_DATASETS),


# The rotated-digits experiment (datasets.digits) under the default params and every variant that names it.
DIGITS_NAMES = [n for n, (d, _) in NAMES.items() if d == "digits"]


rule digits:
    input:
        [f for n in DIGITS_NAMES for f in dataset_figures(n)],
        [RESULTS[role].format(name=n) for n in DIGITS_NAMES for role in ("table_md", "table_csv", "metrics")],
        [t for n in DIGITS_NAMES for t in runs_tables(n)],
        made_for(DIGITS_NAMES),

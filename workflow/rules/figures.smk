# Figures: drawn from the small plot-data CSVs only, so restyling a figure never retrains.


rule fits_data:
    conda:
        "../../environment.yml"
    input:
        data=lambda w: PATHS[w.dataset].clean,
        noisy=lambda w: PATHS[w.dataset].noisy(FITS_LEVEL, FITS_SEED),
        teacher=lambda w: PATHS[w.dataset].teacher_dir(FITS_GROUP),
        students=lambda w: [PATHS[w.dataset].student_dir(m, FITS_GROUP) for m in FITS_STUDENTS],
        runs=lambda w: PATHS[w.dataset].runs_table(METHODS),  # newer whenever any run changed
        code=code("fits"),
    output:
        curves=RESULTS["fits_curves"],
        points=RESULTS["fits_points"],
    params:
        students=lambda w: [f"{m}={PATHS[w.dataset].student_dir(m, FITS_GROUP)}/{FITS_RUN}" for m in FITS_STUDENTS],
        teacher=lambda w: f"{PATHS[w.dataset].teacher_dir(FITS_GROUP)}/{FITS_RUN}",
    log:
        "results/logs/fits/{dataset}.log",
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
        RESULTS["figure_error"],
    params:
        title=lambda w: f"{w.dataset}: test error vs label noise ({KIND})",
    log:
        "results/logs/figures/{dataset}_error_vs_noise.log",
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
        RESULTS["figure_fits"],
    params:
        title=lambda w: f"{w.dataset}: fits at p = {FITS_LEVEL:g}, seed {FITS_SEED} ({KIND} noise)",
    log:
        "results/logs/figures/{dataset}_fits.log",
    shell:
        "python -m kdreg --log {log:q} plot fits {input.curves:q} {input.points:q} --out {output:q} --title {params.title:q}"


rule plot_rejection:
    conda:
        "../../environment.yml"
    input:
        data=RESULTS["rejection"],
        code=code("plot"),
    output:
        RESULTS["figure_rejection"],
    params:
        title=lambda w: f"{w.dataset}: TOR rejection quality ({KIND} noise)",
    log:
        "results/logs/figures/{dataset}_rejection.log",
    shell:
        "python -m kdreg --log {log:q} plot rejection {input.data:q} --out {output:q} --title {params.title:q}"


rule figures:
    input:
        [f for d in DATASETS for f in dataset_figures(d)],
        RUNS_TABLES,

# Figures: drawn from the small plot-data CSVs only, so restyling a figure never retrains.
FITS_LEVEL, FITS_SEED = config["figures"]["fits_level"], config["figures"]["fits_seed"]
FITS_GROUP = next(i for i, g in enumerate(GROUPS) if (float(FITS_LEVEL), int(FITS_SEED)) in g)
FITS_RUN = layout.member_name(FITS_LEVEL, FITS_SEED)
FITS_STUDENTS = [m for m in ("scratch", "tor_multitask") if m in METHODS]
KIND = config["noise"]["kind"]


rule fits_data:
    input:
        data=lambda w: PATHS[w.dataset].clean,
        noisy=lambda w: PATHS[w.dataset].noisy(FITS_LEVEL, FITS_SEED),
        teacher=lambda w: PATHS[w.dataset].teacher_dir(FITS_GROUP),
        students=lambda w: [PATHS[w.dataset].student_dir(m, FITS_GROUP) for m in FITS_STUDENTS],
        runs=lambda w: PATHS[w.dataset].runs_table(METHODS),  # newer whenever any run changed
        code=RESULTS_SRC,
    output:
        curves="results/plots/{dataset}_fits.csv",
        points="results/plots/{dataset}_fits_points.csv",
    params:
        students=lambda w: " ".join(f"{m}={PATHS[w.dataset].student_dir(m, FITS_GROUP)}/{FITS_RUN}"
                                    for m in FITS_STUDENTS),
        teacher=lambda w: f"{PATHS[w.dataset].teacher_dir(FITS_GROUP)}/{FITS_RUN}",
    log:
        "results/logs/fits/{dataset}.log",
    shell:
        "python -m kdreg fits --data {input.data} --noisy {input.noisy} --teacher {params.teacher}"
        " --student {params.students} --out {output.curves} --points-out {output.points} > {log} 2>&1"


rule plot_error_vs_noise:
    input:
        data="results/plots/{dataset}_error_vs_noise.csv",
        code=PLOT_SRC,
    output:
        "results/figures/{dataset}_error_vs_noise.png",
    params:
        title=lambda w: shlex.quote(f"{w.dataset}: test error vs label noise ({KIND})"),
    log:
        "results/logs/figures/{dataset}_error_vs_noise.log",
    shell:
        "python -m kdreg plot error-vs-noise {input.data} --out {output} --title {params.title} > {log} 2>&1"


rule plot_fits:
    input:
        curves="results/plots/{dataset}_fits.csv",
        points="results/plots/{dataset}_fits_points.csv",
        code=PLOT_SRC,
    output:
        "results/figures/{dataset}_fits.png",
    params:
        title=lambda w: shlex.quote(f"{w.dataset}: fits at p = {FITS_LEVEL:g}, seed {FITS_SEED} ({KIND} noise)"),
    log:
        "results/logs/figures/{dataset}_fits.log",
    shell:
        "python -m kdreg plot fits {input.curves} {input.points} --out {output} --title {params.title} > {log} 2>&1"


rule plot_rejection:
    input:
        data="results/plots/{dataset}_rejection.csv",
        code=PLOT_SRC,
    output:
        "results/figures/{dataset}_rejection.png",
    params:
        title=lambda w: shlex.quote(f"{w.dataset}: TOR rejection quality ({KIND} noise)"),
    log:
        "results/logs/figures/{dataset}_rejection.log",
    shell:
        "python -m kdreg plot rejection {input.data} --out {output} --title {params.title} > {log} 2>&1"


def dataset_figures(dataset):
    figs = [f"results/figures/{dataset}_error_vs_noise.png"]
    if dataset == "sinusoid":  # 1-D input: the fitted curves can be drawn
        figs.append(f"results/figures/{dataset}_fits.png")
    if {"tor", "tor_multitask"} & set(METHODS):
        figs.append(f"results/figures/{dataset}_rejection.png")
    return figs


rule figures:
    input:
        [f for d in DATASETS for f in dataset_figures(d)],
        RUNS_TABLES,

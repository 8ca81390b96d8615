# Teachers: trained once per (dataset, noise level, seed); their cached predictions feed every student.


rule train_teachers:
    conda:
        "../../environment.yml"
    input:
        data=lambda w: PATHS[w.dataset].clean,
        noisy=group_noisy,
        code=code("train-teachers"),
    output:
        directory("models/{dataset}/{datakey}/{noise}/teachers/g{group}-{key}"),
    params:
        config=lambda w: run_config(teacher_config(config, w.dataset)),
        check=lambda w: current(w, w.key, PATHS[w.dataset].teacher_key(int(w.group))),
        noisy_dir=lambda w: PATHS[w.dataset].noise_dir,
        models=group_members,
        device=config["device"],
    threads: config["pipeline"]["teacher_threads"]
    # The teachers are the critical path (every distillation student waits for them): start them first.
    priority: 10
    log:
        "results/logs/teachers/{dataset}-{datakey}/{noise}/g{group}-{key}.log",
    shell:
        "python -m kdreg --log {log:q} train-teachers --data {input.data:q} --noisy-dir {params.noisy_dir:q} --models {params.models:q}"
        " --config {params.config:q} --device {params.device:q} --threads {threads} --out-dir {output:q}"

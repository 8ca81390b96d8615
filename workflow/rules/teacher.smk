# Teachers: trained once per (dataset, noise level, seed); their cached predictions feed every student.


rule train_teachers:
    conda:
        "../../environment.yml"
    input:
        data=lambda w: teacher_job(w)[0].clean,
        noisy=lambda w: teacher_job(w)[0].group_noisy(teacher_job(w)[1]),
        code=code("train-teachers"),
    output:
        directory("models/{dataset}/{datakey}/{noise}/teachers/g{group}-{key}"),
    params:
        config=lambda w: run_config(teacher_config(teacher_job(w)[0].params, w.dataset)),
        noisy_dir=lambda w: teacher_job(w)[0].noise_dir,
        models=lambda w: members(*teacher_job(w)),
        device=config["device"],
    threads: config["pipeline"]["teacher_threads"]
    # The teachers are the critical path (every distillation student waits for them): start them first.
    priority: 10
    log:
        "results/logs/teachers/{dataset}-{datakey}/{noise}/g{group}-{key}.log",
    shell:
        "python -m kdreg --log {log:q} train-teachers --data {input.data:q} --noisy-dir {params.noisy_dir:q} --models {params.models:q}"
        " --config {params.config:q} --device {params.device:q} --threads {threads} --out-dir {output:q}"

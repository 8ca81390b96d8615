# Teachers: trained once per (dataset, noise level, seed) group; their cached predictions feed every student.

for dir_, (paths_, group_, label_) in TEACHER_JOBS.items():

    rule:
        name:
            job_name("train_teachers", label_, f"g{group_}", key=paths_.teacher_key(group_))
        conda:
            "../../environment.yml"
        input:
            data=paths_.clean,
            noisy=paths_.group_noisy(group_),
            code=code("train-teachers"),
        output:
            directory(dir_),
        params:
            config=run_config(teacher_config(paths_.params, paths_.dataset)),
            noisy_dir=paths_.noise_dir,
            models=members(paths_, group_),
            device=config["device"],
        threads: config["pipeline"]["teacher_threads"]
        # The teachers are the critical path (every distillation student waits for them): start them first.
        priority: 10
        log:
            f"results/logs/teachers/{paths_.dataset}-{paths_.data_key}/{paths_.noise}/g{group_}-{paths_.teacher_key(group_)}.log",
        shell:
            "python -m kdreg --log {log:q} train-teachers --data {input.data:q} --noisy-dir {params.noisy_dir:q}"
            " --models {params.models:q} --config {params.config:q} --device {params.device:q} --threads {threads}"
            " --out-dir {output:q}"

# Students: one job trains one method for a group of (noise level, seed) pairs.


rule train_students:
    conda:
        "../../environment.yml"
    input:
        data=lambda w: PATHS[w.dataset].clean,
        noisy=group_noisy,
        teacher=student_teacher,
        code=code("train-students"),
    output:
        directory("models/{dataset}/{datakey}/{noise}/students/{method}/g{group}-{key}"),
    params:
        config=lambda w: run_config(student_config(config, w.dataset, w.method)),
        check=lambda w: current(w, w.key, PATHS[w.dataset].student_key(w.method, int(w.group))),
        noisy_dir=lambda w: PATHS[w.dataset].noise_dir,
        models=group_members,
        device=config["device"],
        teacher=lambda w, input: ["--teacher-dir", input.teacher] if input.teacher else [],
    threads: config["pipeline"]["student_threads"]
    log:
        "results/logs/students/{dataset}-{datakey}/{noise}/{method}/g{group}-{key}.log",
    shell:
        "python -m kdreg --log {log:q} train-students --method {wildcards.method} --data {input.data:q}"
        " --noisy-dir {params.noisy_dir:q} --models {params.models:q} {params.teacher:q} --config {params.config:q}"
        " --device {params.device:q} --threads {threads} --out-dir {output:q}"

# Students: one job trains one method for a group of (noise level, seed) pairs.


rule train_students:
    conda:
        "../../environment.yml"
    input:
        data=lambda w: student_job(w)[0].clean,
        noisy=lambda w: student_job(w)[0].group_noisy(student_job(w)[2]),
        teacher=student_teacher,
        code=code("train-students"),
    output:
        directory("models/{dataset}/{datakey}/{noise}/students/{method}/g{group}-{key}"),
    params:
        config=lambda w: run_config(student_config(student_job(w)[0].params, w.dataset, w.method)),
        noisy_dir=lambda w: student_job(w)[0].noise_dir,
        models=lambda w: members(student_job(w)[0], student_job(w)[2]),
        device=config["device"],
        teacher=lambda w, input: ["--teacher-dir", input.teacher] if input.teacher else [],
    threads: config["pipeline"]["student_threads"]
    log:
        "results/logs/students/{dataset}-{datakey}/{noise}/{method}/g{group}-{key}.log",
    shell:
        "python -m kdreg --log {log:q} train-students --method {wildcards.method} --data {input.data:q}"
        " --noisy-dir {params.noisy_dir:q} --models {params.models:q} {params.teacher:q} --config {params.config:q}"
        " --device {params.device:q} --threads {threads} --out-dir {output:q}"

# Students: one job trains one method for a group of (noise level, seed) pairs.
from kdreg.losses import get_method


def student_teacher(wildcards):
    """Methods that read the teacher depend on its group; the others start without waiting for it."""
    if not get_method(wildcards.method).uses_teacher:
        return []
    return PATHS[wildcards.dataset].teacher_dir(int(wildcards.group))


rule train_students:
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
        KDREG + " train-students --method {wildcards.method} --data {input.data:q}"
        " --noisy-dir {params.noisy_dir:q} --models {params.models:q} {params.teacher:q} --config {params.config:q}"
        " --device {params.device:q} --threads {threads} --out-dir {output:q}"

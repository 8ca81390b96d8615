# Students: one job trains one method for a group of (noise level, seed) pairs.
from kdreg.losses import get_method


def student_teacher(wildcards):
    """Methods that read the teacher depend on its group; the others start without waiting for it."""
    if not get_method(wildcards.method).uses_teacher:
        return []
    return layout.teacher_group_dir(wildcards.dataset, KIND, int(wildcards.group))


rule train_students:
    input:
        data="data/{dataset}/clean.npz",
        noisy=group_noisy,
        teacher=student_teacher,
        code=TRAIN_SRC,
    output:
        directory("models/{dataset}/%s/students/{method}/g{group}" % KIND),
    params:
        config=lambda w: quoted_json(student_config(config, w.dataset)),
        models=group_members,
        device=config["device"],
        teacher=lambda w, input: f"--teacher-dir {input.teacher}" if input.teacher else "",
    threads: THREADS
    log:
        "results/logs/students/{dataset}/{method}/g{group}.log",
    shell:
        "python -m kdreg train-students --method {wildcards.method} --data {input.data} --kind %s"
        " --models {params.models} {params.teacher} --config {params.config} --device {params.device}"
        " --threads {threads} --out-dir {output} > {log} 2>&1" % KIND

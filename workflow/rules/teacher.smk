# Teachers: trained once per (dataset, noise level, seed); their cached predictions feed every student.


rule train_teachers:
    input:
        data="data/{dataset}/clean.npz",
        noisy=group_noisy,
        code=TRAIN_SRC,
    output:
        directory("models/{dataset}/%s/teachers/g{group}" % KIND),
    params:
        config=lambda w: quoted_json(teacher_config(config, w.dataset)),
        models=group_members,
        device=config["device"],
    threads: THREADS
    log:
        "results/logs/teachers/{dataset}/g{group}.log",
    shell:
        "python -m kdreg train-teachers --data {input.data} --kind %s --models {params.models}"
        " --config {params.config} --device {params.device} --threads {threads} --out-dir {output} > {log} 2>&1"
        % KIND

# Datasets and label noise.


for clean_, (paths_, label_) in DATA_JOBS.items():

    rule:
        name:
            job_name("make_data", label_, key=paths_.data_key)
        conda:
            "../../environment.yml"
        input:
            prepared=layout.prepared_path(paths_.params, paths_.dataset) or [],
            table=paths_.params["datasets"][layout.base_name(paths_.dataset)].get("path") or [],  # a table's file
            code=code("make-data"),
        output:
            data=clean_,
            checksum=f"{clean_}.sha256",
        params:
            dataset=paths_.dataset,
            config=run_config(layout.data_config(paths_.params, paths_.dataset)),
            prepared=lambda w, input: ["--prepared", input.prepared] if input.prepared else [],
        log:
            f"results/logs/make_data/{paths_.dataset}-{paths_.data_key}.log",
        shell:
            "python -m kdreg --log {log:q} make-data --dataset {params.dataset:q} --config {params.config:q}"
            " {params.prepared:q} --out {output.data:q}"


# Label noise: one job per group of models (pipeline.group_size), writing each member's p{level}_s{seed}.npz: a
# process start costs more than a noisy set (0.3 s against a few ms). A set that two variants share belongs to
# the first group that needs it.
for name_, (paths_, members_) in NOISE_JOBS.items():

    rule:
        name:
            name_
        conda:
            "../../environment.yml"
        input:
            data=paths_.clean,
            code=code("corrupt"),
        output:
            data=[paths_.noisy(level, seed) for level, seed in members_],
            checksum=[f"{paths_.noisy(level, seed)}.sha256" for level, seed in members_],
        params:
            kind=paths_.kind,
            spread=paths_.spread,
            levels=[level for level, _ in members_],
            seeds=[seed for _, seed in members_],
        log:
            f"results/logs/corrupt/{paths_.dataset}-{paths_.data_key}/{paths_.noise}/{name_}.log",
        shell:
            "python -m kdreg --log {log:q} corrupt --data {input.data:q} --kind {params.kind:q} --spread {params.spread:q}"
            " --level {params.levels:q} --seed {params.seeds:q} --out {output.data:q}"

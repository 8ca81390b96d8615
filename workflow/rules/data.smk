# Datasets and label noise.


rule make_data:
    conda:
        "../../environment.yml"
    input:
        prepared=lambda w: layout.prepared_path(data_job(w).params, w.dataset) or [],
        table=lambda w: config["datasets"][layout.base_name(w.dataset)].get("path") or [],  # a table's file
        code=code("make-data"),
    output:
        data="data/{dataset}/{datakey}/clean.npz",
        checksum="data/{dataset}/{datakey}/clean.npz.sha256",
    params:
        config=lambda w: run_config(layout.data_config(data_job(w).params, w.dataset)),
        prepared=lambda w, input: ["--prepared", input.prepared] if input.prepared else [],
    log:
        "results/logs/make_data/{dataset}-{datakey}.log",
    shell:
        "python -m kdreg --log {log:q} make-data --dataset {wildcards.dataset} --config {params.config:q} {params.prepared:q}"
        " --out {output.data:q}"


rule corrupt:
    conda:
        "../../environment.yml"
    input:
        data="data/{dataset}/{datakey}/clean.npz",
        code=code("corrupt"),
    output:
        data="data/{dataset}/{datakey}/{kind}_spread{spread}/p{level}_s{seed}.npz",
        checksum="data/{dataset}/{datakey}/{kind}_spread{spread}/p{level}_s{seed}.npz.sha256",
    wildcard_constraints:
        kind="[a-z]+",
        spread=r"[0-9.]+",
    log:
        "results/logs/corrupt/{dataset}-{datakey}/{kind}_spread{spread}/p{level}_s{seed}.log",
    shell:
        "python -m kdreg --log {log:q} corrupt --data {input.data:q} --kind {wildcards.kind} --spread {wildcards.spread}"
        " --level {wildcards.level} --seed {wildcards.seed} --out {output.data:q}"

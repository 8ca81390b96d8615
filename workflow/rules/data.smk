# Datasets and label noise.


rule make_data:
    input:
        prepared=lambda w: ([MPIIGAZE_PREPARED] if w.dataset.startswith("mpiigaze.")
                            else [MULTIPIE_PREPARED] if w.dataset == "multipie" else []),
        table=lambda w: [config["datasets"][w.dataset]["path"]]
        if config["datasets"].get(w.dataset, {}).get("kind") == "table" else [],
        code=code("make-data"),
    output:
        data="data/{dataset}/{datakey}/clean.npz",
        checksum="data/{dataset}/{datakey}/clean.npz.sha256",
    params:
        config=lambda w: run_config(layout.data_config(config, w.dataset)),
        check=lambda w: current(w, w.datakey, PATHS[w.dataset].data_key),
        prepared=lambda w, input: ["--prepared", input.prepared[0]] if input.prepared else [],
    log:
        "results/logs/make_data/{dataset}-{datakey}.log",
    shell:
        KDREG + " make-data --dataset {wildcards.dataset} --config {params.config:q} {params.prepared:q}"
        " --out {output.data:q}"


rule corrupt:
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
        KDREG + " corrupt --data {input.data:q} --kind {wildcards.kind} --spread {wildcards.spread}"
        " --level {wildcards.level} --seed {wildcards.seed} --out {output.data:q}"

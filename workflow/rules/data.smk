# Datasets and label noise.


rule make_data:
    input:
        prepared=lambda w: ([MPIIGAZE_PREPARED] if w.dataset.startswith("mpiigaze.")
                            else [MULTIPIE_PREPARED] if w.dataset == "multipie" else []),
        table=lambda w: [config["datasets"][w.dataset]["path"]]
        if config["datasets"].get(w.dataset, {}).get("kind") == "table" else [],
        code=DATA_SRC,
    output:
        data="data/{dataset}/{datakey}/clean.npz",
        checksum="data/{dataset}/{datakey}/clean.npz.sha256",
    params:
        config=lambda w: quoted_json(layout.data_config(config, w.dataset)),
        check=lambda w: current(w, w.datakey, PATHS[w.dataset].data_key),
        prepared=lambda w, input: f"--prepared {input.prepared}" if input.prepared else "",
    log:
        "results/logs/make_data/{dataset}-{datakey}.log",
    shell:
        "python -m kdreg make-data --dataset {wildcards.dataset} --config {params.config}"
        " {params.prepared} --out {output.data} > {log} 2>&1"


rule corrupt:
    input:
        data="data/{dataset}/{datakey}/clean.npz",
        code=DATA_SRC,
    output:
        "data/{dataset}/{datakey}/{kind}_spread{spread}/p{level}_s{seed}.npz",
    wildcard_constraints:
        kind="[a-z]+",
        spread=r"[0-9.]+",
    log:
        "results/logs/corrupt/{dataset}-{datakey}/{kind}_spread{spread}/p{level}_s{seed}.log",
    shell:
        "python -m kdreg corrupt --data {input.data} --kind {wildcards.kind} --spread {wildcards.spread}"
        " --level {wildcards.level} --seed {wildcards.seed} --out {output} > {log} 2>&1"

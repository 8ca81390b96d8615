# Datasets and label noise.


rule make_data:
    input:
        code=DATA_SRC,
    output:
        "data/{dataset}/clean.npz",
    params:
        config=lambda w: quoted_json({k: v for k, v in config["datasets"][w.dataset].items()
                                      if k not in ("enabled", "teacher", "student")}),
    log:
        "results/logs/make_data/{dataset}.log",
    shell:
        "python -m kdreg make-data --dataset {wildcards.dataset} --config {params.config} --out {output} > {log} 2>&1"


rule corrupt:
    input:
        data="data/{dataset}/clean.npz",
        code=DATA_SRC,
    output:
        "data/{dataset}/noisy/%s_p{level}_s{seed}.npz" % KIND,
    params:
        spread=config["noise"]["spread"],
    log:
        "results/logs/corrupt/{dataset}/%s_p{level}_s{seed}.log" % KIND,
    shell:
        "python -m kdreg corrupt --data {input.data} --kind %s --level {wildcards.level} --seed {wildcards.seed}"
        " --spread {params.spread} --out {output} > {log} 2>&1" % KIND

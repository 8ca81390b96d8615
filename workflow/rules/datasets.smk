# Real datasets: MPIIGaze (downloaded) and Multi-PIE (licensed, the user's copy), each prepared once.
# MPIIGaze: the official archive (or the user's copy), verified, extracted into resources/, and the Evaluation
# Subset prepared once as data/mpiigaze/prepared-{key}.npz (DVC-cached, so other machines `dvc pull` it instead).
# The user's paths and URL reach the shell only quoted ({...:q}).
GAZE = config["datasets"].get("mpiigaze", {})
MPIIGAZE_ARCHIVE = GAZE.get("archive") or "resources/mpiigaze/MPIIGaze.tar.gz"
MPIIGAZE_ROOT = GAZE.get("root") or "resources/mpiigaze/raw/MPIIGaze"
# Keyed by what selects the samples, like every other data path (see kdreg.layout).
MPIIGAZE_PREPARED = layout.prepared_path(config, "mpiigaze")


rule mpiigaze_download:
    conda:
        "../../environment.yml"
    input:
        code=code("mpiigaze"),
    output:
        "resources/mpiigaze/MPIIGaze.tar.gz",
    params:
        url=["--url", GAZE["url"]] if GAZE.get("url") else [],  # none: the official archive
    log:
        "results/logs/mpiigaze/download.log",
    shell:
        "python -m kdreg --log {log:q} mpiigaze download {params.url:q} --out {output:q}"


rule mpiigaze_extract:
    conda:
        "../../environment.yml"
    input:
        archive=MPIIGAZE_ARCHIVE,
        code=code("mpiigaze"),
    output:
        directory("resources/mpiigaze/raw"),
    log:
        "results/logs/mpiigaze/extract.log",
    shell:
        "python -m kdreg --log {log:q} mpiigaze extract --archive {input.archive:q} --out {output:q}"


rule mpiigaze_prepare:
    conda:
        "../../environment.yml"
    input:
        root=MPIIGAZE_ROOT if GAZE.get("root") else "resources/mpiigaze/raw",
        code=code("mpiigaze"),
    output:
        data=MPIIGAZE_PREPARED,
        checksum=f"{MPIIGAZE_PREPARED}.sha256",
    params:
        root=MPIIGAZE_ROOT,
        people=GAZE.get("people") or [],
        per_person=["--per-person", GAZE["per_person"]] if GAZE.get("per_person") else [],
    log:
        "results/logs/mpiigaze/prepare.log",
    shell:
        "python -m kdreg --log {log:q} mpiigaze prepare --root {params.root:q} --people {params.people:q}"
        " {params.per_person:q} --out {output.data:q}"


# Multi-PIE: licensed, never downloaded; the user's copy (datasets.multipie.root) is checked before any job runs.
PIE = config["datasets"].get("multipie", {})
MULTIPIE_PREPARED = layout.prepared_path(config, "multipie")


rule multipie_prepare:
    conda:
        "../../environment.yml"
    input:
        root=PIE.get("root") or [],
        code=code("multipie"),
    output:
        data=MULTIPIE_PREPARED,
        checksum=f"{MULTIPIE_PREPARED}.sha256",
    params:
        size=PIE.get("image_size"),
        crop=PIE.get("crop"),
    log:
        "results/logs/multipie/prepare.log",
    shell:
        "python -m kdreg --log {log:q} multipie prepare --root {input.root:q} --image-size {params.size:q} --crop {params.crop}"
        " --out {output.data:q}"

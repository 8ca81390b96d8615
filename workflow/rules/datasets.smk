# Real datasets: MPIIGaze (downloaded) and Multi-PIE (licensed, the user's copy), each prepared once.
# MPIIGaze: the official archive (or the user's copy), verified, extracted into resources/, and the Evaluation
# Subset prepared once as data/mpiigaze/prepared-{key}.npz (DVC-cached, so other machines `dvc pull` it instead).
# The user's paths and URL reach the shell only quoted ({...:q}).
GAZE = config["datasets"].get("mpiigaze", {})
MPIIGAZE_ARCHIVE = GAZE.get("archive") or "resources/mpiigaze/MPIIGaze.tar.gz"
MPIIGAZE_ROOT = GAZE.get("root") or "resources/mpiigaze/raw/MPIIGaze"
# Keyed by what selects the samples, like every other data path (see kdreg.layout).
MPIIGAZE_PREPARED = "data/mpiigaze/prepared-%s.npz" % layout.config_key(
    {"people": GAZE.get("people") or [], "per_person": GAZE.get("per_person", 3000)})


rule mpiigaze_download:
    input:
        code=code("mpiigaze"),
    output:
        "resources/mpiigaze/MPIIGaze.tar.gz",
    params:
        url=GAZE.get("url", "http://datasets.d2.mpi-inf.mpg.de/MPIIGaze/MPIIGaze.tar.gz"),
    log:
        "results/logs/mpiigaze/download.log",
    shell:
        KDREG + " mpiigaze download --url {params.url:q} --out {output:q}"


rule mpiigaze_extract:
    input:
        archive=MPIIGAZE_ARCHIVE,
        code=code("mpiigaze"),
    output:
        directory("resources/mpiigaze/raw"),
    log:
        "results/logs/mpiigaze/extract.log",
    shell:
        KDREG + " mpiigaze extract --archive {input.archive:q} --out {output:q}"


rule mpiigaze_prepare:
    input:
        root=MPIIGAZE_ROOT if GAZE.get("root") else "resources/mpiigaze/raw",
        code=code("mpiigaze"),
    output:
        data=MPIIGAZE_PREPARED,
        checksum=MPIIGAZE_PREPARED + ".sha256",
    params:
        root=MPIIGAZE_ROOT,
        people=GAZE.get("people") or [],
        per_person=GAZE.get("per_person", 3000),
    log:
        "results/logs/mpiigaze/prepare.log",
    shell:
        KDREG + " mpiigaze prepare --root {params.root:q} --people {params.people:q}"
        " --per-person {params.per_person} --out {output.data:q}"


# Multi-PIE: licensed, never downloaded; the user's copy (datasets.multipie.root) is checked before any job runs.
PIE = config["datasets"].get("multipie", {})
MULTIPIE_PREPARED = "data/multipie/prepared-%s.npz" % layout.config_key(
    {"image_size": PIE.get("image_size", [64, 64]), "crop": PIE.get("crop", 0.8)})


rule multipie_prepare:
    input:
        root=PIE.get("root") or [],
        code=code("multipie"),
    output:
        data=MULTIPIE_PREPARED,
        checksum=MULTIPIE_PREPARED + ".sha256",
    params:
        size=PIE.get("image_size", [64, 64]),
        crop=PIE.get("crop", 0.8),
    log:
        "results/logs/multipie/prepare.log",
    shell:
        KDREG + " multipie prepare --root {input.root:q} --image-size {params.size:q} --crop {params.crop}"
        " --out {output.data:q}"

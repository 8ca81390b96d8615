"""The checksum manifest of a trained group: every file its job wrote, with its SHA-256, written last.

Snakemake judges a directory output by its timestamp only, so a run deleted or damaged after training goes
unnoticed until something reads it. The manifest lets ``collect``, the students (reading their teacher) and
``kdreg check`` find such damage, name the file, and offer a fix that works when followed literally.
"""
from __future__ import annotations

from pathlib import Path

from kdreg.io import atomic_path, sha256

MANIFEST = "SHA256SUMS"
# Snakemake's own marker inside directory outputs, written after the job: not ours to check.
IGNORED = {MANIFEST, ".snakemake_timestamp"}


def group_fix(group_dir) -> str:
    return (f"delete the group's folder (rm -r '{group_dir}') and run the pipeline again "
            "(snakemake --cores all all): it retrains that group and whatever learned from it")


def write_manifest(group_dir) -> None:
    """Record every file under ``group_dir`` (its run directories) with its SHA-256."""
    group_dir = Path(group_dir)
    files = sorted(p for p in group_dir.rglob("*") if p.is_file() and p.name not in IGNORED)
    lines = [f"{sha256(p)}  {p.relative_to(group_dir).as_posix()}\n" for p in files]
    with atomic_path(group_dir / MANIFEST) as tmp:
        tmp.write_text("".join(lines))


def read_manifest(group_dir) -> dict[str, str]:
    """``{relative path: sha256}`` of a group; ValueError with the fix when the manifest is missing or garbled."""
    group_dir = Path(group_dir)
    if not group_dir.is_dir():
        raise FileNotFoundError(f"{group_dir}: no such run group; run the pipeline (snakemake --cores all all), "
                                "which trains it")
    path = group_dir / MANIFEST
    if not path.exists():
        raise ValueError(f"{path} is missing: the training job did not finish, or the folder was changed by hand; "
                         + group_fix(group_dir))
    entries = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ValueError(f"{path}: line {n} is not 'SHA256  FILE'; the manifest is damaged; "
                             + group_fix(group_dir))
        entries[rel] = digest
    return entries


def verify_group(group_dir) -> list[Path]:
    """Check every file of a group against its manifest; return its run directories (those holding
    ``metrics.json``) in a stable order. ValueError names the first missing or changed file."""
    group_dir = Path(group_dir)
    entries = read_manifest(group_dir)
    for rel, digest in entries.items():
        path = group_dir / rel
        if not path.is_file():
            raise ValueError(f"{path} is missing (listed in {group_dir / MANIFEST}); " + group_fix(group_dir))
        if sha256(path) != digest:
            raise ValueError(f"{path} was changed or damaged after training (its SHA-256 differs from the one in "
                             f"{group_dir / MANIFEST}); " + group_fix(group_dir))
    runs = sorted({(group_dir / rel).parent for rel in entries if rel.endswith("/metrics.json")})
    if not runs:
        raise ValueError(f"{group_dir / MANIFEST} lists no finished run; " + group_fix(group_dir))
    return runs

"""Fingerprints of the files a model reads: what resume matches, so changed weights are measured again."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

HASHED_BYTES_LIMIT = 64 * 2**20  # bigger files are fingerprinted by size and modification time


def files_fingerprint(files: Iterable[tuple[str, Path]]) -> str:
    """sha256 (16 hex digits) over `(label, file)` pairs in label order: each label and the file's bytes (its size
    and modification time instead for files over 64 MiB, so real checkpoints are not read in full)."""
    digest = hashlib.sha256()
    for label, file in sorted(files, key=lambda pair: pair[0]):
        digest.update(f"{label}\0".encode())
        stat = file.stat()
        digest.update(file.read_bytes() if stat.st_size <= HASHED_BYTES_LIMIT else f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def folder_files(folder: Path, prefix: str = "") -> list[tuple[str, Path]]:
    """Every file under `folder`, labelled by `prefix` + its path relative to the folder."""
    return [(prefix + file.relative_to(folder).as_posix(), file) for file in sorted(folder.rglob("*")) if file.is_file()]

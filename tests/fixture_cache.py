"""Test models and files built once per test run and shared by its xdist workers: the first process that asks
builds them under a lock, the others read them (tests treat them as read-only)."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path
from typing import Callable, TypeVar

Files = TypeVar("Files")


def built_once(root: Path, name: str, build: Callable[[Path], Files], found: Callable[[Path], Files]) -> Files:
    """The files under `root/name`, written by `build(folder)` in the first process that asks (an flock'd marker
    file); `found(folder)` names them."""
    root.mkdir(parents=True, exist_ok=True)
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
            done.touch()
    return found(folder)


def shared_base(tmp_path_factory) -> Path:
    """The run's base folder: under pytest-xdist the parent of each worker's, so one worker writes the files."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base

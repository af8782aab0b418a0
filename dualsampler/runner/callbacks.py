"""Hydra callback closing a sweep with the tally of *this launch's* jobs and the list of its failed ones.

A sweep folder may hold jobs of earlier launches with other overrides (a relaunch after `overlap_factor=2,-1,4`
with `overlap_factor=2,4`): their failure.json must not fail the new sweep. A job belongs to this launch when
Hydra wrote its `.hydra/overrides.yaml` (or the job wrote its result.json/failure.json) after the launch began;
Hydra rewrites `.hydra/` at the start of every job, also of a finished job the runner then skips.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig

from .results import FAILURE_FILE, RESULT_FILE

log = logging.getLogger(__name__)
HYDRA_SUBDIR = ".hydra"


def clock_now(folder: Path) -> int:
    """The filesystem's current time in `folder` (ns): the mtime of a file created and removed there, so it
    compares with other files' mtimes at the filesystem's own granularity."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=folder, prefix=".launch.")
    try:
        return os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
        os.unlink(path)


def _newest_mtime(job_dir: Path, hydra_subdir: str | None) -> int:
    names = [RESULT_FILE, FAILURE_FILE] + ([f"{hydra_subdir}/overrides.yaml"] if hydra_subdir else [])
    stamps = [(job_dir / name).stat().st_mtime_ns for name in names if (job_dir / name).is_file()]
    return max(stamps, default=-1)


def launched_jobs(sweep_dir: Path, since_ns: int, hydra_subdir: str | None = HYDRA_SUBDIR) -> list[Path]:
    """Job folders under `sweep_dir` that a launch begun at `since_ns` (see `clock_now`) ran or skipped, sorted."""
    sweep_dir = Path(sweep_dir)
    candidates = {p.parent for name in (RESULT_FILE, FAILURE_FILE) for p in sweep_dir.rglob(name)}
    if hydra_subdir:
        candidates |= {p.parent.parent for p in sweep_dir.rglob(f"{hydra_subdir}/overrides.yaml")}
    return sorted(job for job in candidates if _newest_mtime(job, hydra_subdir) >= since_ns)


def sweep_failures(job_dirs: list[Path]) -> list[dict[str, Any]]:
    """`failure.json` of every failed job among `job_dirs` (each with `name` and `error`), in their order."""
    return [json.loads((job / FAILURE_FILE).read_text()) for job in job_dirs if (job / FAILURE_FILE).is_file()]


class ReportSweep(Callback):
    """At the end of a multirun, log how many of this launch's jobs hold a result and list its failed ones, log the
    sweep's summary table to the job's tracker (one row per job: its folder and aggregate metrics); exit 1 if any
    of them failed. Jobs of earlier launches in the same folder are not counted."""

    def __init__(self) -> None:
        self.started_ns: int | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started_ns = clock_now(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        since = self.started_ns if self.started_ns is not None else 0
        jobs = launched_jobs(sweep_dir, since, config.hydra.get("output_subdir"))
        finished = sum((job / RESULT_FILE).is_file() for job in jobs)
        failures = sweep_failures(jobs)
        log.info("sweep %s: %d job(s) this launch, %d with a result, %d failed", sweep_dir, len(jobs), finished, len(failures))
        for failure in failures:
            log.error("FAILED %s: %s", failure.get("name", "?"), failure.get("error", "?"))
        if finished and config.get("logger") is not None:
            status = instantiate(config.logger).log_sweep_summary(sweep_dir)
            if not status.get("ok", False):
                log.warning("sweep summary not logged: %s", status.get("error"))
        if failures:
            raise SystemExit(1)

"""Hydra callback closing a sweep with its tally and the list of failed jobs (read from their failure.json)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .results import FAILURE_FILE, RESULT_FILE

log = logging.getLogger(__name__)


def sweep_failures(sweep_dir: Path) -> list[dict[str, Any]]:
    """`failure.json` of every failed job under `sweep_dir` (each with `name` and `error`), sorted by job."""
    return [json.loads(p.read_text()) for p in sorted(Path(sweep_dir).rglob(FAILURE_FILE))]


class ReportSweep(Callback):
    """At the end of a multirun, log how many jobs hold a result and list the failed ones; exit 1 if any failed."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        finished = len(list(sweep_dir.rglob(RESULT_FILE)))
        failures = sweep_failures(sweep_dir)
        log.info("sweep %s: %d job(s) with a result, %d failed", sweep_dir, finished, len(failures))
        for failure in failures:
            log.error("FAILED %s: %s", failure["name"], failure["error"])
        if failures:
            raise SystemExit(1)

"""Experiment trackers for the runner (W&B or none) and a reader for offline W&B run files.

A tracker has one method, `log_job(name, config, metrics, per_seed, grid, out_dir)`, called once per finished
job before its result.json is written (so a job whose logging fails is recomputed on the next launch).
"""

from __future__ import annotations

import json
import netrc
import os
import struct
from pathlib import Path
from typing import Any

WANDB_HOST = "api.wandb.ai"
_LOG_HEADER = 7  # the .wandb file: a 7-byte header, then LevelDB-log records in 32 KiB blocks
_LOG_BLOCK = 32768
_FULL, _FIRST, _LAST = 1, 2, 4  # record types; 3 (middle) continues a record


def wandb_mode(mode: str) -> str:
    """`auto` -> $WANDB_MODE if set, `online` when W&B is configured ($WANDB_API_KEY or a login in ~/.netrc), else `offline`."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        logged_in = netrc.netrc().authenticators(WANDB_HOST) is not None
    except (OSError, netrc.NetrcParseError):
        logged_in = False
    return "online" if logged_in else "offline"


class NullTracker:
    """Logs nothing: the job's result.json is the only record."""

    def log_job(self, name: str, config: dict, metrics: dict, per_seed: list[dict], grid: Path, out_dir: Path) -> None:
        """Do nothing."""


class WandbTracker:
    """One W&B run per job in `group` (the sweep): config, metrics, the grid image and a per-seed table.

    The run lives in `<job folder>/wandb/`; offline runs upload later with `wandb sync <job folder>/wandb/offline-run-*`.
    """

    def __init__(self, project: str = "dualsampler", entity: str | None = None, group: str | None = None, mode: str = "auto"):
        if mode not in ("auto", "online", "offline", "disabled"):
            raise ValueError(f"logger.mode must be one of auto, online, offline, disabled; got {mode!r}")
        self.project, self.entity, self.group, self.mode = project, entity, group, mode

    def log_job(self, name: str, config: dict, metrics: dict, per_seed: list[dict], grid: Path, out_dir: Path) -> None:
        """Log one finished job as one W&B run and close it."""
        import wandb

        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True)
        run = wandb.init(
            project=self.project,
            entity=self.entity,
            group=self.group,
            name=name,
            job_type="dual-sample",
            config=config,
            dir=str(out_dir),
            mode=wandb_mode(self.mode),
            settings=settings,
        )
        try:
            columns = ["seed", *sorted({key for row in per_seed for key in row if key != "seed"})]
            table = wandb.Table(columns=columns, data=[[row.get(c) for c in columns] for row in per_seed])
            run.log({**metrics, "grid": wandb.Image(str(grid), caption=name), "per_seed": table})
            run.summary.update(metrics)
        finally:
            run.finish()


def _records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    position, pending = _LOG_HEADER, b""
    while position + _LOG_HEADER <= len(data):
        left = _LOG_BLOCK - position % _LOG_BLOCK
        if left < _LOG_HEADER:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + _LOG_HEADER])
        chunk = data[position + _LOG_HEADER : position + _LOG_HEADER + length]
        position += _LOG_HEADER + length
        if kind == 0:
            continue
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            yield wandb_internal_pb2.Record.FromString(pending)


def _items(updates) -> dict[str, Any]:
    return {".".join(item.nested_key) or item.key: json.loads(item.value_json) for item in updates}


def read_offline_run(run_dir: str | Path) -> dict[str, Any]:
    """Read an offline W&B run (`.../offline-run-*/` or its `run-*.wandb` file) without network.

    Returns `{"project", "group", "name", "config", "history": [row, ...], "summary"}`; nested keys are joined with ".".
    """
    path = Path(run_dir)
    if path.is_dir():
        path = next(path.glob("run-*.wandb"))
    run: dict[str, Any] = {"config": {}, "history": [], "summary": {}}
    for record in _records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(project=record.run.project, group=record.run.run_group, name=record.run.display_name)
            run["config"].update(_items(record.run.config.update))
        elif kind == "config":
            run["config"].update(_items(record.config.update))
        elif kind == "history":
            run["history"].append(_items(record.history.item))
        elif kind == "summary":
            run["summary"].update(_items(record.summary.update))
    return run

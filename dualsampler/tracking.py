"""Experiment trackers for the runner (W&B or none).

A tracker has one method, `log_job(name, config, metrics, per_seed, grid, out_dir) -> status`, called once per
finished job after its result.json is written. It never raises: a tracker failure is logged and returned as
`{"tracker": ..., "ok": False, "error": "..."}` for the runner to add to result.json, so it never costs the job.

Offline W&B means no socket but wandb's local one: wandb 0.31 builds its telemetry exporter from its *global*
settings (not the run's), so before the first run the global settings get the run's mode, error reporting is
switched off (WANDB_ERROR_REPORTING=false, read by wandb's telemetry recorder and by the wandb-core launcher) and
the exporter is disabled for the process (`wandb.analytics...opentelemetry_proxy.disable()`).
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from .validation import check_bounded, check_choice

log = logging.getLogger(__name__)

WANDB_HOST = "api.wandb.ai"
MODES = ("auto", "online", "offline", "disabled")
INIT_TIMEOUT_S = 15.0  # wandb's default is 90 s: an unreachable server would hold every job that long

Status = dict[str, Any]


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


def quiet_wandb(mode: str):
    """Import wandb with its telemetry off and its global settings in `mode` (online|offline|disabled); returns
    the module. Call before `wandb.init`: the telemetry exporter reads the global settings, not the run's."""
    os.environ["WANDB_ERROR_REPORTING"] = "false"
    import wandb

    try:
        from wandb.analytics.opentelemetry import opentelemetry_proxy
    except ImportError:  # wandb before 0.31 has no telemetry exporter to disable
        opentelemetry_proxy = None
    if opentelemetry_proxy is not None:
        opentelemetry_proxy.disable()
    wandb.setup(settings=wandb.Settings(mode=mode, x_disable_stats=True, silent=True))
    return wandb


def image_table(rows: list[dict], out_dir: Path, image: Any) -> tuple[list[str], list[list[Any]]]:
    """(columns, data) of the per-image table: one row per row of `rows` (one per image), the columns `item` (when
    any row has one), `seed`, `image` (when any row has one: `image(out_dir / path, caption="<item> seed <n>")`),
    then the metrics in name order; a key a row lacks is None."""
    keys = {key for row in rows for key in row}
    metrics = sorted(keys - {"item", "seed", "image"})
    columns = [key for key in ("item", "seed", "image") if key == "seed" or key in keys] + metrics

    def cell(row: dict, key: str) -> Any:
        if key != "image" or row.get("image") is None:
            return row.get(key)
        caption = " ".join(str(part) for part in (row.get("item"), "seed", row.get("seed")) if part is not None)
        return image(str(out_dir / row["image"]), caption=caption)

    return columns, [[cell(row, key) for key in columns] for row in rows]


class NullTracker:
    """Logs nothing: the job's result.json is the only record."""

    def log_job(self, name: str, config: dict, metrics: dict, per_seed: list[dict], grid: Path, out_dir: Path) -> Status:
        """Do nothing; `{"tracker": "none", "ok": True}`."""
        return {"tracker": "none", "ok": True}


class WandbTracker:
    """One W&B run per job in `group` (the sweep): config, metrics, the grid image and a table of one row per image
    (`image_table`: item, seed, the image, its metrics), logged as `per_seed`.

    The run lives in `<job folder>/wandb/`; offline runs upload later with `wandb sync <job folder>/wandb/offline-run-*`.
    `init_timeout` (seconds, in (0, 600]) bounds how long `wandb.init` may wait for the server. With `mode=auto`
    an online run that fails (no network, bad key) is logged offline instead, and the status says so.
    """

    def __init__(
        self,
        project: str = "dualsampler",
        entity: str | None = None,
        group: str | None = None,
        mode: str = "auto",
        init_timeout: float = INIT_TIMEOUT_S,
    ):
        check_choice(mode, "logger.mode", MODES)
        if not isinstance(project, str) or not project:
            raise ValueError(f"logger.project must be a non-empty string; got {project!r}")
        for key, value in (("entity", entity), ("group", group)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"logger.{key} must be a string or null; got {value!r}")
        self.project, self.entity, self.group, self.mode = project, entity, group, mode
        self.init_timeout = float(check_bounded(init_timeout, "init_timeout", "logger.init_timeout"))

    def _log(self, mode: str, name: str, config: dict, metrics: dict, per_seed: list[dict], grid: Path, out_dir: Path) -> None:
        wandb = quiet_wandb(mode)
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, init_timeout=self.init_timeout)
        run = wandb.init(
            project=self.project, entity=self.entity, group=self.group, name=name, job_type="dual-sample",
            config=config, dir=str(out_dir), mode=mode, settings=settings,
        )
        try:
            columns, data = image_table(per_seed, out_dir, wandb.Image)
            table = wandb.Table(columns=columns, data=data)
            run.log({**metrics, "grid": wandb.Image(str(grid), caption=name), "per_seed": table})
            run.summary.update(metrics)
        except BaseException:
            run.finish(exit_code=1)
            raise
        run.finish()

    def log_job(self, name: str, config: dict, metrics: dict, per_seed: list[dict], grid: Path, out_dir: Path) -> Status:
        """Log one finished job as one W&B run and close it; never raises.

        Returns `{"tracker": "wandb", "ok": True, "mode": ...}`, or with `"ok": False` and `"error"` when logging
        failed (the failure is also logged); `"fallback_from"` and `"error"` when `auto` fell back to offline.
        """
        mode = wandb_mode(self.mode)
        try:
            self._log(mode, name, config, metrics, per_seed, grid, out_dir)
            return {"tracker": "wandb", "ok": True, "mode": mode}
        except Exception as error:  # a tracker failure must never cost the finished job
            failure = f"{type(error).__name__}: {error}"
        log.warning("%s: W&B %s logging failed (%s)", name, mode, failure)
        if self.mode != "auto" or mode != "online":
            return {"tracker": "wandb", "ok": False, "mode": mode, "error": failure}
        try:
            self._log("offline", name, config, metrics, per_seed, grid, out_dir)
        except Exception as error:
            log.warning("%s: W&B offline logging failed too (%s: %s)", name, type(error).__name__, error)
            return {"tracker": "wandb", "ok": False, "mode": "offline", "error": f"{failure}; offline: {type(error).__name__}: {error}"}
        log.info("%s: logged offline instead; upload later with `wandb sync %s/wandb/offline-run-*`", name, out_dir)
        return {"tracker": "wandb", "ok": True, "mode": "offline", "fallback_from": "online", "error": failure}

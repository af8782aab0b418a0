"""Experiment trackers for the runner (W&B or none).

A tracker has two methods: `log_job(name, config, metrics, per_seed, grid, out_dir, masks=None, reference=None)
-> status`, called once per finished job after its result.json is written, and `log_sweep_summary(sweep_dir) ->
status`, called once when a sweep ends. Neither raises: a tracker failure is logged and returned as
`{"tracker": ..., "ok": False, "error": "..."}` for the runner to record, so it never costs the job or the sweep.

Offline W&B means no socket but wandb's local one: wandb 0.31 builds its telemetry exporter from its *global*
settings (not the run's), so before the first run the global settings get the run's mode, error reporting is
switched off (WANDB_ERROR_REPORTING=false, read by wandb's telemetry recorder and by the wandb-core launcher) and
the exporter is disabled for the process (`wandb.analytics...opentelemetry_proxy.disable()`).
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .validation import BOUNDS, check_bounded, check_choice

log = logging.getLogger(__name__)

WANDB_HOST = "api.wandb.ai"
MODES = ("auto", "online", "offline", "disabled")
INIT_TIMEOUT_S = 15.0  # wandb's default is 90 s: an unreachable server would hold every job that long
MAX_LABEL = int(BOUNDS["regions"].high)  # label k + 1 is region k
REFERENCE_GLOB = "reference_stats.*"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")

Status = dict[str, Any]
LabelMaps = Mapping[str | None, np.ndarray]


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


def region_label_map(masks: Sequence[Any]) -> np.ndarray:
    """The label map [H, W] (uint8) of an item's region masks ([H, W], [1, H, W] or [1, 1, H, W] tensors or arrays
    in [0, 1], all one size): 0 = base, k + 1 where region k's mask is >= 0.5, later regions on top."""
    if not 1 <= len(masks) <= MAX_LABEL:
        raise ValueError(f"masks must hold 1 to {MAX_LABEL} region masks, got {len(masks)}")
    planes = [np.asarray(mask.detach().cpu() if hasattr(mask, "detach") else mask, dtype=np.float32) for mask in masks]
    shape = planes[0].shape[-2:]
    labels = np.zeros(shape, dtype=np.uint8)
    for k, plane in enumerate(planes):
        if plane.size != shape[0] * shape[1] or plane.shape[-2:] != shape:
            raise ValueError(f"masks[{k}] must be a {shape[0]}x{shape[1]} mask like masks[0], got {plane.shape}")
        labels[plane.reshape(shape) >= 0.5] = k + 1
    return labels


def check_label_maps(masks: LabelMaps | None) -> dict[str | None, np.ndarray]:
    """`masks` (item id, None for a job's single item -> label map [H, W] of integers in [0, 16]) checked; {} for
    None."""
    if masks is None:
        return {}
    if not isinstance(masks, Mapping):
        raise ValueError(f"masks must map item ids to label maps [H, W], got {type(masks).__name__}")
    checked = {}
    for item, labels in masks.items():
        labels = np.asarray(labels)
        if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
            raise ValueError(f"masks[{item!r}] must be an integer label map [H, W], got {labels.dtype} {labels.shape}")
        if labels.min() < 0 or labels.max() > MAX_LABEL:
            raise ValueError(f"masks[{item!r}] labels must lie in [0, {MAX_LABEL}] (0 base, k + 1 region k), got "
                             f"[{labels.min()}, {labels.max()}]")
        checked[item] = labels.astype(np.uint8)
    return checked


def mask_overlay(labels: np.ndarray, size: tuple[int, int]) -> dict[str, dict[str, Any]]:
    """W&B's `masks=` argument of an image `size` (width, height): the label map resized to it (nearest), classes
    `{0: "base", k + 1: "region<k>"}` up to its largest label."""
    from PIL import Image

    if labels.shape[::-1] != tuple(size):
        labels = np.asarray(Image.fromarray(labels).resize(tuple(size), Image.NEAREST))
    classes = {0: "base", **{k + 1: f"region{k}" for k in range(int(labels.max()))}}
    return {"regions": {"mask_data": labels, "class_labels": classes}}


def image_table(rows: list[dict], out_dir: Path, image: Any,
                masks: LabelMaps | None = None) -> tuple[list[str], list[list[Any]]]:
    """(columns, data) of the per-image table: one row per row of `rows` (one per image), the columns `item` (when
    any row has one), `seed`, `image` (when any row has one: `image(out_dir / path, caption="<item> seed <n>")`,
    with `masks=mask_overlay(...)` of the row's item when `masks` holds its label map), then the metrics in name
    order; a key a row lacks is None."""
    from PIL import Image

    keys = {key for row in rows for key in row}
    metrics = sorted(keys - {"item", "seed", "image"})
    columns = [key for key in ("item", "seed", "image") if key == "seed" or key in keys] + metrics
    masks = masks or {}

    def cell(row: dict, key: str) -> Any:
        if key != "image" or row.get("image") is None:
            return row.get(key)
        caption = " ".join(str(part) for part in (row.get("item"), "seed", row.get("seed")) if part is not None)
        path = out_dir / row["image"]
        if row.get("item") not in masks:
            return image(str(path), caption=caption)
        with Image.open(path) as opened:
            overlay = mask_overlay(masks[row.get("item")], opened.size)
        return image(str(path), caption=caption, masks=overlay)

    return columns, [[cell(row, key) for key in columns] for row in rows]


def model_kind(model: Mapping[str, Any]) -> str:
    """The kind of model a config's `model` names: random_world (random weights), world (the embedded one or a
    world folder) or diffusers (a Stable Diffusion folder or checkpoint)."""
    if model.get("random_seed") is not None:
        return "random_world"
    path = model.get("path")
    if path is None:
        return "world"
    path = Path(str(path))
    diffusers = path.suffix in CHECKPOINT_SUFFIXES or (path / "model_index.json").is_file()
    return "diffusers" if diffusers or model.get("config") is not None else "world"


def run_tags(config: Mapping[str, Any]) -> list[str]:
    """A job's W&B tags from its recorded config: the dual algorithm (`dual._target_`'s class name), the model kind
    (`model_kind`), and the experiment's name when one is chosen; a part the config lacks is left out."""
    tags = []
    dual = config.get("dual")
    if isinstance(dual, Mapping) and isinstance(dual.get("_target_"), str):
        tags.append(dual["_target_"].rsplit(".", 1)[-1])
    if isinstance(config.get("model"), Mapping):
        tags.append(model_kind(config["model"]))
    if isinstance(config.get("experiment"), str) and config["experiment"]:
        tags.append(config["experiment"])
    return tags


def reference_file(out_dir: Path, reference: str | Path | None) -> Path | None:
    """The reference statistics to log: `reference` when given and present, else the first
    `<out_dir>/reference_stats.*`, else the statistics file the job's fid/kid read (`measured_statistics`), else
    None."""
    if reference is not None:
        return Path(reference) if Path(reference).exists() else None
    return next(iter(sorted(Path(out_dir).glob(REFERENCE_GLOB))), None) or measured_statistics(out_dir)


def measured_statistics(out_dir: Path) -> Path | None:
    """The reference statistics file `<out_dir>/result.json` names (`measured_with.reference.statistics`: the file
    a job's fid/inception and kid/inception were measured against) when it exists, else None."""
    from .runner.results import RESULT_FILE

    try:
        result = json.loads((Path(out_dir) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    measured = result.get("measured_with") if isinstance(result, dict) else None
    reference = measured.get("reference") if isinstance(measured, dict) else None
    statistics = reference.get("statistics") if isinstance(reference, dict) else None
    return Path(statistics) if isinstance(statistics, str) and Path(statistics).is_file() else None


def artifact_name(path: Path) -> str:
    """A W&B artifact name for a file or folder: its name with characters W&B refuses replaced by `_`."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", path.name)


def sweep_table(sweep_dir: Path) -> tuple[list[str], list[list[Any]]]:
    """(columns, data) of a sweep's summary: one row per job's result.json under `sweep_dir` (`read_results`),
    `job` (its folder relative to the sweep: the overrides that act on it), then every aggregate metric in name
    order (None where a job lacks it)."""
    from .runner.results import read_results

    results = read_results(sweep_dir)
    metrics = sorted({key for result in results for key in result["metrics"]})
    rows = [[Path(result["dir"]).relative_to(sweep_dir).as_posix()] + [result["metrics"].get(key) for key in metrics]
            for result in results]
    return ["job"] + metrics, rows


class NullTracker:
    """Logs nothing: the job's result.json is the only record."""

    def log_job(self, name: str, config: dict, metrics: dict, per_seed: list[dict], grid: Path, out_dir: Path,
                masks: LabelMaps | None = None, reference: str | Path | None = None) -> Status:
        """Do nothing; `{"tracker": "none", "ok": True}`."""
        return {"tracker": "none", "ok": True}

    def log_sweep_summary(self, sweep_dir: Path) -> Status:
        """Do nothing; `{"tracker": "none", "ok": True}`."""
        return {"tracker": "none", "ok": True}


class WandbTracker:
    """One W&B run per job in `group` (the sweep), tagged `run_tags(config)`: config, metrics, the grid image, the
    trace maps (`<job>/trace/*.png` as `trace/<name>`), a table of one row per image (`image_table`: item, seed, the
    image with its item's region masks as an overlay, its metrics) logged as `per_seed`, and the reference
    statistics (`reference_file`: those of the job's fid/inception) as an artifact of type `reference-statistics`.
    `log_sweep_summary` logs one more run per sweep (job_type `sweep-summary`) with a table of one row per job.

    A job's run lives in `<job folder>/wandb/`, the sweep's in `<sweep folder>/wandb/`; offline runs upload later
    with `wandb sync <folder>/wandb/offline-run-*`. `init_timeout` (seconds, in (0, 600]) bounds how long
    `wandb.init` may wait for the server. With `mode=auto` an online run that fails (no network, bad key) is
    logged offline instead, and the status says so.
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

    def _run(self, mode: str, folder: Path, **init: Any) -> tuple[Any, Any]:
        """(wandb, a started run in `folder`) of this tracker's project, entity and group."""
        wandb = quiet_wandb(mode)
        settings = wandb.Settings(console="off", silent=True, x_disable_stats=True, init_timeout=self.init_timeout)
        run = wandb.init(project=self.project, entity=self.entity, group=self.group, dir=str(folder), mode=mode,
                         settings=settings, **init)
        return wandb, run

    def _log_job(self, mode: str, name: str, config: dict, metrics: dict, per_seed: list[dict], grid: Path,
                 out_dir: Path, masks: dict[str | None, np.ndarray], reference: Path | None) -> None:
        wandb, run = self._run(mode, out_dir, name=name, job_type="dual-sample", config=config, tags=run_tags(config))
        try:
            columns, data = image_table(per_seed, out_dir, wandb.Image, masks)
            traces = {f"trace/{path.stem}": wandb.Image(str(path), caption=path.stem)
                      for path in sorted((out_dir / "trace").glob("*.png"))}
            if reference is not None:
                artifact = wandb.Artifact(artifact_name(reference), type="reference-statistics")
                (artifact.add_dir if reference.is_dir() else artifact.add_file)(str(reference))
                run.log_artifact(artifact)
            run.log({**metrics, "grid": wandb.Image(str(grid), caption=name), **traces,
                     "per_seed": wandb.Table(columns=columns, data=data)})
            run.summary.update(metrics)
        except BaseException:
            run.finish(exit_code=1)
            raise
        run.finish()

    def _log_sweep(self, mode: str, sweep_dir: Path, columns: list[str], data: list[list[Any]]) -> None:
        name = f"{self.group or sweep_dir.name} summary"
        wandb, run = self._run(mode, sweep_dir, name=name, job_type="sweep-summary",
                               config={"sweep_dir": str(sweep_dir), "jobs": len(data)})
        try:
            run.log({"jobs": wandb.Table(columns=columns, data=data)})
        except BaseException:
            run.finish(exit_code=1)
            raise
        run.finish()

    def _with_fallback(self, label: str, folder: Path, log_with: Callable[[str], None]) -> Status:
        """Run `log_with(mode)`; on failure a status with the error, and with `auto` a retry offline."""
        mode = wandb_mode(self.mode)
        try:
            log_with(mode)
            return {"tracker": "wandb", "ok": True, "mode": mode}
        except Exception as error:  # a tracker failure must never cost the finished job or sweep
            failure = f"{type(error).__name__}: {error}"
        log.warning("%s: W&B %s logging failed (%s)", label, mode, failure)
        if self.mode != "auto" or mode != "online":
            return {"tracker": "wandb", "ok": False, "mode": mode, "error": failure}
        try:
            log_with("offline")
        except Exception as error:
            log.warning("%s: W&B offline logging failed too (%s: %s)", label, type(error).__name__, error)
            return {"tracker": "wandb", "ok": False, "mode": "offline",
                    "error": f"{failure}; offline: {type(error).__name__}: {error}"}
        log.info("%s: logged offline instead; upload later with `wandb sync %s/wandb/offline-run-*`", label, folder)
        return {"tracker": "wandb", "ok": True, "mode": "offline", "fallback_from": "online", "error": failure}

    def log_job(self, name: str, config: dict, metrics: dict, per_seed: list[dict], grid: Path, out_dir: Path,
                masks: LabelMaps | None = None, reference: str | Path | None = None) -> Status:
        """Log one finished job as one W&B run and close it; never raises.

        `masks`: item id (None for a job's single item) -> its label map [H, W] (`region_label_map`: 0 base, k + 1
        region k), drawn over that item's images in the table. `reference`: a file or folder of reference
        statistics to log as an artifact (default: `<out_dir>/reference_stats.*` when present, else the statistics
        file `<out_dir>/result.json` says the job's fid/inception and kid/inception read: `measured_statistics`).
        Returns `{"tracker": "wandb", "ok": True, "mode": ...}`, or with `"ok": False` and `"error"` when logging
        failed (the failure is also logged); `"fallback_from"` and `"error"` when `auto` fell back to offline;
        `"reference_missing"` when the `reference` given does not exist.
        """
        try:
            labels = check_label_maps(masks)
        except ValueError as error:
            return {"tracker": "wandb", "ok": False, "mode": wandb_mode(self.mode), "error": f"ValueError: {error}"}
        found = reference_file(out_dir, reference)
        status = self._with_fallback(name, out_dir, lambda mode: self._log_job(
            mode, name, config, metrics, per_seed, grid, out_dir, labels, found))
        if reference is not None and found is None:
            status["reference_missing"] = str(reference)
        return status

    def log_sweep_summary(self, sweep_dir: Path) -> Status:
        """Log one W&B run (job_type `sweep-summary`, named `<group> summary`) holding `sweep_table(sweep_dir)` as
        `jobs`; never raises. Without any result.json under the sweep nothing is logged (`"jobs": 0`)."""
        sweep_dir = Path(sweep_dir)
        try:
            columns, data = sweep_table(sweep_dir)
        except ValueError as error:
            return {"tracker": "wandb", "ok": False, "mode": wandb_mode(self.mode), "error": f"ValueError: {error}"}
        if not data:
            return {"tracker": "wandb", "ok": True, "mode": wandb_mode(self.mode), "jobs": 0}
        status = self._with_fallback(f"sweep {sweep_dir}", sweep_dir,
                                     lambda mode: self._log_sweep(mode, sweep_dir, columns, data))
        return {**status, "jobs": len(data)}


def log_sweep_summary(sweep_dir: str | Path, project: str = "dualsampler", group: str | None = None,
                      mode: str = "auto", entity: str | None = None, init_timeout: float = INIT_TIMEOUT_S) -> Status:
    """`WandbTracker(project, entity, group, mode, init_timeout).log_sweep_summary(sweep_dir)`: one W&B run with a
    table of one row per job of the sweep; never raises once the settings are valid (ValueError naming them)."""
    return WandbTracker(project, entity, group, mode, init_timeout).log_sweep_summary(Path(sweep_dir))

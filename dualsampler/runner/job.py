"""One job of a sweep: instantiate every config group (each checks itself before any model loads), then call them:
sample every seed batch by batch, decode, save, evaluate, write result.json, log to the tracker."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from . import images as image_files
from .claim import JobClaimed, claim_job
from .devices import claim_device, job_threads
from .identity import config_inert_keys, differing_keys, job_identity
from .results import FAILURE_FILE, RESULT_FILE, finished_result, recorded_config, versions, write_json_atomic
from ..figure_spec import check_figures
from ..trace import Trace
from .settings import ConfigError, JobSettings, job_settings, seed_list

log = logging.getLogger(__name__)
GROUPS = ("base_sampler", "mask_sampler", "mask", "dual", "upscaler", "metrics", "logger", "model")


def build(config: DictConfig, key: str) -> Any:
    """`instantiate(config[key])`; a constructor's ValueError becomes a ConfigError naming the group."""
    try:
        return instantiate(config[key]) if config.get(key) else None
    except InstantiationException as error:
        cause = error.__cause__ or error
        full_key = re.search(r"full_key: (\S+)", str(error))  # the nested object that refused, e.g. upscaler.hook_mask
        raise ConfigError(f"{full_key.group(1) if full_key else key}: {cause}") from None
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{key}: {error}") from None


@dataclass
class JobParts:
    """Every group of a job's config as the object it instantiates to, checked, nothing loaded yet; `weights` is
    the model source's fingerprint (its files checked on the way)."""

    settings: JobSettings
    seeds: list[int]
    base_spec: Any
    mask_spec: Any
    mask: torch.Tensor
    dual: Callable[..., torch.Tensor]
    upscaler: Any
    evaluator: Any
    tracker: Any
    source: Any
    weights: str

    @classmethod
    def from_config(cls, config: DictConfig) -> JobParts:
        settings = job_settings(config)
        parts = {key: build(config, key) for key in GROUPS}
        source = parts["model"]
        prompts = {f"{key}.prompt": parts[key].prompt for key in ("base_sampler", "mask_sampler")}
        found = {}
        texts = {f"{key}.{field}": getattr(parts[key], field) for key in ("base_sampler", "mask_sampler")
                 for field in ("prompt", "negative_prompt")}
        for key, check in (("model", lambda: found.setdefault("weights", source.fingerprint())),
                           ("model", lambda: source.check_prompts(texts)),
                           ("model", lambda: source.check_canvas(settings.height, settings.width)),
                           ("metrics", lambda: parts["metrics"].check(settings.height, settings.width, prompts)),
                           ("dual", lambda: parts["dual"].check_schedule(settings.steps)),
                           ("upscaler", lambda: parts["upscaler"] is None or parts["upscaler"].check(
                               settings.height, settings.width,
                               {"base": parts["base_sampler"], "mask": parts["mask_sampler"]})),
                           ("objective", lambda: settings.objective.check(parts["metrics"].keys())),
                           ("figures", lambda: check_figures(settings.figures, parts["metrics"].keys()))):
            try:
                check()
            except ValueError as error:
                message = str(error)
                raise ConfigError(message if message.startswith(key) else f"{key}: {message}") from None
        return cls(settings, seed_list(settings.seeds), parts["base_sampler"], parts["mask_sampler"], parts["mask"],
                   parts["dual"], parts["upscaler"], parts["metrics"], parts["logger"], source, found["weights"])


def identity(config: DictConfig, experiment: str | None = None) -> dict[str, Any]:
    """The job's identity (runner/identity.py): its resolved config without the neutral keys and the keys that do
    not act on it, plus `experiment`."""
    plain = OmegaConf.to_container(config, resolve=True)
    return job_identity(plain, config_inert_keys(plain), experiment)


def check_not_foreign(out_dir: Path, plain: dict[str, Any]) -> None:
    """Raise ConfigError when `out_dir` holds the finished result of another configuration: it is kept, never
    replaced (a result of the same configuration from other weights is recomputed)."""
    recorded, wanted = recorded_config(out_dir), json.loads(json.dumps(plain, default=str))
    if recorded is not None and recorded != wanted:
        keys = ", ".join(differing_keys(recorded, wanted)[:8])
        raise ConfigError(f"{out_dir} holds the finished result of another configuration (it differs in {keys}); "
                          f"that result is kept: run this job under another name= or hydra.sweep.dir, or remove "
                          f"{out_dir / RESULT_FILE} to recompute it")


def run_job(config: DictConfig, out_dir: Path, name: str, lock_dir: Path, parallel_jobs: int | None = None,
            experiment: str | None = None) -> dict[str, Any]:
    """Run one job into `out_dir`, or return its existing result when result.json holds the same identity
    (`identity`, which names the chosen `experiment`) and model fingerprint: at once, without waiting on another
    process that holds the job's claim. Files: `images/seed<n>.png`, `grid.png`, then `result.json` (atomically,
    last; the tracker's status is added after it logged). Raises on any failure, leaving no result.json behind; a
    folder holding another configuration's result is refused (`check_not_foreign`). `parallel_jobs`: jobs
    the launcher runs side by side (joblib's n_jobs), which share the CPU cores unless `threads` is set."""
    parts = JobParts.from_config(config)
    threads = job_threads(parts.settings.threads, parallel_jobs)
    if threads is not None:
        torch.set_num_threads(threads)
    plain = identity(config, experiment)
    weights = parts.weights
    done = finished_result(out_dir, plain, weights)
    if done is not None:
        return skip(out_dir, name, done)
    with claim_job(out_dir, finished=lambda: finished_result(out_dir, plain, weights) is not None) as held:
        done = finished_result(out_dir, plain, weights)
        if done is not None:
            return skip(out_dir, name, done)
        if not held:
            raise JobClaimed(f"{out_dir}: its result went away while another process held the job")
        check_not_foreign(out_dir, plain)
        for stale in (RESULT_FILE, FAILURE_FILE):
            (out_dir / stale).unlink(missing_ok=True)
        result = compute_job(parts, out_dir, name, lock_dir)
        result.update(name=name, config=plain, weights=weights, versions=versions())
        write_json_atomic(out_dir / RESULT_FILE, result)
        started = time.perf_counter()
        result["tracker"] = parts.tracker.log_job(name, plain, result["metrics"], result["per_seed"],
                                                  out_dir / result["grid"], out_dir)
        result["timings"]["log_s"] = round(time.perf_counter() - started, 3)
        write_json_atomic(out_dir / RESULT_FILE, result)
    log.info("%s: done in %.1fs %s", name, result["timings"]["total_s"], result["metrics"])
    return result


def skip(out_dir: Path, name: str, done: dict[str, Any]) -> dict[str, Any]:
    """Return a finished job's result; a failure.json left beside it by an earlier launch no longer holds."""
    log.info("%s: result.json matches the config and weights, skipping", name)
    (out_dir / FAILURE_FILE).unlink(missing_ok=True)
    return done


def sample_batch(parts: JobParts, model: Any, base: Any, inside: Any, mask: torch.Tensor,
                 upscale: Callable[[torch.Tensor, list[int]], torch.Tensor] | None, seeds: list[int],
                 callback: Callable[[dict[str, Any]], None] | None = None) -> torch.Tensor:
    """The latents of one batch: the region algorithm from an empty latent with one seed per element, then the
    upscaler. Every random stream of an image derives from its own seed (sampling/streams.py), so an image does
    not depend on the batch it is sampled in beyond float rounding."""
    s = parts.settings
    f = model.vae_scale_factor
    latent = torch.zeros(len(seeds), model.latent_channels, s.height // f, s.width // f, device=mask.device)
    latent = parts.dual(latent, base_sampler=base, mask_sampler=inside, mask=mask, seed=list(seeds), steps=s.steps,
                        denoise=s.denoise, callback=callback)
    return latent if upscale is None else upscale(latent, list(seeds))


def compute_job(parts: JobParts, out_dir: Path, name: str, lock_dir: Path) -> dict[str, Any]:
    """Load the model, sample and evaluate every seed batch by batch; the result without its identity keys."""
    s = parts.settings
    timings = dict.fromkeys(("load_s", "sample_s", "decode_s", "metrics_s", "save_s"), 0.0)
    started = tick = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        timings[phase] = round(timings[phase] + now - tick, 3)
        tick = now

    with claim_device(s.device, lock_dir) as device, torch.inference_mode():
        model = parts.source.load(device)
        base, inside = parts.base_spec.build(model), parts.mask_spec.build(model)
        mask = parts.mask.to(device)
        f = model.vae_scale_factor
        if s.height % f or s.width % f:
            raise ConfigError(f"height and width must be multiples of the model's VAE factor {f}; got {s.height}x{s.width}")
        upscale = None
        if parts.upscaler is not None:
            upscale = parts.upscaler.build(model, {"base": (parts.base_spec, base), "mask": (parts.mask_spec, inside)}, mask)
        evaluation = parts.evaluator.start(model, mask, (parts.base_spec.prompt, parts.mask_spec.prompt), device)
        lap("load_s")
        saved, decoded, traces = [], [], []
        with tqdm(total=len(parts.seeds), desc=name, unit="image") as bar:
            for begin in range(0, len(parts.seeds), s.batch_size):
                batch = parts.seeds[begin:begin + s.batch_size]
                traces.append(Trace())
                latent = sample_batch(parts, model, base, inside, mask, upscale, batch, traces[-1])
                lap("sample_s")
                images = model.decode(latent).float()
                lap("decode_s")
                decoded.append(images.cpu())
                saved += image_files.save_images(decoded[-1], batch, out_dir / "images")
                lap("save_s")
                evaluation.update(images, batch)
                lap("metrics_s")
                bar.update(len(batch))
        metrics, per_seed = evaluation.compute()
        lap("metrics_s")
    traced = Trace.stack(traces)
    trace_images = traced.save_images(out_dir / "trace")
    grid = out_dir / "grid.png"
    image_files.labelled_grid(torch.cat(decoded), [f"seed {k}" for k in parts.seeds], name).save(grid)
    lap("save_s")
    timings["total_s"] = round(time.perf_counter() - started, 3)
    return {
        "seeds": parts.seeds,
        "dual": parts.dual.settings(),
        "metrics": metrics,
        "absent": dict(evaluation.absent),
        "per_seed": per_seed,
        "images": [str(p.relative_to(out_dir)) for p in saved],
        "grid": grid.name,
        "trace": {**traced.summary(), "images": [str(p.relative_to(out_dir)) for p in trace_images],
                  "images_seed": parts.seeds[0]},
        "timings": timings,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }

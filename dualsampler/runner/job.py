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
from ..dual import Region
from ..masks import grow_mask
from ..metrics.registry import derived, derived_means
from ..tracking import region_label_map
from ..upscale.vae_codec import vae_encode
from .inputs import load_image
from .items import JobItem, inputs_fingerprint, job_items, loras_record
from .model_cache import load_model_cached
from .identity import config_inert_keys, differing_keys, job_identity
from .results import FAILURE_FILE, RESULT_FILE, finished_result, recorded_config, versions, write_json_atomic
from ..figure_spec import check_figures
from ..trace import Trace
from .settings import ConfigError, JobSettings, job_settings, seed_list
from .specs import SamplerSpec

log = logging.getLogger(__name__)
GROUPS = ("base_sampler", "mask_sampler", "mask", "dual", "upscaler", "metrics", "logger", "model", "input", "data")


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


def checked(key: str, check: Callable[[], Any]) -> Any:
    """`check()`; its ValueError becomes a ConfigError whose message starts with `key`."""
    try:
        return check()
    except ValueError as error:
        message = str(error)
        raise ConfigError(message if message.startswith(key) else f"{key}: {message}") from None


@dataclass
class JobParts:
    """Every group of a job's config as the object it instantiates to, checked, nothing loaded yet: its items
    (runner/items.py: prompts, regions, input images, every file read and checked), `weights` the model
    source's fingerprint, `inputs` the fingerprint of what the items read beyond the config (None: nothing)."""

    settings: JobSettings
    seeds: list[int]
    items: list[JobItem]
    dual: Callable[..., torch.Tensor]
    upscaler: Any
    evaluator: Any
    tracker: Any
    source: Any
    weights: str
    inputs: str | None

    @classmethod
    def from_config(cls, config: DictConfig) -> JobParts:
        settings = job_settings(config)
        parts = {key: build(config, key) for key in GROUPS}
        source, h, w = parts["model"], settings.height, settings.width
        weights = checked("model", source.fingerprint)
        images = checked("input", lambda: parts["input"].check(h, w)) if parts["input"] is not None else []
        manifest = checked("data", lambda: parts["data"].items(h, w)) if parts["data"] is not None else None
        items = checked("regions" if settings.regions else "data", lambda: job_items(
            parts["base_sampler"], parts["mask_sampler"], parts["mask"], settings.regions, manifest, images, h, w))
        texts = {key: text for item in items for key, text in item.prompts().items()}
        prompts = {key: text for key, text in texts.items() if not key.endswith("negative_prompt")}
        most = max(len(item.regions) for item in items)
        upscaler = parts["upscaler"]
        checked("model", lambda: source.check_prompts(texts))
        try:
            source.check_samplers({key: spec for item in items for key, spec in item.samplers().items()})
        except ValueError as error:
            raise ConfigError(str(error)) from None
        checked("model", lambda: source.check_canvas(h, w))
        checked("metrics", lambda: parts["metrics"].check(h, w, prompts))
        checked("dual", lambda: parts["dual"].check_schedule(settings.steps))
        if upscaler is not None:
            for item in items:
                checked("upscaler", lambda: upscaler.check(h, w, {"base": item.base, "mask": item.regions[0].spec},
                                                           [region.spec for region in item.regions[1:]]))
        keys = parts["metrics"].keys(most, inputs=any(item.image is not None for item in items))
        checked("objective", lambda: settings.objective.check(keys))
        checked("figures", lambda: check_figures(settings.figures, keys))
        return cls(settings, seed_list(settings.seeds), items, parts["dual"], upscaler, parts["metrics"],
                   parts["logger"], source, weights, inputs_fingerprint(items))


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
    (`identity`, which names the chosen `experiment`), model fingerprint and input files' fingerprint: at once,
    without waiting on another process that holds the job's claim; new weights or changed input files (images,
    manifest masks and prompts) recompute it. Files: `images/[<item>/]seed<n>.png`, `grid.png`, then `result.json` (atomically,
    last; the tracker's status is added after it logged). Raises on any failure, leaving no result.json behind; a
    folder holding another configuration's result is refused (`check_not_foreign`). `parallel_jobs`: jobs
    the launcher runs side by side (joblib's n_jobs), which share the CPU cores under `threads: auto`."""
    parts = JobParts.from_config(config)
    torch.set_num_threads(job_threads(parts.settings.threads, parallel_jobs))
    plain = identity(config, experiment)
    weights, inputs = parts.weights, parts.inputs
    done = finished_result(out_dir, plain, weights, inputs)
    if done is not None:
        return skip(out_dir, name, done)
    with claim_job(out_dir, finished=lambda: finished_result(out_dir, plain, weights, inputs) is not None) as held:
        done = finished_result(out_dir, plain, weights, inputs)
        if done is not None:
            return skip(out_dir, name, done)
        if not held:
            raise JobClaimed(f"{out_dir}: its result went away while another process held the job")
        check_not_foreign(out_dir, plain)
        for stale in (RESULT_FILE, FAILURE_FILE):
            (out_dir / stale).unlink(missing_ok=True)
        result = compute_job(parts, out_dir, name, lock_dir)
        result.update(name=name, config=plain, weights=weights, versions=versions())
        if inputs is not None:
            result["inputs"] = inputs
        write_json_atomic(out_dir / RESULT_FILE, result)
        started = time.perf_counter()
        masks = {item.id: region_label_map([r.mask for r in item.regions]) for item in parts.items}
        result["tracker"] = parts.tracker.log_job(name, plain, result["metrics"], result["per_seed"],
                                                  out_dir / result["grid"], out_dir, masks=masks)
        result["timings"]["log_s"] = round(time.perf_counter() - started, 3)
        write_json_atomic(out_dir / RESULT_FILE, result)
    log.info("%s: done in %.1fs %s", name, result["timings"]["total_s"], result["metrics"])
    return result


def skip(out_dir: Path, name: str, done: dict[str, Any]) -> dict[str, Any]:
    """Return a finished job's result; a failure.json left beside it by an earlier launch no longer holds."""
    log.info("%s: result.json matches the config and weights, skipping", name)
    (out_dir / FAILURE_FILE).unlink(missing_ok=True)
    return done


@dataclass
class ItemRun:
    """An item on the loaded model: its samplers, its masks on the device, its input image as the job fitted it
    (`[1, 3, H, W]`, None from noise) and the latent it starts from (`[1, C, h, w]`: zeros, or that image
    encoded)."""

    item: JobItem
    base: Any
    regions: list[Region]
    image: torch.Tensor | None
    start: torch.Tensor

    @property
    def folder(self) -> str:
        return "images" if self.item.id is None else f"images/{self.item.id}"

    def label(self, seed: int) -> str:
        return f"seed {seed}" if self.item.id is None else f"{self.item.id} seed {seed}"


def start_latent(parts: JobParts, model: Any, image: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """The latent an item starts from: its fitted input image encoded with the model's VAE (tiled when the
    upscaler's tiled VAE is on), else zeros."""
    s = parts.settings
    f = model.vae_scale_factor
    if image is None:
        return torch.zeros(1, model.latent_channels, s.height // f, s.width // f, device=device)
    tiled = parts.upscaler is not None and parts.upscaler.use_tiled_vae
    return vae_encode(model.vae, image, parts.upscaler.tile_size if tiled else None).float()


def prepare_item(parts: JobParts, model: Any, item: JobItem, device: torch.device,
                 sampler: Callable[[SamplerSpec], Any] | None = None,
                 ) -> tuple[ItemRun, Callable[[torch.Tensor, list[int]], torch.Tensor] | None]:
    """An item on the loaded model and its upscale function (None without an upscaler); `sampler` builds a spec's
    KSampler (default `spec.build(model, height, width)`: the canvas's model sampling; the job passes one that
    builds each distinct spec once). The input image is read and fitted once, here."""
    s = parts.settings
    sampler = sampler or (lambda spec: spec.build(model, s.height, s.width))
    image = None if item.image is None else load_image(item.image, s.height, s.width)[None].to(device)
    run = ItemRun(item, sampler(item.base), [Region(r.mask.to(device), sampler(r.spec)) for r in item.regions],
                  image, start_latent(parts, model, image, device))
    if parts.upscaler is None:
        return run, None
    pair = {"base": (item.base, run.base), "mask": (item.regions[0].spec, run.regions[0].sampler)}
    extra = [(spec.spec, region.sampler, region.mask) for spec, region in zip(item.regions[1:], run.regions[1:])]
    return run, parts.upscaler.build(model, pair, run.regions[0].mask, extra)


def kept_pixels(parts: JobParts, model: Any, run: ItemRun) -> torch.Tensor | None:
    """Where background preservation compares an item's output with its input image: `[h, w]` at the latent's
    size, 1 outside every region's mask grown by the algorithm's overlap (the pixels only the base sampler
    works); None for an item from noise."""
    if run.image is None:
        return None
    s = parts.settings
    f = model.vae_scale_factor
    overlap = int(getattr(parts.dual, "overlap_factor", 0))
    grown = torch.stack([grow_mask(r.mask, s.height // f, s.width // f, overlap)[0, 0] for r in run.regions])
    return 1 - grown.amax(0)


def sample_batch(parts: JobParts, run: ItemRun, upscale: Callable[[torch.Tensor, list[int]], torch.Tensor] | None,
                 seeds: list[int], callback: Callable[[dict[str, Any]], None] | None = None) -> torch.Tensor:
    """The latents of one batch of an item: the region algorithm from the item's start latent with one seed per
    element, then the upscaler; an input image with an upscaler is upscaled as it is (the upscaler's passes
    re-sample it). Every random stream of an image derives from its own seed (sampling/streams.py), so an image
    does not depend on the batch it is sampled in beyond float rounding."""
    s = parts.settings
    latent = run.start.expand(len(seeds), -1, -1, -1).clone()
    if upscale is not None and run.item.image is not None:
        return upscale(latent, list(seeds))
    if len(run.regions) == 1:
        latent = parts.dual(latent, base_sampler=run.base, mask_sampler=run.regions[0].sampler,
                            mask=run.regions[0].mask, seed=list(seeds), steps=s.steps, denoise=s.denoise,
                            callback=callback)
    else:
        latent = parts.dual.sample_regions(latent, base_sampler=run.base, regions=run.regions, seed=list(seeds),
                                           steps=s.steps, denoise=s.denoise, callback=callback)
    return latent if upscale is None else upscale(latent, list(seeds))


def compute_job(parts: JobParts, out_dir: Path, name: str, lock_dir: Path) -> dict[str, Any]:
    """Load the model (or reuse this process's), sample and evaluate every item for every seed, batch by batch;
    the result without its identity keys."""
    s = parts.settings
    timings = dict.fromkeys(("load_s", "sample_s", "decode_s", "metrics_s", "save_s"), 0.0)
    started = tick = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        timings[phase] = round(timings[phase] + now - tick, 3)
        tick = now

    with claim_device(s.device, lock_dir) as device, torch.inference_mode():
        model, reused = load_model_cached(parts.source, parts.weights, device, s.models_kept)
        f = model.vae_scale_factor
        if s.height % f or s.width % f:
            raise ConfigError(f"height and width must be multiples of the model's VAE factor {f}; got {s.height}x{s.width}")
        evaluation = parts.evaluator.start(model, device, canvas=(s.height, s.width))
        lap("load_s")
        saved, decoded, labels, traces = [], [], [], []
        built: dict[SamplerSpec, Any] = {}

        def sampler(spec: SamplerSpec) -> Any:
            if spec not in built:
                built[spec] = spec.build(model, s.height, s.width)
            return built[spec]

        with tqdm(total=len(parts.items) * len(parts.seeds), desc=name, unit="image") as bar:
            for number, item in enumerate(parts.items):
                run, upscale = prepare_item(parts, model, item, device, sampler)
                keep = kept_pixels(parts, model, run)
                lap("load_s")
                for begin in range(0, len(parts.seeds), s.batch_size):
                    batch = parts.seeds[begin:begin + s.batch_size]
                    trace = Trace() if number == 0 else None
                    latent = sample_batch(parts, run, upscale, batch, trace)
                    if trace is not None:
                        traces.append(trace)
                    lap("sample_s")
                    images = model.decode(latent).float()
                    lap("decode_s")
                    decoded.append(images.cpu())
                    labels += [run.label(seed) for seed in batch]
                    paths = image_files.save_images(decoded[-1], batch, out_dir / run.folder)
                    saved += paths
                    lap("save_s")
                    evaluation.update(images, batch, item.base.prompt,
                                      [(r.mask, r.spec.prompt) for r in item.regions], item.id,
                                      inputs=None if run.image is None else run.image.expand(len(batch), -1, -1, -1),
                                      keep=keep)
                    lap("metrics_s")
                    bar.update(len(batch))
        metrics, per_image = evaluation.compute()
        for row in per_image:
            row.update(derived(row))
        metrics.update(derived_means(per_image))
        lap("metrics_s")
    for row, path in zip(per_image, saved):
        row["image"] = str(path.relative_to(out_dir))
    traced = Trace.stack(traces) if traces and all(t.reports for t in traces) else None
    trace_images = traced.save_images(out_dir / "trace") if traced is not None else []
    grid = out_dir / "grid.png"
    image_files.labelled_grid(torch.cat(decoded), labels, name).save(grid)
    lap("save_s")
    timings["total_s"] = round(time.perf_counter() - started, 3)
    first = parts.items[0]
    result = {
        "seeds": parts.seeds,
        "dual": parts.dual.settings(),
        "metrics": metrics,
        "absent": dict(evaluation.absent),
        "measured_with": dict(evaluation.recorded),
        "per_seed": per_image,
        "images": [str(p.relative_to(out_dir)) for p in saved],
        "grid": grid.name,
        "timings": timings,
        "model": {"kind": model.kind, "dtype": str(model.dtype).removeprefix("torch."),
                  "model_sampling": sorted({repr(k.model_sampling) for k in built.values()})},
        "model_reused": reused,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if traced is None:
        result["trace"] = {"absent": "input images upscaled as they are: no region-sampler run to trace"}
    else:
        result["trace"] = {**traced.summary(), "images": [str(p.relative_to(out_dir)) for p in trace_images],
                           "images_seed": parts.seeds[0], **({"item": first.id} if first.id else {})}
    loras = loras_record(parts.items)
    if loras:
        result["loras"] = loras
    if parts.inputs is not None:
        result["items"] = [{"id": item.id, "regions": len(item.regions), "prompt": item.base.prompt,
                            "region_prompts": [r.spec.prompt for r in item.regions],
                            **({"image": str(item.image)} if item.image is not None else {})}
                           for item in parts.items]
    return result

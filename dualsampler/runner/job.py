"""One job of a sweep: validate, build, sample every seed, decode, save, evaluate, log, write result.json last."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from . import images as image_files
from .devices import claim_device, job_threads
from .results import FAILURE_FILE, RESULT_FILE, finished_result, job_config, model_fingerprint, versions, write_json_atomic
from .validate import seed_list, validate

log = logging.getLogger(__name__)
REAL_SEED_OFFSET = 1_000_000  # seeds of the rendered FID/KID real set, away from the sampled seeds


def generate(
    world,
    base_sampler,
    mask_sampler,
    mask: torch.Tensor,
    dual: Callable[..., torch.Tensor],
    seeds: list[int],
    steps: int,
    denoise: float,
    batch_size: int,
    upscale: Callable[..., torch.Tensor] | None = None,
    desc: str = "sampling",
) -> torch.Tensor:
    """Images[len(seeds), 3, H, W]: `dual(...)` on empty latents, batch by batch (seed b gets its own noise), then decode.

    `upscale(latents, seeds)`, when given, maps the dual sampler's latents to upscaled latents before decoding.
    """
    f = world.vae_scale_factor
    height, width = mask.shape[-2:]
    if height % f or width % f:
        raise ValueError(f"height and width must be multiples of the VAE factor {f}; got {height}x{width}")
    mask = mask.to(world.device)
    out = []
    with tqdm(total=len(seeds), desc=desc, unit="image") as bar:
        for start in range(0, len(seeds), batch_size):
            batch = seeds[start : start + batch_size]
            latent = torch.zeros(len(batch), world.unet.config.in_channels, height // f, width // f, device=world.device)
            latent = dual(
                seed=batch, steps=steps, denoise=denoise, latent=latent,
                base_sampler=base_sampler, mask_sampler=mask_sampler, mask=mask,
            )
            if upscale is not None:
                latent = upscale(latent, batch)
            out.append(world.decode(latent).float().cpu())
            bar.update(len(batch))
    return torch.cat(out)


def evaluate(
    compute: Callable[..., dict[str, float]],
    images: torch.Tensor,
    mask: torch.Tensor,
    seeds: list[int],
    prompts: tuple[str, str],
    judge=None,
    references: bool = True,
    real_images: int = 0,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(metrics over all seeds, one row of per-image metrics per seed).

    Without a judge only the seam metrics are computed; with one also region accuracy, and against `references`
    (the world's hard composites of the two prompts, one per seed) the perceptual metrics, and against
    `real_images` rendered composites FID/KID (when there are at least 2 seeds).
    """
    from ..world import render_composite

    mask = F.interpolate(mask.float().cpu().reshape(1, 1, *mask.shape[-2:]), size=images.shape[-2:], mode="bilinear")
    masks = mask.expand(len(seeds), -1, -1, -1).to(images.device)
    base_prompt, mask_prompt = prompts if judge is not None else (None, None)
    refs = None
    if judge is not None and references:
        refs = torch.stack([render_composite(base_prompt, mask_prompt, mask, s) for s in seeds]).to(images.device)
    real = None
    if judge is not None and real_images and len(seeds) >= 2:
        real = torch.stack([render_composite(base_prompt, mask_prompt, mask, REAL_SEED_OFFSET + i) for i in range(real_images)])
        real = real.to(images.device)
    per_seed = []
    for i, seed in enumerate(seeds):
        values = compute(
            images[i : i + 1], masks[i : i + 1], base_prompt and [base_prompt], mask_prompt and [mask_prompt],
            references=None if refs is None else refs[i : i + 1], judge=judge,
        )
        per_seed.append({"seed": seed, **{k: float(v) for k, v in values.items()}})
    overall = compute(
        images, masks, base_prompt and [base_prompt] * len(seeds), mask_prompt and [mask_prompt] * len(seeds),
        references=refs, judge=judge, real_images=real,
    )
    return {k: float(v) for k, v in overall.items()}, per_seed


def run_job(config: DictConfig, out_dir: Path, name: str, lock_dir: Path, parallel_jobs: int | None = None) -> dict[str, Any]:
    """Run one job into `out_dir`, or return its existing result when result.json holds the same config and weights.

    Files: `images/seed<n>.png`, `grid.png`, then `result.json` (atomically, last). Raises on any failure,
    leaving no result.json behind. `parallel_jobs`: how many jobs the launcher runs side by side (joblib's
    n_jobs), which shares the CPU cores among them unless `threads` is set.
    """
    validate(config)
    threads = job_threads(config.get("threads"), parallel_jobs)
    if threads is not None:
        torch.set_num_threads(threads)
    plain = job_config(config)
    weights = model_fingerprint(plain["model"])
    done = finished_result(out_dir, plain, weights)
    if done is not None:
        log.info("%s: result.json matches the config and weights, skipping", name)
        return done
    for stale in (RESULT_FILE, FAILURE_FILE):
        (out_dir / stale).unlink(missing_ok=True)
    seeds = seed_list(plain["seeds"])
    timings: dict[str, float] = {}
    started = tick = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        timings[phase] = round(now - tick, 3)
        tick = now

    with claim_device(config.device, lock_dir) as device, torch.inference_mode():
        world = instantiate(config.model, device=device)
        base_spec, mask_spec = instantiate(config.base_sampler), instantiate(config.mask_sampler)
        base_sampler, mask_sampler = base_spec.build(world), mask_spec.build(world)
        mask = instantiate(config.mask)
        dual = instantiate(config.dual)
        upscale = None
        if config.upscaler:
            samplers = {"base": (base_spec, base_sampler), "mask": (mask_spec, mask_sampler)}
            upscale = instantiate(config.upscaler).build(world, samplers, mask)
        compute = instantiate(config.metrics.compute)
        tracker = instantiate(config.logger)
        lap("build_s")
        images = generate(
            world, base_sampler, mask_sampler, mask, dual, seeds, config.steps, config.denoise,
            config.batch_size, upscale, desc=name,
        )
        lap("sample_s")
        paths = image_files.save_images(images, seeds, out_dir / "images")
        grid = out_dir / "grid.png"
        image_files.labelled_grid(images, [f"seed {s}" for s in seeds], name).save(grid)
        lap("save_s")
        metrics, per_seed = evaluate(
            compute, images.to(device), mask, seeds, (base_spec.prompt, mask_spec.prompt),
            judge=world.judge if config.metrics.judge else None,
            references=config.metrics.references, real_images=config.metrics.real_images,
        )
        lap("metrics_s")
    tracker.log_job(name, plain, metrics, per_seed, grid, out_dir)
    lap("log_s")
    timings["total_s"] = round(time.perf_counter() - started, 3)
    result = {
        "name": name,
        "config": plain,
        "weights": weights,
        "seeds": seeds,
        "metrics": metrics,
        "per_seed": per_seed,
        "images": [str(p.relative_to(out_dir)) for p in paths],
        "grid": grid.name,
        "timings": timings,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "versions": versions(),
        "figures": OmegaConf.to_container(config.figures, resolve=True),
    }
    write_json_atomic(out_dir / RESULT_FILE, result)
    log.info("%s: done in %.1fs %s", name, timings["total_s"], metrics)
    return result

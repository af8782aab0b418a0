"""Bad values, round 3 (issue 19): the API rows run on the counting models of `test_faults_table` (a denoiser, a
tiny VAE and a judge that count their calls) and pass only when the ValueError names the parameter and its range
and no model was called; the config rows compose `dualsampler-run`'s config and build its job's parts
(`JobParts.from_config`, the runner's first step) and pass only when a ConfigError names the key and no model
loaded."""

from __future__ import annotations

import math
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

import dualsampler.run  # noqa: F401  (registers the config's resolvers)
from dualsampler.dual import (Alternate, DifferentialDiffusion, Fused, MixtureOfDiffusers, MultiDiffusion, Region,
                              Regional, WholeRun, two_advanced_samplers_for_mask)
from dualsampler.masks import as_mask_batch, ellipse_mask, feather_mask, grow_mask, half_mask, load_mask, rectangle_mask
from dualsampler.metrics import kernel_distance
from dualsampler.metrics.evaluator import Evaluator
from dualsampler.models import load_model
from dualsampler.models.source import ModelSource
from dualsampler.runner.job import JobParts
from dualsampler.runner.settings import ConfigError
from dualsampler.runner.upscaling import UpscaleSpec
from dualsampler.sampling import KSampler, UNetDenoiser, get_sigmas, sample
from dualsampler.tracking import WandbTracker
from dualsampler.sampling.samplers.dpm_adaptive import sample_dpm_adaptive
from dualsampler.trace import Trace
from dualsampler.upscale import (CfgScheduleHook, DenoiseScheduleHook, NoiseInjectionHook, StepsScheduleHook,
                                 iterative_upscale, iterative_upscale_image, resize_images)
from dualsampler.validation import check_device
from test_faults_table import (Models, assert_refused_before_any_model_call, judge, models,  # noqa: F401
                               vae)  # (the counting models, their fixtures and the check)

NAN, INF = math.nan, math.inf
WEIGHTS = Path(__file__).resolve().parents[1] / "dualsampler" / "models" / "weights"


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares `width x height` px (8-bit grey) and whose image data is empty: what a reader
    sees before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def world_copy(m: Models, damage: str) -> Path:
    """The embedded world copied to a temporary folder, then damaged: `empty unet`, `truncated vae`, `truncated
    unet` (half of its safetensors file), `garbage unet` (a header that is no JSON), or `no vae config`."""
    folder = m.tmp_path / "world"
    shutil.copytree(WEIGHTS, folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    if damage == "empty unet":
        shutil.rmtree(folder / "unet")
        (folder / "unet").mkdir()
    elif damage.startswith("truncated"):
        weights = folder / damage.split(" ")[1] / "diffusion_pytorch_model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "garbage unet":
        (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    elif damage == "no vae config":
        (folder / "vae" / "config.json").unlink()
    return folder


class NoUncond:
    """A denoiser with a `cfg` but no `with_uncond` (what the cfg_pp samplers need)."""

    cfg = 1.0

    def __call__(self, x, sigma):
        return torch.zeros_like(x)


def unet_denoiser(cfg: float) -> UNetDenoiser:
    return UNetDenoiser(torch.nn.Identity(), cond=torch.zeros(1, 2, 4), uncond=torch.zeros(1, 2, 4), cfg=cfg)


# (id, call on the counting models, regex the message must match: the parameter's name and its range or values)
ROWS = [
    # KSampler and the sampling API
    ("KSampler model_sampling 'sd'", lambda m: KSampler(m, "euler", "karras", model_sampling="sd"),
     r"model_sampling must be None or a model sampling object"),
    ("KSampler denoiser None", lambda m: KSampler(None), r"denoiser must be a callable denoiser\(x, sigma\)"),
    ("KSampler upstream_compat 'no'", lambda m: KSampler(m, upstream_compat="no"), r"upstream_compat must be true or false"),
    ("KSampler sampler None", lambda m: KSampler(m, None), r"sampler must be one of euler, "),
    ("KSampler cfg_pp without with_uncond", lambda m: KSampler(NoUncond(), "euler_cfg_pp"), r"euler_cfg_pp"),
    ("sample_advanced add_noise 'no'", lambda m: m.ksampler().sample_advanced("no", 0, 4, m.latent(), 0, 4, False),
     r"add_noise must be true, false, 'enable' or 'disable'"),
    ("sample_advanced leftover 'yes'", lambda m: m.ksampler().sample_advanced(True, 0, 4, m.latent(), 0, 4, "yes"),
     r"return_with_leftover_noise must be true, false, 'enable' or 'disable'"),
    ("sample_advanced start -1", lambda m: m.ksampler().sample_advanced(True, 0, 4, m.latent(), -1, 4, False),
     r"start_at_step must be an integer in \[0, 10000\]"),
    ("sample_advanced end NaN", lambda m: m.ksampler().sample_advanced(True, 0, 4, m.latent(), 0, NAN, False),
     r"end_at_step must be an integer in \[0, 10000\]"),
    ("sample_advanced start > end", lambda m: m.ksampler().sample_advanced(True, 0, 4, m.latent(), 3, 2, False),
     r"start_at_step must be <= end_at_step"),
    ("sample_advanced sigma_scale 0", lambda m: m.ksampler().sample_advanced(True, 0, 4, m.latent(), 0, 4, False,
                                                                               sigma_scale=0), r"sigma_scale .* \(0, 100\]"),
    ("sample_advanced callback 3", lambda m: m.ksampler().sample_advanced(True, 0, 4, m.latent(), 0, 4, False,
                                                                            callback=3), r"callback must be None or a callable"),
    ("sample denoise True", lambda m: m.ksampler().sample(m.latent(), 0, 4, denoise=True),
     r"denoise must be a finite number in \(0, 1\], got True"),
    ("sample denoise '1'", lambda m: m.ksampler().sample(m.latent(), 0, 4, denoise="1"), r"denoise must be a finite number"),
    ("sample steps True", lambda m: m.ksampler().sample(m.latent(), 0, True), r"steps must be an integer in \[1, 10000\]"),
    ("sample steps 2.5", lambda m: m.ksampler().sample(m.latent(), 0, 2.5), r"steps must be an integer in \[1, 10000\]"),
    ("sample seed string", lambda m: m.ksampler().sample(m.latent(), "7", 4), r"seed must be an int in \[0, 2\*\*64\)"),
    ("sample seed 1.5", lambda m: m.ksampler().sample(m.latent(), 1.5, 4), r"seed must be an int in \[0, 2\*\*64\)"),
    ("sample seed list too short", lambda m: m.ksampler().sample(torch.zeros(2, 4, 8, 8), [1], 4),
     r"seed must be an int or a list of 2 ints"),
    ("sample seed list negative", lambda m: m.ksampler().sample(torch.zeros(2, 4, 8, 8), [1, -1], 4),
     r"seed must be an int in \[0, 2\*\*64\)"),
    ("sample latent 3-D", lambda m: m.ksampler().sample(torch.zeros(4, 8, 8), 0, 4), r"latent must be a 4-D tensor"),
    ("sample latent height 0", lambda m: m.ksampler().sample(torch.zeros(1, 4, 0, 8), 0, 2),
     r"latent must be a 4-D tensor \[B, C, H, W\] with every size >= 1, got \(1, 4, 0, 8\)"),
    ("sample latent batch 0", lambda m: m.ksampler().sample(torch.zeros(0, 4, 8, 8), 0, 2), r"with every size >= 1"),
    ("sample latent 3 channels", lambda m: m.ksampler().sample(m.latent(channels=3), 0, 2),
     r"latent has 3 channels but the KSampler's denoiser's model expects 4"),
    ("sample_advanced latent 3 channels", lambda m: m.ksampler().sample_advanced(True, 0, 2, m.latent(channels=3), 0, 2, False),
     r"latent has 3 channels but the KSampler's denoiser's model expects 4"),
    ("sample() latent 3 channels", lambda m: sample(m, m.latent(channels=3), get_sigmas("karras", 2)),
     r"latent has 3 channels but the denoiser's model expects 4"),
    ("sample latent integer", lambda m: m.ksampler().sample(torch.zeros(1, 4, 8, 8, dtype=torch.long), 0, 4),
     r"latent must be a floating-point tensor"),
    ("sample latent inf", lambda m: m.ksampler().sample(torch.full((1, 4, 8, 8), INF), 0, 4), r"latent contains NaN or infinite"),
    ("sample noise_mask NaN", lambda m: m.ksampler().sample(m.latent(), 0, 4, noise_mask=torch.full((8, 8), NAN)),
     r"noise_mask values must lie in \[0, 1\]"),
    ("sample noise_mask batch 3", lambda m: m.ksampler().sample(torch.zeros(2, 4, 8, 8), 0, 4,
                                                                noise_mask=torch.zeros(3, 8, 8)), r"noise_mask batch must be 1 or 2"),
    ("sample() sigmas increasing", lambda m: sample(m, m.latent(), torch.tensor([1.0, 2.0, 0.0])), r"sigmas must be strictly decreasing"),
    ("sample() sigmas a list", lambda m: sample(m, m.latent(), [1.0, 0.0]), r"sigmas must be a 1-D tensor .* got list"),
    ("sample() sigmas NaN", lambda m: sample(m, m.latent(), torch.tensor([NAN, 0.0])), r"sigmas must be finite"),
    ("sample() sampler unknown", lambda m: sample(m, m.latent(), get_sigmas("karras", 2), "eulr"), r"sampler must be one of"),
    ("dpm_adaptive tolerances 1e-12", lambda m: sample_dpm_adaptive(m, m.latent(), get_sigmas("karras", 2), rtol=1e-12, atol=1e-12),
     r"rtol or atol must be >= 1e-06"),
    ("dpm_adaptive h_init 1e-300", lambda m: sample_dpm_adaptive(m, m.latent(), get_sigmas("karras", 2), h_init=1e-300),
     r"h_init must be a finite number in \[1e-06, 10\]"),
    ("get_sigmas scheduler unknown", lambda m: get_sigmas("cosine", 4), r"scheduler must be one of normal, karras"),
    ("get_sigmas steps string", lambda m: get_sigmas("karras", "10"), r"steps must be an integer in \[1, 10000\]"),
    ("get_sigmas model_sampling 'sd'", lambda m: get_sigmas("karras", 4, "sd"), r"model_sampling must be None or a model sampling"),
    ("sample() denoiser None", lambda m: sample(None, m.latent(), get_sigmas("karras", 2)), r"denoiser must be a callable"),
    # the denoiser API: guidance the UNet would turn into NaN images
    ("denoiser cfg NaN", lambda m: unet_denoiser(NAN), r"cfg must be a finite number in \[0, 100\], got nan"),
    ("denoiser cfg inf", lambda m: unet_denoiser(INF), r"cfg must be a finite number in \[0, 100\], got inf"),
    ("denoiser cfg -1", lambda m: unet_denoiser(-1.0), r"cfg must be a finite number in \[0, 100\]"),
    ("denoiser cfg True", lambda m: unet_denoiser(True), r"cfg must be a finite number in \[0, 100\], got True"),
    # region samplers: region lists, booleans, hyper-parameters, per-call values
    ("regions None", lambda m: Alternate().sample_regions(m.latent(), base_sampler=m.ksampler(), regions=None, seed=0,
                                                          steps=2), r"regions must be a non-empty list of dualsampler.dual.Region"),
    ("regions empty", lambda m: Fused().sample_regions(m.latent(), base_sampler=m.ksampler(), regions=[], seed=0,
                                                       steps=2), r"regions must be a non-empty list"),
    ("regions as tuples", lambda m: Alternate().sample_regions(
        m.latent(), base_sampler=m.ksampler(), regions=[(m.mask(), m.ksampler())], seed=0, steps=2),
     r"regions\[0\] must be a dualsampler.dual.Region\(mask, sampler\)"),
    ("regions a string", lambda m: Fused().sample_regions(m.latent(), base_sampler=m.ksampler(), regions="left",
                                                          seed=0, steps=2), r"regions must be a non-empty list"),
    ("region sampler None", lambda m: Alternate().sample_regions(
        m.latent(), base_sampler=m.ksampler(), regions=[Region(m.mask(), m.ksampler()), Region(m.mask(), None)],
        seed=0, steps=2), r"regions\[1\].sampler must be a dualsampler.sampling.KSampler"),
    ("region mask numpy", lambda m: m.two(Alternate(), mask=np.ones((8, 8))), r"mask must be a torch.Tensor"),
    ("region mask 5-D", lambda m: m.two(Fused(), mask=torch.ones(1, 1, 1, 8, 8)), r"mask must have shape \[H,W\]"),
    ("region mask empty", lambda m: m.two(Alternate(), mask=torch.ones(0, 0)), r"mask must have every size >= 1"),
    ("region mask above 1", lambda m: m.two(Alternate(), mask=torch.full((8, 8), 2.0)), r"mask values must lie in \[0, 1\]"),
    ("region mask batch 3", lambda m: m.two(Alternate(), latent=torch.zeros(2, 4, 8, 8), mask=torch.ones(3, 8, 8)),
     r"mask batch must be 1 or 2"),
    ("whole_run return_x0 'no'", lambda m: WholeRun(return_x0="no"), r"return_x0 must be true or false, got 'no'"),
    ("regional restore_latent 'no'", lambda m: Regional(restore_latent="no"), r"restore_latent must be true or false"),
    ("compat restore_latent 'disable'", lambda m: two_advanced_samplers_for_mask(
        0, 2, 1.0, m.latent(), m.ksampler(), m.ksampler(), m.mask(), mode="regional", restore_latent="disable"),
     r"restore_latent must be true or false, got 'disable'"),
    ("compat mode unknown", lambda m: two_advanced_samplers_for_mask(0, 2, 1.0, m.latent(), m.ksampler(), m.ksampler(),
                                                                     m.mask(), mode="joint"), r"mode must be one of seed"),
    ("regional base_only_steps 2.5", lambda m: Regional(base_only_steps=2.5), r"base_only_steps must be an integer in \[0, 10000\]"),
    ("regional base_only_steps -1", lambda m: Regional(base_only_steps=-1), r"base_only_steps must be an integer in \[0, 10000\]"),
    ("regional second_seed -1", lambda m: Regional(second_seed=-1), r"second_seed must be an integer in \[0, 18446744073709551615\]"),
    ("regional second_seed_mode", lambda m: Regional(second_seed_mode="both"), r"second_seed_mode must be one of none, fixed"),
    ("regional recovery unknown key", lambda m: Regional(recovery={"sigma_ratio": 0.1}), r"recovery: unknown key 'sigma_ratio'; its keys are mode, sampler, ratio"),
    ("regional recovery string", lambda m: Regional(recovery="auto"), r"recovery must be a Recovery"),
    ("overlap_factor True", lambda m: Alternate(overlap_factor=True), r"overlap_factor must be an integer in \[0, 1024\], got True"),
    ("overlap_factor 2000", lambda m: Regional(overlap_factor=2000), r"overlap_factor must be an integer in \[0, 1024\]"),
    ("fused feather True", lambda m: Fused(feather=True), r"feather must be a finite number in \[0, 64\], got True"),
    ("fused feather 100", lambda m: Fused(feather=100), r"feather must be a finite number in \[0, 64\]"),
    ("multidiffusion bootstrap NaN", lambda m: MultiDiffusion(bootstrap=NAN), r"bootstrap must be a finite number in \[0, 1\]"),
    ("mixture sigma_scale inf", lambda m: MixtureOfDiffusers(sigma_scale=INF), r"sigma_scale must be a finite number in \[0.01, 10\]"),
    ("differential feather -1", lambda m: DifferentialDiffusion(feather=-1), r"feather must be a finite number in \[0, 64\]"),
    ("algorithm denoise True", lambda m: m.two(Alternate(), denoise=True), r"denoise must be a finite number in \(0, 1\], got True"),
    ("algorithm steps True", lambda m: m.two(Fused(), steps=True), r"steps must be an integer in \[1, 10000\], got True"),
    ("algorithm callback 3", lambda m: m.two(Alternate(), callback=3), r"callback must be None or a callable"),
    ("whole_run mask_seed string", lambda m: m.two(WholeRun(), mask_seed="1"), r"mask_seed: seed must be an int"),
    ("whole_run mask_denoise True", lambda m: m.two(WholeRun(), mask_denoise=True), r"mask_denoise: denoise must be a finite number"),
    # masks and mask files
    ("ellipse rx True", lambda m: ellipse_mask(64, 64, rx=True), r"rx must be a finite number in \(0, 4\], got True"),
    ("rectangle top string", lambda m: rectangle_mask(64, 64, "0.1", 0, 1, 1), r"top must be a finite number in \[0, 1\]"),
    ("half side None", lambda m: half_mask(64, 64, None), r"side must be one of left, right, top, bottom"),
    ("grow_by True", lambda m: grow_mask(m.mask(), 8, 8, True), r"grow_by \(overlap_factor\) must be an integer in \[0, 1024\]"),
    ("feather radius -1", lambda m: feather_mask(m.mask(), -1), r"radius \(feather\) must be a finite number in \[0, 1024\]"),
    ("as_mask_batch list", lambda m: as_mask_batch([[0.0, 1.0]]), r"mask must be a torch.Tensor, got list"),
    ("load_mask 20000 px header", lambda m: load_mask(m.png("huge.png", png_header(20000, 20000))),
     r"path '.*huge\.png': the image's sides must be <= 16384 px"),
    ("load_mask 17000 px wide", lambda m: load_mask(m.png("wide.png", png_header(17000, 64))),
     r"the width of wide\.png must be an integer in \[1, 16384\], got 17000"),
    ("load_mask path None", lambda m: load_mask(None), r"path must be an existing image file, got None"),
    ("load_mask a folder", lambda m: load_mask(m.tmp_path), r"path must be an existing image file"),
    ("load_mask height True", lambda m: load_mask(m.png("ok.png"), height=True), r"height must be an integer in \[1, 16384\]"),
    # the upscaler: passes, hooks, its latent, its config
    ("upscale latent 8 channels", lambda m: iterative_upscale(m.latent(channels=8), 2.0, 1, m.upscaler()),
     r"latent has 8 channels but the upscaler's VAE takes 4"),
    ("upscale latent NaN", lambda m: iterative_upscale(torch.full((1, 4, 8, 8), NAN), 2.0, 1, m.upscaler()), r"latent contains NaN"),
    ("upscale upscaler None", lambda m: iterative_upscale(m.latent(), 2.0, 1, None), r"upscaler must be a TwoSamplersForMaskUpscaler"),
    ("upscaler decode 8 channels", lambda m: m.upscaler().decode(m.latent(channels=8)), r"latent has 8 channels but the VAE takes 4"),
    ("upscaler encode NaN images", lambda m: m.upscaler().encode(torch.full((1, 3, 32, 32), NAN)), r"images contains NaN"),
    ("upscaler vae None", lambda m: m.upscaler(vae=None), r"vae must be a diffusers AutoencoderKL, got NoneType"),
    ("upscale noise_mask NaN", lambda m: iterative_upscale(m.latent(), 2.0, 1, m.upscaler(), noise_mask=torch.full((8, 8), NAN)),
     r"noise_mask values must lie in \[0, 1\]"),
    ("upscale image NaN", lambda m: iterative_upscale_image(torch.full((1, 3, 32, 32), NAN), 2.0, 1, m.upscaler()),
     r"images contains NaN"),
    ("hook step_info past the end", lambda m: CfgScheduleHook(3.0).set_steps((5, 2)), r"step_info must be \(i, n\) with integers 0 <= i < n"),
    ("upscale step_mode unknown", lambda m: iterative_upscale(m.latent(), 2.0, 1, m.upscaler(), "cubic"),
     r"step_mode must be one of simple, geometric"),
    ("upscaler upstream_compat 'no'", lambda m: m.upscaler(upstream_compat="no"), r"upstream_compat must be true or false"),
    ("upscaler hook_mask string", lambda m: m.upscaler(hook_mask="cfg"), r"hook_mask must be an UpscaleHook or None"),
    ("upscaler full_sampler string", lambda m: m.upscaler(full_sampler="base"), r"full_sampler must be an UpscaleSampler"),
    ("upscaler upscale_model 3", lambda m: m.upscaler(upscale_model=3), r"upscale_model must be callable"),
    ("upscaler factor True", lambda m: m.upscaler().upscale((0, 1), m.latent(), True), r"factor must be a finite number in \[1, 16\]"),
    ("pass ksampler None", lambda m: m.pass_(ksampler=None), r"ksampler must be a dualsampler.sampling.KSampler"),
    ("pass steps True", lambda m: m.pass_(steps=True), r"steps must be an integer in \[1, 10000\], got True"),
    ("pass denoise True", lambda m: m.pass_(denoise=True), r"denoise must be a finite number in \(0, 1\], got True"),
    ("pass steps 10000 at denoise 0.5", lambda m: m.pass_(steps=10_000, denoise=0.5), r"denoise must be >= steps / 10000"),
    ("pass cfg True", lambda m: m.pass_(cfg=True), r"cfg must be a finite number in \[0, 100\], got True"),
    ("pass seed negative", lambda m: m.pass_(seed=-1), r"seed must be an int in \[0, 2\*\*64\)"),
    ("pass seed True", lambda m: m.pass_(seed=True), r"seed must be an int in \[0, 2\*\*64\)"),
    ("pass seeds for another batch", lambda m: m.pass_(seed=[1, 2]).sample(m.latent()), r"seed must be an int or a list of 1 ints"),
    ("denoise hook target True", lambda m: DenoiseScheduleHook(True), r"target_denoise must be a finite number in \(0, 1\]"),
    ("steps hook target 2.5", lambda m: StepsScheduleHook(2.5), r"target_steps must be an integer in \[1, 10000\]"),
    ("cfg hook round_down 'no'", lambda m: CfgScheduleHook(3.0, round_down="no"), r"round_down must be true or false"),
    ("noise hook strength 1e6", lambda m: NoiseInjectionHook(0, 1e6, 0.0), r"start_strength must be a finite number in \[0, 100\]"),
    ("noise hook upstream_compat 'no'", lambda m: NoiseInjectionHook(0, 0.1, 0.0, upstream_compat="no"),
     r"upstream_compat must be true or false"),
    ("hook denoise 1e-9 over the iterations", lambda m: iterative_upscale(
        m.latent(), 2.0, 2, m.upscaler(hook_base=DenoiseScheduleHook(1e-9))), r"denoise must be >= steps / 10000"),
    ("resize images NaN", lambda m: resize_images(m.images(value=NAN), 16, 16, "bilinear"), r"images contains NaN"),
    ("resize images a list", lambda m: resize_images([[0.0]], 16, 16, "bilinear"), r"images must be \[B, C, H, W\]; got shape list"),
    ("upscaler config use_tiled_vae 'no'", lambda m: UpscaleSpec(use_tiled_vae="no"), r"use_tiled_vae must be true or false"),
    ("upscaler config upstream_compat 'yes'", lambda m: UpscaleSpec(upstream_compat="yes"), r"upstream_compat must be true or false"),
    ("upscaler config iterations 2.5", lambda m: UpscaleSpec(iterations=2.5), r"steps \(upscaler.iterations\) must be an integer in \[1, 64\]"),
    ("upscaler config denoise True", lambda m: UpscaleSpec(denoise=True), r"denoise must be a finite number in \(0, 1\], got True"),
    ("upscaler config step_mode", lambda m: UpscaleSpec(step_mode="cubic"), r"step_mode must be one of simple, geometric"),
    ("upscaler config hook a string", lambda m: UpscaleSpec(hook_base="noise"), r"hook_base must be an upscaler hook"),
    # metrics and the evaluator
    ("evaluator judge 'no'", lambda m: Evaluator(judge="no"), r"metrics.judge must be true or false, got 'no'"),
    ("evaluator references 'no'", lambda m: Evaluator(references="no"), r"metrics.references must be true or false"),
    ("evaluator perceptual 'lpips'", lambda m: Evaluator(perceptual="lpips"), r"metrics.perceptual must be one of auto, judge, lpips/alex"),
    ("evaluator band_width 0", lambda m: Evaluator(band_width=0), r"metrics.band_width must be an integer in \[1, 4096\]"),
    ("evaluator real_images -1", lambda m: Evaluator(real_images=-1), r"metrics.real_images must be an integer in \[0, 100000\]"),
    ("evaluator clip 3", lambda m: Evaluator(clip=3), r"metrics.clip must be a local CLIP folder"),
    ("evaluator clip missing folder", lambda m: Evaluator(clip=str(m.tmp_path / "clip")),
     r"metrics.clip must be a local CLIP folder \(with its config.json\) or null, got '.*clip'"),
    ("metrics perceptual unknown", lambda m: m.metrics(perceptual="lpips"), r"perceptual must be one of auto, judge, lpips/alex"),
    ("metrics band_width True", lambda m: m.metrics(band_width=True), r"band_width must be an integer in \[1, 4096\], got True"),
    ("kid subsets True", lambda m: kernel_distance("judge", m.judge, subsets=True), r"subsets must be an integer in \[1, 10000\], got True"),
    # the tracker
    ("logger init_timeout True", lambda m: WandbTracker(init_timeout=True), r"logger.init_timeout must be a finite number in \(0, 600\]"),
    ("logger entity a number", lambda m: WandbTracker(entity=3), r"logger.entity must be a string or null"),
    ("logger mode None", lambda m: WandbTracker(mode=None), r"logger.mode must be one of auto, online, offline, disabled"),
    # the trace
    ("trace callback 3", lambda m: Trace(3), r"callback must be None or a callable"),
    ("trace stack None", lambda m: Trace.stack(None), r"traces must be a list of Trace objects"),
    ("trace with no reports", lambda m: Trace().summary(), r"the trace has no reports"),
    # load_model and the model's files, before any weight loads
    ("load_model compile 'no'", lambda m: load_model(compile="no"), r"compile must be true or false, got 'no'"),
    ("load_model device gpu", lambda m: load_model(device="gpu"), r"device must be one of cpu, cuda, cuda:N \(N a GPU index\), mps; got 'gpu'"),
    ("load_model dtype fp16", lambda m: load_model(dtype="fp16"), r"dtype must be one of float32 \| float16 \| bfloat16"),
    ("load_model source 3", lambda m: load_model(3), r"source must be None, 'world', a model folder or a checkpoint file path"),
    ("load_model missing path", lambda m: load_model(m.tmp_path / "nope"), r"model path '.*nope' does not exist"),
    ("load_model text file", lambda m: load_model(m.png("model.txt", b"weights")), r"model file '.*model\.txt' must end in one of"),
    ("world folder with an empty unet/", lambda m: load_model(world_copy(m, "empty unet")),
     r"model folder is missing '.*unet/config\.json'"),
    ("world folder with a truncated VAE", lambda m: load_model(world_copy(m, "truncated vae")),
     r"weights file '.*vae/diffusion_pytorch_model\.safetensors' is damaged \(truncated\)"),
    ("world folder with a truncated UNet", lambda m: load_model(world_copy(m, "truncated unet")),
     r"weights file '.*unet/diffusion_pytorch_model\.safetensors' is damaged \(truncated\)"),
    ("world folder without the VAE's config", lambda m: load_model(world_copy(m, "no vae config")),
     r"model folder is missing '.*vae/config\.json'"),
    ("truncated VAE's fingerprint", lambda m: ModelSource(path=str(world_copy(m, "truncated vae"))).fingerprint(),
     r"is damaged \(truncated\)"),
    ("world folder with a UNet that is not safetensors", lambda m: load_model(world_copy(m, "garbage unet")),
     r"weights file '.*unet/diffusion_pytorch_model\.safetensors' is damaged: not a readable safetensors file"),
    ("model source compile 'no'", lambda m: ModelSource(compile="no").check(), r"compile must be true or false"),
    ("model source random_seed -1", lambda m: ModelSource(random_seed=-1).check(), r"random_seed must be an integer in \[0, 4294967295\]"),
    ("world prompt word unknown", lambda m: ModelSource().check_prompts({"base_sampler.prompt": "purple unicorns"}),
     r"base_sampler.prompt: prompt 'purple unicorns': word 'unicorns' is unknown"),
    ("device 'gpu' (one check)", lambda m: check_device("gpu"), r"device must be one of cpu, cuda, cuda:N"),
    ("device torch.device('meta')", lambda m: check_device(torch.device("meta")), r"device must be one of cpu, cuda"),
]


@pytest.mark.parametrize("call, message", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_a_bad_value_is_refused_before_any_model_call_naming_the_parameter(models, call, message):
    assert_refused_before_any_model_call(models, call, message)


TINY = ["model=random_world", "steps=2", "seeds=1", "batch_size=1", "height=64", "width=64", "metrics=seams",
        "logger=none"]
FIGURE = "{name: f, kind: line, x: overlap_factor, metrics: [seam/gradient_ratio]}"

# (id, overrides, regex the ConfigError must match: the key and its range or values)
CONFIG_ROWS = [
    ("dual.restore_latent=no", ["dual=regional", "dual.restore_latent=no"], r"dual: restore_latent must be true or false"),
    ("dual.return_x0=no", ["dual=whole_run", "dual.return_x0=no"], r"dual: return_x0 must be true or false"),
    ("dual.second_seed_mode", ["dual=regional", "dual.second_seed_mode=both"], r"dual: second_seed_mode must be one of"),
    ("dual.feather=true", ["dual=fused", "dual.feather=true"], r"dual: feather must be a finite number in \[0, 64\]"),
    ("metrics.judge=no", ["metrics.judge=no"], r"metrics: metrics.judge must be true or false, got 'no'"),
    ("metrics.references=no", ["metrics.references=no"], r"metrics: metrics.references must be true or false"),
    ("metrics.perceptual", ["+metrics.perceptual=lpips"], r"metrics: metrics.perceptual must be one of"),
    ("upscaler.use_tiled_vae=no", ["upscaler=two_samplers", "upscaler.use_tiled_vae=no"],
     r"upscaler: use_tiled_vae must be true or false, got 'no'"),
    ("upscaler.upstream_compat=yes", ["upscaler=two_samplers", "upscaler.upstream_compat=yes"],
     r"upscaler: upstream_compat must be true or false"),
    ("upscaler.iterations=2.5", ["upscaler=two_samplers", "upscaler.iterations=2.5"], r"upscaler: .*upscaler.iterations"),
    ("upscaler.denoise=true", ["upscaler=two_samplers", "upscaler.denoise=true"], r"upscaler: denoise must be a finite number"),
    ("upscaler.step_mode", ["upscaler=two_samplers", "upscaler.step_mode=cubic"], r"upscaler: step_mode must be one of"),
    ("hook target_denoise 1e-9", ["upscaler=two_samplers_hooks", "upscaler.hook_base.hook2.target_denoise=1e-9"],
     r"upscaler: hook_base at iteration 2 of 2: denoise must be >= steps / 10000"),
    ("hook target_steps over the schedule", ["upscaler=two_samplers_hooks", "upscaler.denoise=0.5",
                                             "upscaler.hook_base.hook2._target_=dualsampler.upscale.StepsScheduleHook",
                                             "~upscaler.hook_base.hook2.target_denoise", "+upscaler.hook_base.hook2.target_steps=10000"],
     r"upscaler: hook_base at iteration 2 of 2: denoise must be >= steps / 10000"),
    ("hook start_strength 1000", ["upscaler=two_samplers_hooks", "upscaler.hook_base.hook1.start_strength=1000"],
     r"upscaler.hook_base.hook1: start_strength must be a finite number in \[0, 100\]"),
    ("hook target_cfg true", ["upscaler=two_samplers_hooks", "upscaler.hook_mask.target_cfg=true"],
     r"upscaler.hook_mask: target_cfg must be a finite number"),
    ("objective.metric typo", ["objective.metric=seam/gradient_ratoi"],
     r"objective.metric: 'seam/gradient_ratoi' is not a metric this job reports"),
    ("objective.metric needs the judge", ["objective.metric=region_accuracy/inside"],
     r"objective.metric: 'region_accuracy/inside' is not a metric this job reports"),
    ("objective.floors need the judge", ["hparams_search=seam_overlap"], r"objective.floors: 'region_accuracy/inside' is not a metric"),
    ("objective.penalty", ["objective.penalty=-1"], r"objective.penalty must be a finite number in \[0, 1e\+06\]"),
    ("objective unknown key", ["+objective.metrics=seam/gradient_ratio"], r"objective: unknown key 'metrics'"),
    ("denoise under steps / 10000", ["steps=4", "denoise=0.0003"], r"denoise=0.0003 is invalid with steps=4: denoise must be >= steps / 10000"),
    ("height not a multiple of the VAE's factor", ["height=66"],
     r"model: height and width must be multiples of the model's VAE factor 4; got 66x64"),
    ("figures kind", [f"+figures=[{FIGURE.replace('line', 'pie')}]"], r"figures\[0\].kind must be one of line, bar, heatmap"),
    ("figures unknown key", [f"+figures=[{FIGURE[:-1]}, hues: dual}}]"], r"figures\[0\]: unknown key 'hues'"),
    ("figures metric typo", [f"+figures=[{FIGURE.replace('seam/gradient_ratio', 'seam/gradient')}]"],
     r"figures\[0\].metrics: 'seam/gradient' is not a metric this job reports"),
    ("figures name a path", [f"+figures=[{FIGURE.replace('name: f', 'name: a/b')}]"], r"figures\[0\].name must be a file name"),
    ("figures not a list", ["figures=overlap"], r"figures must be a list of figure declarations"),
    ("prompt word, seams only", ["base_sampler.prompt=purple unicorns"],
     r"model: base_sampler.prompt: prompt 'purple unicorns': word 'unicorns' is unknown"),
    ("negative prompt word", ["mask_sampler.negative_prompt=blurry"], r"mask_sampler.negative_prompt: .*'blurry' is unknown"),
    ("sampler cfg true", ["base_sampler.cfg=true"], r"base_sampler: cfg must be a finite number in \[0, 100\], got True"),
    ("sampler prompt a number", ["mask_sampler.prompt=5"], r"mask_sampler: prompt must be a string, got 5"),
    ("model compile no", ["+model.compile=no"], r"model: compile must be true or false"),
    ("model dtype", ["model.dtype=fp16"], r"model: dtype must be one of float32"),
    ("model random_seed", ["model.random_seed=-1"], r"model: random_seed must be an integer in \[0, 4294967295\]"),
    ("mask rx true", ["mask=ellipse", "mask.rx=true"], r"mask: rx must be a finite number in \(0, 4\], got True"),
    ("metrics.clip missing", ["metrics.clip=/nonexistent/clip"], r"metrics: metrics.clip must be a local CLIP folder"),
]


def config_parts(overrides: list[str]) -> JobParts:
    """The job's parts of `dualsampler-run <TINY> <overrides>`, as the runner builds them before the model loads."""
    with initialize_config_module("dualsampler.conf", version_base="1.3"):
        config = compose("config", overrides=[*TINY, *overrides])
    return JobParts.from_config(config)


@pytest.fixture
def no_loading(monkeypatch):
    """Counts model loads (ModelSource.load); the config rows must end before any."""
    loads = []
    monkeypatch.setattr(ModelSource, "load", lambda self, device="cpu": loads.append(device))
    return loads


@pytest.mark.parametrize("overrides, message", [row[1:] for row in CONFIG_ROWS], ids=[row[0] for row in CONFIG_ROWS])
def test_a_bad_config_value_is_refused_before_the_model_loads_naming_the_key(no_loading, overrides, message):
    with pytest.raises(ConfigError) as error:
        config_parts(overrides)
    assert re.search(message, str(error.value)), str(error.value)
    assert no_loading == []


def test_the_round_holds_at_least_eighty_new_rows():
    names = [row[0] for row in ROWS + CONFIG_ROWS]
    assert len(names) >= 80 and len(set(names)) == len(names)


def test_the_shipped_configs_pass_every_check(no_loading):
    for overrides in ([], ["upscaler=two_samplers_hooks"], ["upscaler=two_samplers", "upscaler.iterations=2.0"],
                      ["metrics=default", "height=128", "width=128", f"+figures=[{FIGURE}]"], ["dual=regional"]):
        parts = config_parts(overrides)
        assert parts.settings.steps == 2
    assert config_parts(["upscaler=two_samplers", "upscaler.iterations=2.0"]).upscaler.iterations == 2
    assert no_loading == []


@pytest.fixture(scope="module")
def world():
    from dualsampler.models.world import random_world

    return random_world(0)


@pytest.mark.parametrize("cfg, prompt, message", [
    (NAN, "red dots", r"cfg must be a finite number in \[0, 100\], got nan"),
    (INF, "red dots", r"cfg must be a finite number in \[0, 100\], got inf"),
    (True, "red dots", r"cfg must be a finite number in \[0, 100\], got True"),
    (3.0, "red unicorns", r"prompt 'red unicorns': word 'unicorns' is unknown"),
], ids=["cfg NaN", "cfg inf", "cfg True", "unknown word"])
def test_the_models_denoiser_refuses_before_encoding_a_prompt(world, cfg, prompt, message):
    calls = []
    hooks = [module.register_forward_hook(lambda *_: calls.append(1)) for module in (world.prompt_encoder, world.unet)]
    try:
        with pytest.raises(ValueError, match=message):
            world.denoiser(prompt, cfg=cfg)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == []

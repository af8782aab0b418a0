"""Parity with upstream (issue 12, SPEC §10): drive a user's own checkouts of ComfyUI and the Impact Pack with an
analytic model, run the same cases through this toolkit, print a table (case, max abs diff, status) and a summary.

    python scripts/upstream_parity.py --comfyui ~/src/ComfyUI --impact ~/src/ComfyUI-Impact-Pack \\
        [--impact-seed-loop ~/src/Impact-a5ca503] [--comfyui-noise ~/src/ComfyUI_Noise] [--only REGEX] \\
        [--write-golden tests/data/parity]

The checkouts stay outside this repository: their code is imported, never copied. The model is Gaussian data
per channel, `D(x, s) = mu + (x - mu) std^2 / (std^2 + s^2)`, exact for eps and x0 alike, so every difference
is the samplers'. Cases at cfg != 1 (`extra["cfg"]`) give the conditional prediction the data mean mu + COND_SHIFT
(upstream: a positive conditioning of ones; ours: `GuidedDenoiser`, which makes both predictions through the
denoiser `run_ours` is given), so cond and uncond differ and guidance matters. Cases with `extra["flow"]` run a
rectified-flow model sampling (`{"kind": "sd3" | "flux", "shift": ...}`: ours FlowModelSampling or
FluxModelSampling, upstream ModelSamplingDiscreteFlow or ModelSamplingFlux with CONST as its nodes build them) over
the same Gaussian data, whose exact x0 in the flow parametrization `x = (1 - s) x0 + s n` is
`mu + (1 - s) std^2 (x - (1 - s) mu) / ((1 - s)^2 std^2 + s^2)`.
Upstream is reached through its nodes: ComfyUI's KSamplerAdvanced and KSampler (common_ksampler,
comfy.sample, CFGGuider, the real ModelPatcher around an analytic module), the Impact Pack's KSamplerAdvancedWrapper
(its schedulers AYS and GITS), TwoSamplersForMask, TwoAdvancedSamplersForMask (today's regional route) and, with
`--impact-seed-loop` (a checkout at a5ca503 or another commit before the regional route), the original per-step
loop. Modules that upstream imports at load time but that sampling never uses (torchvision's transforms, the
Impact Pack's detectors, the web server) are stubbed here when missing.

`--write-golden DIR` stores upstream's tensors (`golden.safetensors`) and `manifest.json` (the commits, the
model, every case's parameters); tests/test_parity.py rebuilds the inputs from the manifest and compares this
toolkit against them, so CI checks parity without upstream present.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import json
import math
import re
import subprocess
import sys
import types
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import parity_tolerance  # noqa: E402  (per-case tolerances; a sibling script)
import parity_upscale  # noqa: E402  (the upscaler's cases; a sibling script)

TOLERANCE = 1e-4
MU = (0.5, -0.3, 0.1, 0.8)
STD = (0.7, 1.1, 0.4, 0.9)
LATENT_SHAPE = (1, 4, 8, 8)
IMAGE_SCALE = 8
# cfg != 1 cases: the conditional prediction is the model with its data mean shifted by COND_SHIFT (upstream: the
# positive conditioning carries a 1, the negative a 0; ours: `GuidedDenoiser`), so cond and uncond differ.
COND_SHIFT = 0.25
# Documented deviations (README, SPEC §10): a case whose difference one of these explains is reported, not failed.
DEVIATIONS = {
    "uni_pc_one_step": "uni_pc over a one-step sigma list: ours steps, upstream only rescales x",
    "held_latent": "latent held exactly outside the noise mask (upstream's uni_pc leaves its 0.001 residual)",
    "grow_mask": "region masks on non-square latents (upstream resizes them to the transposed size; no compat flag)",
    "regional_renoise": ("RegionalSampler with base_only_steps 0 or a second seed: upstream re-adds the same noise at "
                         "every base step (its custom-noise path ignores add_noise); ours adds it once"),
    **parity_upscale.DEVIATIONS,
}


# --------------------------------------------------------------------------------------------------------------
# The analytic model and the inputs every case shares (rebuilt by tests/test_parity.py from the manifest)
# --------------------------------------------------------------------------------------------------------------

def channel_stats(dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    return (torch.tensor(MU, dtype=dtype).reshape(1, -1, 1, 1), torch.tensor(STD, dtype=dtype).reshape(1, -1, 1, 1))


def gaussian_x0(x: Tensor, sigma: Tensor, shift: Tensor | float = 0.0) -> Tensor:
    """x0 of Gaussian data N(mu_c + shift, std_c^2) per channel at noise level sigma ([B]); `shift` a number or
    [B, 1, 1, 1]."""
    mu, std = channel_stats(x.dtype)
    mu = mu + shift
    s2 = sigma.reshape(-1, 1, 1, 1).to(x.dtype) ** 2
    return mu + (x - mu) * std**2 / (std**2 + s2)


def flow_gaussian_x0(x: Tensor, sigma: Tensor, shift: Tensor | float = 0.0) -> Tensor:
    """x0 of Gaussian data N(mu_c + shift, std_c^2) per channel under the flow noising `x = (1 - s) x0 + s n`."""
    mu, std = channel_stats(x.dtype)
    mu = mu + shift
    s = sigma.reshape(-1, 1, 1, 1).to(x.dtype)
    a = 1 - s
    return mu + a * std**2 * (x - a * mu) / (a**2 * std**2 + s**2)


def is_flow_sampling(model_sampling: Any) -> bool:
    from dualsampler.sampling.flow_sampling import is_flow

    return is_flow(model_sampling)


class GaussianDenoiser:
    """Our side of the analytic model; `with_uncond` gives the same prediction twice (cfg 1, cond == uncond).
    With a flow `model_sampling` (which KSamplers built around it then use) it is the flow model's x0."""

    def __init__(self, model_sampling: Any = None) -> None:
        if model_sampling is not None:
            self.model_sampling = model_sampling
        self.x0 = flow_gaussian_x0 if is_flow_sampling(model_sampling) else gaussian_x0

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.x0(x, sigma)

    def with_uncond(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        x0 = self.x0(x, sigma)
        return x0, x0


class GuidedDenoiser:
    """Classifier-free guidance on our side of a cfg != 1 case, every model call through `denoiser` (any object
    `denoiser(x, sigma) -> x0` of the unshifted model, e.g. GaussianDenoiser or the sensitivity probe's wrapper):
    uncond `= denoiser(x, sigma)`, cond `= denoiser(x - COND_SHIFT, sigma) + COND_SHIFT` (the same Gaussian data
    with its mean shifted, what upstream's model gives for the positive conditioning), and the guided prediction
    `uncond + (cond - uncond) * cfg` as ComfyUI's cfg_function; `with_uncond` gives (guided, uncond) for cfg_pp."""

    def __init__(self, denoiser: Any, cfg: float) -> None:
        self.denoiser, self.cfg = denoiser, cfg
        model_sampling = getattr(denoiser, "model_sampling", None)
        if model_sampling is not None:  # a flow model's: its data shift moves x by (1 - sigma) COND_SHIFT
            self.model_sampling = model_sampling
        self.flow = is_flow_sampling(model_sampling)

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.with_uncond(x, sigma)[0]

    def with_uncond(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        uncond = self.denoiser(x, sigma)
        moved = (1 - sigma.reshape(-1, 1, 1, 1).to(x.dtype)) * COND_SHIFT if self.flow else COND_SHIFT
        cond = self.denoiser(x - moved, sigma) + COND_SHIFT
        return uncond + (cond - uncond) * self.cfg, uncond


def make_latent(shape: tuple[int, ...] = LATENT_SHAPE, seed: int = 1234) -> Tensor:
    """The input latent of img2img and masked cases: data-like values."""
    g = torch.Generator().manual_seed(seed)
    mu, std = channel_stats()
    return mu + std * torch.randn(shape, generator=g)


def disc_mask(height: int, width: int, soft: bool, cx: float = 0.5, radius: float = 0.3) -> Tensor:
    """A disc of `radius` * min(H, W) centred at (`cx` * W, H / 2) as [H, W]; soft: a linear ramp of half the
    radius at its edge."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5 - height / 2).reshape(-1, 1)
    xs = (torch.arange(width, dtype=torch.float32) + 0.5 - cx * width).reshape(1, -1)
    r = (ys**2 + xs**2).sqrt() / min(height, width)
    if not soft:
        return (r <= radius).float()
    return ((1.5 * radius - r) / (0.5 * radius)).clamp(0, 1)


def make_mask(kind: str, resolution: str, shape: tuple[int, ...] = LATENT_SHAPE) -> Tensor:
    """`kind` binary | soft | rounded_one, `resolution` latent | image (IMAGE_SCALE x the latent), as [1, H, W].
    `rounded_one` is a constant-1 6x6 mask resized bilinearly with aligned corners, clamped to 1 (1 - 2^-23 at
    some pixels)."""
    h, w = shape[-2:]
    scale = IMAGE_SCALE if resolution == "image" else 1
    if kind == "rounded_one":
        ones = torch.ones(1, 1, 6, 6)
        return torch.nn.functional.interpolate(ones, size=(h * scale, w * scale), mode="bilinear",
                                               align_corners=True)[0].clamp(max=1)
    return disc_mask(h * scale, w * scale, kind == "soft")[None]


def region_masks(kind: str, resolution: str, count: int, shape: tuple[int, ...] = LATENT_SHAPE) -> list[Tensor]:
    """`count` region masks as [1, H, W]: `make_mask`'s disc for one region, else discs of radius 0.4 / count
    centred at (k + 0.5) / count of the width."""
    if count == 1:
        return [make_mask(kind, resolution, shape)]
    h, w = shape[-2:]
    scale = IMAGE_SCALE if resolution == "image" else 1
    return [disc_mask(h * scale, w * scale, kind == "soft", (k + 0.5) / count, 0.4 / count)[None] for k in range(count)]


# RegionalSampler's inputs beyond TwoAdvancedSamplersForMask's (Case.extra overrides them), with the values
# TwoAdvancedSamplersForMask passes.
REGIONAL_DEFAULTS = {"seed_2nd": 0, "seed_2nd_mode": "ignore", "base_only_steps": 1, "restore_latent": True,
                     "additional_mode": "ratio between", "additional_sampler": "AUTO", "additional_sigma_ratio": 0.3}


# --------------------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One comparison. `route`: ksampler_advanced | ksampler | impact_advanced | two_samplers | regional | seed_loop."""

    name: str
    route: str
    sampler: str
    scheduler: str
    steps: int
    seed: int = 42
    add_noise: bool = True
    start: int = 0
    end: int | None = None
    leftover: bool = False
    denoise: float = 1.0
    img2img: bool = False
    mask: str | None = None           # "binary/latent", "soft/image", ...
    mask_sampler: str | None = None
    mask_scheduler: str | None = None
    overlap: int = 0
    deviation: str | None = None      # a DEVIATIONS key when ours differs on purpose
    batch: int = 1
    width: int = LATENT_SHAPE[-1]     # latent width (height is LATENT_SHAPE's)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.batch, *LATENT_SHAPE[1:-1], self.width)

    def latent(self) -> Tensor:
        return make_latent(self.shape) if self.img2img or self.mask else torch.zeros(self.shape)

    def mask_tensor(self) -> Tensor | None:
        if self.mask is None:
            return None
        kind, resolution = self.mask.split("/")
        return make_mask(kind, resolution, self.shape)

    @property
    def cfg(self) -> float:
        """`extra["cfg"]`, 1 by default (cond == uncond, upstream skips the unconditional pass)."""
        return float(self.extra.get("cfg", 1.0))

    @property
    def flow(self) -> dict[str, Any] | None:
        """`extra["flow"]`: `{"kind": "sd3" | "flux", "shift": float}` for a flow model sampling, else None."""
        return self.extra.get("flow")

    def model_sampling(self) -> Any:
        """Our model sampling of the case: None (the default discrete VP) or the flow one `flow` names."""
        from dualsampler.sampling import FlowModelSampling, FluxModelSampling

        if self.flow is None:
            return None
        kind = FlowModelSampling if self.flow["kind"] == "sd3" else FluxModelSampling
        return kind(self.flow["shift"])

    @property
    def seeds(self) -> int | list[int]:
        """`extra["seeds"]` (one seed per batch element; upstream runs each element alone) or `seed`."""
        return self.extra.get("seeds") or self.seed

    def regional_options(self) -> dict[str, Any]:
        """RegionalSampler's inputs: REGIONAL_DEFAULTS updated from `extra`."""
        return {k: self.extra.get(k, v) for k, v in REGIONAL_DEFAULTS.items()}

    def regions(self) -> list[tuple[str, Tensor]]:
        """The regional_sampler route's regions: (sampler, mask) per name in `extra["regions"]`."""
        kind, resolution = self.mask.split("/")
        names = self.extra["regions"]
        return list(zip(names, region_masks(kind, resolution, len(names), self.shape)))


def case_from_entry(entry: dict[str, Any]) -> Case:
    """The case a manifest entry describes (its Case fields; the status, diffs and tolerance are the manifest's)."""
    return Case(**{k: v for k, v in entry.items() if k in Case.__dataclass_fields__})


def build_cases(samplers: list[str], schedulers: list[str], impact_schedulers: list[str], seed_loop: bool) -> list[Case]:
    cases: list[Case] = []
    one_step = {"uni_pc", "uni_pc_bh2"}
    ends_above_zero = one_step | {"dpm_fast", "dpm_adaptive"}  # upstream's last x keeps a residual of noise
    for sampler in samplers:
        for scheduler in schedulers:
            cases.append(Case(f"ksa/{sampler}/{scheduler}", "ksampler_advanced", sampler, scheduler, 6))
        for scheduler in impact_schedulers:
            cases.append(Case(f"impact/{sampler}/{scheduler}", "impact_advanced", sampler, scheduler, 6))
        cases.append(Case(f"slice/{sampler}/leftover", "ksampler_advanced", sampler, "karras", 10, start=3, end=7,
                          leftover=True, img2img=True))
        cases.append(Case(f"slice/{sampler}/to_zero", "ksampler_advanced", sampler, "karras", 10, start=3, end=7,
                          img2img=True))
        cases.append(Case(f"slice/{sampler}/no_noise", "ksampler_advanced", sampler, "normal", 8, add_noise=False,
                          start=4, img2img=True))
        cases.append(Case(f"slice/{sampler}/one_step", "ksampler_advanced", sampler, "karras", 10, start=4, end=5,
                          leftover=True, img2img=True, deviation="uni_pc_one_step" if sampler in one_step else None))
        cases.append(Case(f"denoise/{sampler}/0.6", "ksampler", sampler, "normal", 7, denoise=0.6, img2img=True))
        for mask in ("binary/latent", "soft/latent", "binary/image", "soft/image"):
            cases.append(Case(f"mask/{sampler}/{mask}", "ksampler_advanced", sampler, "karras", 6, mask=mask,
                              deviation="held_latent" if sampler in ends_above_zero else None))
    cases.append(Case("denoise/euler/14@0.56", "ksampler", "euler", "normal", 14, denoise=0.56, img2img=True))
    for sampler in ("euler", "ddim", "dpmpp_2m_sde", "uni_pc"):
        if sampler in samplers:
            cases.append(Case(f"denoise/{sampler}/0.6/soft/image", "ksampler", sampler, "karras", 7, denoise=0.6,
                              mask="soft/image", deviation="held_latent" if sampler in ends_above_zero else None))
    cases.append(Case("denoise/euler/ddim_uniform_7@0.5", "ksampler", "euler", "ddim_uniform", 7, denoise=0.5,
                      img2img=True))
    cases.append(Case("mask/ddim/no_noise", "ksampler_advanced", "ddim", "karras", 6, add_noise=False, start=2,
                      mask="soft/latent"))
    for sampler in ("euler_ancestral", "dpmpp_2m_sde", "ddim", "dpmpp_2m"):
        if sampler in samplers:
            cases.append(Case(f"batch2/{sampler}", "ksampler_advanced", sampler, "karras", 6, batch=2))
            cases.append(Case(f"batch2/{sampler}/soft/image", "ksampler_advanced", sampler, "karras", 6, batch=2,
                              mask="soft/image"))
            cases.append(Case(f"wide/{sampler}/soft/image", "ksampler_advanced", sampler, "karras", 6, width=12,
                              mask="soft/image"))
    pairs = [("euler", "dpmpp_2m"), ("dpmpp_2m", "euler_ancestral"), ("heun", "ddim"), ("lms", "dpm_2"),
             ("euler", "uni_pc"), ("dpmpp_2m_sde", "euler"), ("dpmpp_sde", "dpmpp_2m")]
    pairs = [(a, b) for a, b in pairs if a in samplers and b in samplers]
    for base, masked in pairs:
        held = "held_latent" if {base, masked} & ends_above_zero else None
        per_step = "uni_pc_one_step" if {base, masked} & one_step else held
        for mask in ("binary/latent", "soft/image"):
            for denoise in (1.0, 0.7):
                tag = f"{base}+{masked}/{mask}/d{denoise}"
                common = {"mask": mask, "mask_sampler": masked, "mask_scheduler": "normal", "denoise": denoise,
                          "img2img": denoise < 1}
                cases.append(Case(f"two/{tag}", "two_samplers", base, "karras", 6, deviation=held, **common))
                for overlap in (0, 3):
                    cases.append(Case(f"regional/{tag}/o{overlap}", "regional", base, "karras", 6, overlap=overlap,
                                      deviation=per_step, **common))
                    if seed_loop:
                        cases.append(Case(f"seed/{tag}/o{overlap}", "seed_loop", base, "karras", 6, overlap=overlap,
                                          deviation=per_step, **common))
    for base, masked in pairs[:2]:
        wide = {"mask": "soft/image", "mask_sampler": masked, "mask_scheduler": "normal", "width": 12}
        cases.append(Case(f"two/{base}+{masked}/wide", "two_samplers", base, "karras", 6, **wide))
        cases.append(Case(f"two/{base}+{masked}/batch2", "two_samplers", base, "karras", 6, batch=2,
                          mask="soft/image", mask_sampler=masked, mask_scheduler="normal"))
        for overlap in (0, 3):  # upstream resizes a non-square region mask to its transposed size, any overlap
            cases.append(Case(f"regional/{base}+{masked}/wide/o{overlap}", "regional", base, "karras", 6,
                              overlap=overlap, deviation="grow_mask", **wide))
            if seed_loop:
                cases.append(Case(f"seed/{base}+{masked}/wide/o{overlap}", "seed_loop", base, "karras", 6,
                                  overlap=overlap, deviation="grow_mask", **wide))
    return cases + extended_cases(samplers, schedulers, impact_schedulers, seed_loop) + flow_cases(
        samplers, schedulers, impact_schedulers)


ONE_STEP = {"uni_pc", "uni_pc_bh2"}
ENDS_ABOVE_ZERO = ONE_STEP | {"dpm_fast", "dpm_adaptive"}  # upstream's last x keeps a residual of noise
CFG3 = {"cfg": 3.0}
SEED_LIST = [42, 7]


def held(*samplers: str) -> str | None:
    """The deviation a whole run (or a masked slice) of these samplers shows."""
    return "held_latent" if set(samplers) & ENDS_ABOVE_ZERO else None


def per_step(*samplers: str) -> str | None:
    """The deviation a per-step route of these samplers shows."""
    return "uni_pc_one_step" if set(samplers) & ONE_STEP else held(*samplers)


def regional_case(name: str, regions: list[str], base: str = "euler", *, mask: str = "soft/image", overlap: int = 2,
                  options: dict[str, Any] | None = None, **fields: Any) -> Case:
    """A RegionalSampler case `rs/<name>`: `regions` (one sampler name per region, normal schedule), `options`
    RegionalSampler's inputs beyond REGIONAL_DEFAULTS; its deviation follows from them."""
    extra = {"regions": regions, **(options or {}), **fields.pop("extra", {})}
    o = {**REGIONAL_DEFAULTS, **extra}
    renoise = o["base_only_steps"] < fields.get("steps", 6) and (o["base_only_steps"] == 0
                                                                  or o["seed_2nd_mode"] != "ignore")
    deviation = "regional_renoise" if renoise else per_step(base, *regions)
    if fields.get("width", LATENT_SHAPE[-1]) != LATENT_SHAPE[-2]:
        deviation = "grow_mask"
    steps = fields.pop("steps", 6)
    return Case(f"rs/{name}", "regional_sampler", base, "karras", steps, mask=mask, mask_scheduler="normal",
                overlap=overlap, deviation=deviation, extra=extra, **fields)


def regional_sampler_cases() -> list[Case]:
    """RegionalSampler with 1-3 regions and each additional_mode, additional_sampler, ratio, seed_2nd mode (wraps
    included), base_only_steps (0, 2, all), restore_latent off, denoise < 1, cfg 3, a non-square latent."""
    cycle = ["dpmpp_2m", "euler_ancestral", "dpmpp_2m_sde"]
    sde = ["dpmpp_sde", "dpmpp_3m_sde_gpu"]
    cases = [regional_case(f"n{n}", cycle[:n]) for n in (1, 2, 3)]
    cases.append(regional_case("n2/binary/latent", cycle[:2], mask="binary/latent"))
    cases.append(regional_case("n3/o0", cycle, overlap=0))
    cases.append(regional_case("uni_pc", ["uni_pc"], "uni_pc_bh2"))
    for mode in ("DISABLE", "ratio additional", "ratio between"):
        cases.append(regional_case(f"mode/{mode}", sde, "dpmpp_2m_sde", options={"additional_mode": mode}))
    for sampler in ("AUTO", "euler", "heun", "heunpp2", "dpm_2", "dpm_fast", "dpmpp_2m", "ddpm"):
        cases.append(regional_case(f"sampler/{sampler}", ["dpmpp_2m_sde"], "dpmpp_sde",
                                   options={"additional_mode": "ratio additional", "additional_sampler": sampler}))
    for ratio in (0.0, 0.5, 1.0):
        cases.append(regional_case(f"ratio/{ratio}", ["dpmpp_sde"], "dpmpp_2m_sde_gpu",
                                   options={"additional_sigma_ratio": ratio}))
    for mode in ("ignore", "fixed", "seed+seed_2nd", "seed-seed_2nd", "increment", "decrement", "randomize"):
        cases.append(regional_case(f"seed_2nd/{mode}", ["dpmpp_2m_sde", "euler_ancestral"], "dpmpp_2m_sde",
                                   options={"seed_2nd": 5, "seed_2nd_mode": mode}))
    top = 2**50
    for tag, seed, seed_2nd, mode in (("add/wraps", top - 3, 10, "seed+seed_2nd"), ("add/at_2^50", top - 10, 10,
                                      "seed+seed_2nd"), ("add/large", 2**60, 1, "seed+seed_2nd"),
                                      ("subtract/wraps", 3, 10, "seed-seed_2nd")):
        cases.append(regional_case(f"seed_2nd/{tag}", ["dpmpp_2m_sde"], "dpmpp_sde", seed=seed,
                                   options={"seed_2nd": seed_2nd, "seed_2nd_mode": mode}))
    for steps in (0, 2, 6):
        cases.append(regional_case(f"base_only/{steps}", cycle[:2], "dpmpp_2m_sde", options={"base_only_steps": steps}))
    cases.append(regional_case("base_only/6/fixed", cycle[:2], "dpmpp_2m_sde",
                               options={"base_only_steps": 6, "seed_2nd": 5, "seed_2nd_mode": "fixed"}))
    cases.append(regional_case("restore_off", cycle[:2], options={"restore_latent": False}))
    cases.append(regional_case("denoise/0.7", cycle[:2], denoise=0.7, img2img=True))
    cases.append(regional_case("cfg3", cycle[:2], "dpmpp_2m_cfg_pp", extra=CFG3))
    cases.append(regional_case("wide", cycle[:2], width=12))
    return cases


def flow_per_step(*samplers: str) -> str | None:
    """A per-step route's deviation under a flow model: also `held_latent` where the recovery pass is dpm_fast
    (upstream's last dpm_fast step stops above sigma 0, which leaves a flow model's held latent scaled by
    `1 - sigma`; a VP model's is unchanged)."""
    return per_step(*samplers) or held(*(AUTO_RECOVERY.get(s, s) for s in samplers))


# The recovery sampler the Impact Pack's AUTO gives a sampler that gets one (recovery.AUTO_AFTER_DPM_FAST).
AUTO_RECOVERY = {s: "dpm_fast" for s in ("uni_pc", "uni_pc_bh2", "dpmpp_sde", "dpmpp_sde_gpu")}
SD3 = {"kind": "sd3", "shift": 3.0}
FLUX = {"kind": "flux", "shift": 1.15}


def flow_cases(samplers: list[str], schedulers: list[str], impact_schedulers: list[str]) -> list[Case]:
    """Issue 22's flow model samplings (SD3's shift 3, Flux's mu 1.15): every sampler with every scheduler (SD3)
    and two (Flux), leftover and no-noise slices, denoise < 1, a noise mask, cfg 3 under a mask; the Impact Pack's
    schedulers; TwoSamplersForMask, the regional route and RegionalSampler."""
    cases: list[Case] = []
    for s in samplers:
        for scheduler in schedulers:
            cases.append(Case(f"flow/sd3/ksa/{s}/{scheduler}", "ksampler_advanced", s, scheduler, 6,
                              extra={"flow": SD3}))
        for scheduler in ("normal", "simple"):
            cases.append(Case(f"flow/flux/ksa/{s}/{scheduler}", "ksampler_advanced", s, scheduler, 6,
                              extra={"flow": FLUX}))
        cases.append(Case(f"flow/sd3/slice/{s}/leftover", "ksampler_advanced", s, "simple", 10, start=3, end=7,
                          leftover=True, img2img=True, extra={"flow": SD3}))
        cases.append(Case(f"flow/sd3/slice/{s}/no_noise", "ksampler_advanced", s, "normal", 8, add_noise=False,
                          start=4, img2img=True, extra={"flow": SD3}))
        cases.append(Case(f"flow/sd3/denoise/{s}/0.6", "ksampler", s, "normal", 7, denoise=0.6, img2img=True,
                          extra={"flow": SD3}))
        cases.append(Case(f"flow/flux/denoise/{s}/0.6", "ksampler", s, "simple", 7, denoise=0.6, img2img=True,
                          extra={"flow": FLUX}))
        cases.append(Case(f"flow/sd3/mask/{s}/soft/image", "ksampler_advanced", s, "simple", 6, mask="soft/image",
                          deviation=held(s), extra={"flow": SD3}))
        cases.append(Case(f"flow/sd3/cfg3/{s}/soft/image", "ksampler_advanced", s, "normal", 6, mask="soft/image",
                          deviation=held(s), extra={"flow": SD3, **CFG3}))
        both = {"mask": "soft/image", "mask_sampler": s, "mask_scheduler": "simple", "extra": {"flow": SD3}}
        cases.append(Case(f"flow/sd3/two/{s}/0.7", "two_samplers", s, "normal", 6, denoise=0.7, img2img=True,
                          deviation=held(s), **both))
        cases.append(Case(f"flow/sd3/regional/{s}", "regional", s, "normal", 6, overlap=2,
                          deviation=flow_per_step(s), **both))
    for scheduler in impact_schedulers:
        cases.append(Case(f"flow/sd3/impact/euler/{scheduler}", "impact_advanced", "euler", scheduler, 6,
                          extra={"flow": SD3}))
    cases.append(Case("flow/sd3/ksa/euler/normal/batch2/seeds", "ksampler_advanced", "euler_ancestral", "normal", 6,
                      batch=2, extra={"flow": SD3, "seeds": SEED_LIST}))
    for base, masked in (("euler", "dpmpp_2m_sde"), ("dpmpp_2m", "euler_ancestral")):
        pair = {"mask": "soft/image", "mask_sampler": masked, "mask_scheduler": "simple"}
        cases.append(Case(f"flow/flux/two/{base}+{masked}", "two_samplers", base, "simple", 6,
                          extra={"flow": FLUX}, **pair))
        cases.append(Case(f"flow/flux/regional/{base}+{masked}", "regional", base, "simple", 6, overlap=2,
                          extra={"flow": FLUX}, **pair))
    cycle = ["dpmpp_2m", "euler_ancestral", "dpmpp_2m_sde"]
    cases.append(regional_case("flow/sd3/n3", cycle, extra={"flow": SD3}))
    for mode in ("DISABLE", "ratio additional", "ratio between"):
        cases.append(regional_case(f"flow/sd3/mode/{mode}", ["dpmpp_sde", "dpmpp_3m_sde"], "dpmpp_2m_sde",
                                   options={"additional_mode": mode}, extra={"flow": SD3}))
    cases.append(regional_case("flow/sd3/denoise/0.7", cycle[:2], denoise=0.7, img2img=True, extra={"flow": SD3}))
    cases.append(regional_case("flow/sd3/cfg3", cycle[:2], "euler_ancestral_cfg_pp", extra={"flow": SD3, **CFG3}))
    cases.append(regional_case("flow/flux/n2", cycle[:2], extra={"flow": FLUX}))
    return cases


def extended_cases(samplers: list[str], schedulers: list[str], impact_schedulers: list[str],
                   seed_loop: bool) -> list[Case]:
    """Issue 18's families: every sampler at cfg 3 under a mask and with a seed list (batch 2), and through
    TwoSamplersForMask, the regional route and the per-step loop; denoise < 1 with every scheduler; batch 2 with
    one seed and with seed lists, cfg 3 and non-square latents on every route; RegionalSampler's inputs."""
    cases: list[Case] = []
    for s in samplers:
        cases.append(Case(f"cfg3/{s}/soft/image", "ksampler_advanced", s, "karras", 6, mask="soft/image",
                          deviation=held(s), extra=CFG3))
        cases.append(Case(f"seeds/{s}", "ksampler_advanced", s, "karras", 6, batch=2, extra={"seeds": SEED_LIST}))
        both = {"mask": "soft/image", "mask_sampler": s, "mask_scheduler": "normal"}
        cases.append(Case(f"all/two/{s}/0.7", "two_samplers", s, "karras", 6, denoise=0.7, deviation=held(s),
                          **both))
        cases.append(Case(f"all/regional/{s}", "regional", s, "karras", 6, overlap=2, deviation=per_step(s), **both))
        if seed_loop:
            cases.append(Case(f"all/seed/{s}", "seed_loop", s, "karras", 6, overlap=2, deviation=per_step(s), **both))
    for scheduler in schedulers:
        cases.append(Case(f"sched/ksampler/{scheduler}/0.6", "ksampler", "dpmpp_2m", scheduler, 6, denoise=0.6,
                          img2img=True))
    for scheduler in schedulers + impact_schedulers:
        cases.append(Case(f"sched/two/{scheduler}/0.6", "two_samplers", "dpmpp_2m", scheduler, 6, denoise=0.6,
                          mask="soft/image", mask_sampler="euler", mask_scheduler=scheduler))
    pair = {"mask": "soft/image", "mask_sampler": "dpmpp_2m_sde", "mask_scheduler": "normal"}
    for tag, extra in (("batch2", {}), ("seeds", {"seeds": SEED_LIST})):
        cases.append(Case(f"{tag}/ksampler/euler_ancestral/0.6", "ksampler", "euler_ancestral", "karras", 6,
                          batch=2, denoise=0.6, img2img=True, extra=extra))
        cases.append(Case(f"{tag}/impact/dpmpp_3m_sde/AYS SD1", "impact_advanced", "dpmpp_3m_sde", "AYS SD1", 6,
                          batch=2, extra=extra))
        cases.append(Case(f"{tag}/two/euler+dpmpp_2m_sde", "two_samplers", "euler", "karras", 6, batch=2,
                          extra=extra, **pair))
        cases.append(Case(f"{tag}/regional/euler+dpmpp_2m_sde", "regional", "euler", "karras", 6, batch=2,
                          overlap=2, extra=extra, **pair))
        if seed_loop:
            cases.append(Case(f"{tag}/seed/euler+dpmpp_2m_sde", "seed_loop", "euler", "karras", 6, batch=2,
                              overlap=2, extra=extra, **pair))
        cases.append(regional_case(f"{tag}", ["dpmpp_2m", "dpmpp_2m_sde"], batch=2, extra=extra))
    cfg_pair = {"mask": "soft/image", "mask_sampler": "dpmpp_2m", "mask_scheduler": "normal", "extra": CFG3}
    cases.append(Case("cfg3/two/euler_ancestral+dpmpp_2m", "two_samplers", "euler_ancestral", "karras", 6,
                      **cfg_pair))
    cases.append(Case("cfg3/regional/euler_ancestral+dpmpp_2m", "regional", "euler_ancestral", "karras", 6,
                      overlap=2, **cfg_pair))
    if seed_loop:
        cases.append(Case("cfg3/seed/euler_ancestral+dpmpp_2m", "seed_loop", "euler_ancestral", "karras", 6,
                          overlap=2, **cfg_pair))
    cases.append(Case("wide/ksampler/dpmpp_2m/0.6", "ksampler", "dpmpp_2m", "karras", 6, denoise=0.6,
                      img2img=True, width=12))
    cases.append(Case("wide/impact/dpmpp_2m_sde/AYS SD1", "impact_advanced", "dpmpp_2m_sde", "AYS SD1", 6,
                      width=12))
    cases.append(Case("wide/cfg3/two/euler+dpmpp_2m", "two_samplers", "euler", "karras", 6, width=12, **cfg_pair))
    cases.append(Case("two/rounded_one/d0.7", "two_samplers", "euler", "karras", 6, denoise=0.7, img2img=True,
                      mask="rounded_one/image", mask_sampler="dpmpp_2m", mask_scheduler="normal"))
    cases.extend(regional_sampler_cases())
    available = set(samplers) | {"AUTO"}
    ok = lambda c: ({c.sampler, c.mask_sampler or c.sampler, *c.extra.get("regions", []),
                     c.extra.get("additional_sampler", "AUTO")} <= available
                    and (c.scheduler in schedulers or c.scheduler in impact_schedulers))
    return [c for c in cases if ok(c)]


# --------------------------------------------------------------------------------------------------------------
# Ours
# --------------------------------------------------------------------------------------------------------------

def run_ours(case: Case, upstream_compat: bool = False, denoiser: Any = None) -> Tensor:
    """The case through this toolkit's public API; `upstream_compat` switches its deliberate deviations off.
    `denoiser` replaces the analytic one (the sensitivity probe perturbs its output); every model call of every
    route goes through it."""
    from dualsampler import dual
    from dualsampler.sampling import KSampler

    den = GaussianDenoiser(case.model_sampling()) if denoiser is None else denoiser
    if case.flow is not None and denoiser is not None:
        den = with_flow_model(den, case.model_sampling())
    if case.route == "upscale":
        return parity_upscale.run_ours(case, upstream_compat, den)
    if case.cfg != 1:
        den = GuidedDenoiser(den, case.cfg)
    latent, mask, seed = case.latent(), case.mask_tensor(), case.seeds
    ks = KSampler(den, case.sampler, case.scheduler, upstream_compat=upstream_compat)
    if case.route in ("ksampler_advanced", "impact_advanced"):
        end = case.steps if case.end is None else case.end
        return ks.sample_advanced(case.add_noise, seed, case.steps, latent, case.start, end, case.leftover, mask)
    if case.route == "ksampler":
        return ks.sample(latent, seed, case.steps, case.denoise, mask)
    if case.route == "regional_sampler":
        o = case.regional_options()
        regions = [dual.Region(m, KSampler(den, name, case.mask_scheduler, upstream_compat=upstream_compat))
                   for name, m in case.regions()]
        return dual.regional_sampler(seed, o["seed_2nd"], o["seed_2nd_mode"], case.steps, o["base_only_steps"],
                                     case.denoise, latent, ks, regions, case.overlap, o["restore_latent"],
                                     o["additional_mode"], o["additional_sampler"], o["additional_sigma_ratio"])
    other = KSampler(den, case.mask_sampler, case.mask_scheduler, upstream_compat=upstream_compat)
    if case.route == "two_samplers":
        return dual.two_samplers_for_mask(latent, ks, other, mask, seed, case.steps, case.denoise)
    mode = "seed" if case.route == "seed_loop" else "regional"
    return dual.two_advanced_samplers_for_mask(seed, case.steps, case.denoise, latent, ks, other, mask,
                                               case.overlap, mode)


def with_flow_model(denoiser: Any, model_sampling: Any) -> Any:
    """A denoiser handed to `run_ours` (a `GaussianDenoiser` or subclass, or the sensitivity probe's wrapper around
    one) made the flow case's model: the Gaussian becomes the flow one of its own class, a wrapper's perturbation
    stays."""
    if isinstance(denoiser, GaussianDenoiser):
        return type(denoiser)(model_sampling)
    inner = getattr(denoiser, "denoiser", None)
    if isinstance(inner, GaussianDenoiser):
        denoiser.denoiser = type(inner)(model_sampling)
    return denoiser


# --------------------------------------------------------------------------------------------------------------
# Upstream
# --------------------------------------------------------------------------------------------------------------

class _Anything:
    """Stands for anything an unused upstream import asks of a stubbed module (classes, functions, constants)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Anything:
        return _Anything()

    def __getattr__(self, name: str) -> _Anything:
        return _Anything()

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (object,)


def _stub_attribute(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return _Anything()


class _StubFinder:
    """Imports of modules that sampling never touches resolve to permissive stubs when they are not installed."""

    def __init__(self, roots: set[str]) -> None:
        self.roots = roots

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] not in self.roots:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = _stub_attribute  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


# Installed-or-stubbed: what the Impact Pack and ComfyUI import at load time for features outside sampling.
OPTIONAL_IMPORTS = {"segment_anything", "skimage", "cv2", "mmcv", "mmdet", "piexif", "ultralytics", "onnxruntime",
                    "kornia", "spandrel", "av", "comfy_aimdo"}


def _with_legacy_get_sigmas(node: type) -> type:
    """A scheduler node of ComfyUI's V3 API with the V1 `get_sigmas(...)` method that the Impact Pack calls."""

    class Legacy(node):  # type: ignore[valid-type, misc]
        def get_sigmas(self, *args: Any, **kwargs: Any) -> Any:
            return node.execute(*args, **kwargs).result

    return Legacy


def _missing(root: str) -> bool:
    try:
        return importlib.util.find_spec(root) is None
    except (ImportError, ValueError):
        return True


def _git_commit(path: Path) -> str:
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=30, check=False)
        if out.returncode == 0:
            return out.stdout.strip()
    except OSError:
        pass
    marker = path / ".commit"
    return marker.read_text().strip() if marker.exists() else "unknown"


class Upstream:
    """ComfyUI (and optionally the Impact Pack) imported from the user's checkouts, with an analytic model."""

    def __init__(self, comfyui: Path, impact: Path | None, seed_loop: Path | None) -> None:
        self.comfyui, self.impact_dir, self.seed_loop_dir = comfyui, impact, seed_loop
        sys.path.insert(0, str(comfyui))
        stubbed = {root for root in OPTIONAL_IMPORTS if _missing(root)}
        try:
            importlib.import_module("torchvision.transforms")
        except Exception:  # noqa: BLE001 (missing, or built for another torch: sampling never uses it)
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                del sys.modules[name]
            stubbed.add("torchvision")
        sys.meta_path.insert(0, _StubFinder(stubbed))
        import comfy.options

        comfy.options.enable_args_parsing(False) if hasattr(comfy.options, "enable_args_parsing") else None
        import comfy.cli_args

        comfy.cli_args.args.cpu = True
        comfy.cli_args.args.preview_method = comfy.cli_args.LatentPreviewMethod.NoPreviews
        try:
            importlib.import_module("server")
        except ImportError:  # the web server's own dependencies (aiohttp, ...): the nodes only register routes
            server = types.ModuleType("server")
            server.PromptServer = _Anything()  # type: ignore[attr-defined]
            sys.modules["server"] = server
        self.nodes = importlib.import_module("nodes")
        for extra in ("comfy_extras.nodes_align_your_steps", "comfy_extras.nodes_gits", "comfy_extras.nodes_mask"):
            self._register_nodes(extra)
        self.comfy = importlib.import_module("comfy")
        import comfy.latent_formats
        import comfy.model_patcher
        import comfy.model_sampling
        import comfy.samplers
        import comfy.utils

        comfy.utils.PROGRESS_BAR_ENABLED = False
        self.samplers = comfy.samplers
        self.model = self._model_patcher()
        self.positive = [[torch.zeros(1, 1, 8), {}]]
        self.negative = [[torch.zeros(1, 1, 8), {}]]
        self.shifted = [[torch.ones(1, 1, 8), {}]]  # the positive conditioning of cfg != 1 cases (COND_SHIFT)
        self.impact = self._load_impact(impact) if impact is not None else None
        self.commits = {"comfyui": _git_commit(comfyui)}
        if impact is not None:
            self.commits["impact"] = _git_commit(impact)
        if seed_loop is not None:
            self.commits["impact_seed_loop"] = _git_commit(seed_loop)

    def _register_nodes(self, module_name: str) -> None:
        """The extra nodes the Impact Pack looks up in NODE_CLASS_MAPPINGS (schedulers, LatentCompositeMasked);
        ComfyUI registers them at server start, which this harness does not run."""
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return
        if hasattr(module, "NODE_CLASS_MAPPINGS"):
            self.nodes.NODE_CLASS_MAPPINGS.update(module.NODE_CLASS_MAPPINGS)
        elif hasattr(module, "comfy_entrypoint"):
            import asyncio

            extension = asyncio.run(module.comfy_entrypoint())
            for node in asyncio.run(extension.get_node_list()):
                if node.GET_SCHEMA().node_id.endswith("Scheduler") and not hasattr(node, "get_sigmas"):
                    node = _with_legacy_get_sigmas(node)  # newer ComfyUI dropped what the Impact Pack calls
                self.nodes.NODE_CLASS_MAPPINGS[node.GET_SCHEMA().node_id] = node

    def _model_patcher(self) -> Any:
        import comfy.conds
        import comfy.latent_formats
        import comfy.model_patcher
        import comfy.model_sampling

        class Sampling(comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS):
            pass

        class AnalyticModel(torch.nn.Module):
            """What BaseModel offers the samplers, with `apply_model` the exact x0 of Gaussian data."""

            def __init__(self) -> None:
                super().__init__()
                self.model_sampling = Sampling(None)
                self.latent_format = comfy.latent_formats.LatentFormat()
                self.latent_format.latent_channels = LATENT_SHAPE[1]
                self.device = torch.device("cpu")
                self.model_config = types.SimpleNamespace(
                    sampling_settings={}, memory_usage_factor=1.0, custom_operations=None,
                    unet_config={}, latent_format=self.latent_format)
                self.memory_usage_factor = 1.0
                self.manual_cast_dtype = None
                self.current_patcher = None

            def apply_model(self, x: Tensor, t: Tensor, **kwargs: Any) -> Tensor:
                """The positive conditioning of cfg cases carries a 1, which shifts the data mean by COND_SHIFT."""
                x0 = flow_gaussian_x0 if isinstance(self.model_sampling, comfy.model_sampling.CONST) else gaussian_x0
                cond = kwargs.get("c_crossattn")
                if cond is None:
                    return x0(x, t)
                return x0(x, t, COND_SHIFT * cond[:, 0, 0].to(x.dtype).reshape(-1, 1, 1, 1))

            def extra_conds(self, **kwargs: Any) -> dict:
                cross_attn = kwargs.get("cross_attn")
                return {} if cross_attn is None else {"c_crossattn": comfy.conds.CONDCrossAttn(cross_attn)}

            def memory_required(self, input_shape: Any, cond_shapes: Any = None) -> int:
                return 0

            def process_latent_in(self, latent: Tensor) -> Tensor:
                return latent

            def process_latent_out(self, latent: Tensor) -> Tensor:
                return latent

            def scale_latent_inpaint(self, sigma: Tensor, noise: Tensor, latent_image: Tensor, **kwargs: Any) -> Tensor:
                s = sigma.reshape([sigma.shape[0]] + [1] * (noise.ndim - 1))
                return self.model_sampling.noise_scaling(s, noise, latent_image)

            def get_dtype(self) -> torch.dtype:
                return torch.float32

            def extra_conds_shapes(self, **kwargs: Any) -> dict:
                return {}

        model = AnalyticModel()
        cpu = torch.device("cpu")
        return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)

    def _load_impact(self, root: Path) -> Any:
        for name in [m for m in sys.modules if m == "impact" or m.startswith("impact.")]:
            del sys.modules[name]
        modules = str(root / "modules")
        sys.path.insert(0, modules)
        try:
            return importlib.import_module("impact.special_samplers"), importlib.import_module("impact.impact_sampling")
        finally:
            sys.path.remove(modules)

    # -- routes ------------------------------------------------------------------------------------------------

    def latent_dict(self, case: Case) -> dict:
        """The case's latent, or its element `extra["element"]` (a seed list's element run alone)."""
        samples = case.latent()
        element = case.extra.get("element")
        return {"samples": samples if element is None else samples[element : element + 1]}

    def guidance(self, case: Case) -> tuple[float, list, list]:
        """cfg, positive and negative conditioning: at cfg 1 the plain ones (cond == uncond), else the shifted
        positive."""
        return case.cfg, (self.positive if case.cfg == 1 else self.shifted), self.negative

    def ksampler_advanced(self, case: Case) -> Tensor:
        latent = self.latent_dict(case)
        if case.mask is not None:
            latent["noise_mask"] = case.mask_tensor()
        end = case.steps if case.end is None else case.end
        cfg, positive, negative = self.guidance(case)
        out = self.nodes.KSamplerAdvanced().sample(
            self.model, "enable" if case.add_noise else "disable", case.seed, case.steps, cfg, case.sampler,
            case.scheduler, positive, negative, latent, case.start, end,
            "enable" if case.leftover else "disable")[0]
        return out["samples"]

    def ksampler(self, case: Case) -> Tensor:
        latent = self.latent_dict(case)
        if case.mask is not None:
            latent["noise_mask"] = case.mask_tensor()
        cfg, positive, negative = self.guidance(case)
        out = self.nodes.KSampler().sample(self.model, case.seed, case.steps, cfg, case.sampler, case.scheduler,
                                           positive, negative, latent, case.denoise)[0]
        return out["samples"]

    def advanced_wrapper(self, sampler: str, scheduler: str, case: Case | None = None) -> Any:
        """The Impact Pack's KSamplerAdvancedWrapper, with the case's guidance (cfg 1 without a case)."""
        _, impact_sampling = self.impact
        cfg, positive, negative = (1.0, self.positive, self.negative) if case is None else self.guidance(case)
        return impact_sampling.KSamplerAdvancedWrapper(self.model, cfg, sampler, scheduler, positive, negative)

    def impact_advanced(self, case: Case) -> Tensor:
        wrapper = self.advanced_wrapper(case.sampler, case.scheduler, case)
        end = case.steps if case.end is None else case.end
        out = wrapper.sample_advanced("enable" if case.add_noise else "disable", case.seed, case.steps,
                                      self.latent_dict(case), case.start, end,
                                      "enable" if case.leftover else "disable", recovery_mode="DISABLE")
        return out["samples"]

    def two_samplers(self, case: Case) -> Tensor:
        special, impact_sampling = self.impact
        cfg, positive, negative = self.guidance(case)
        base = impact_sampling.KSamplerWrapper(self.model, case.seed, case.steps, cfg, case.sampler, case.scheduler,
                                               positive, negative, case.denoise)
        masked = impact_sampling.KSamplerWrapper(self.model, case.seed, case.steps, cfg, case.mask_sampler,
                                                 case.mask_scheduler, positive, negative, case.denoise)
        return special.TwoSamplersForMask.doit(self.latent_dict(case), base, masked, case.mask_tensor())[0]["samples"]

    def regional(self, case: Case) -> Tensor:
        special, _ = self.impact
        base = self.advanced_wrapper(case.sampler, case.scheduler, case)
        masked = self.advanced_wrapper(case.mask_sampler, case.mask_scheduler, case)
        out = special.TwoAdvancedSamplersForMask.doit(case.seed, case.steps, case.denoise, self.latent_dict(case),
                                                      base, masked, case.mask_tensor(), case.overlap)[0]
        return out["samples"]

    def regional_sampler(self, case: Case) -> Tensor:
        """The Impact Pack's RegionalSampler over `case.regions()` (RegionalPrompt per region)."""
        special, _ = self.impact
        prompts = []
        for name, mask in case.regions():
            sampler = self.advanced_wrapper(name, case.mask_scheduler, case)
            prompts += special.RegionalPrompt().doit(mask=mask, advanced_sampler=sampler)[0]
        o = case.regional_options()
        out = special.RegionalSampler().doit(
            seed=case.seed, seed_2nd=o["seed_2nd"], seed_2nd_mode=o["seed_2nd_mode"], steps=case.steps,
            base_only_steps=o["base_only_steps"], denoise=case.denoise, samples=self.latent_dict(case),
            base_sampler=self.advanced_wrapper(case.sampler, case.scheduler, case), regional_prompts=prompts,
            overlap_factor=case.overlap, restore_latent=o["restore_latent"], additional_mode=o["additional_mode"],
            additional_sampler=o["additional_sampler"], additional_sigma_ratio=o["additional_sigma_ratio"])[0]
        return out["samples"]

    def seed_loop(self, case: Case) -> Tensor:
        impact_pack, core = self._seed_loop_modules()
        cfg, positive, negative = self.guidance(case)
        base = core.KSamplerAdvancedWrapper(self.model, cfg, case.sampler, case.scheduler, positive, negative)
        masked = core.KSamplerAdvancedWrapper(self.model, cfg, case.mask_sampler, case.mask_scheduler, positive,
                                              negative)
        out = impact_pack.TwoAdvancedSamplersForMask().doit(case.seed, case.steps, case.denoise,
                                                            self.latent_dict(case), base, masked,
                                                            case.mask_tensor(), case.overlap)[0]
        return out["samples"]

    def flow_model(self, flow: dict[str, Any]) -> Any:
        """The model with its model sampling patched to a flow one, as ComfyUI's ModelSamplingSD3 and
        ModelSamplingFlux nodes do (`shift` is Flux's mu for `flux`)."""
        import comfy.model_sampling as ms

        base = ms.ModelSamplingDiscreteFlow if flow["kind"] == "sd3" else ms.ModelSamplingFlux

        class FlowSampling(base, ms.CONST):  # type: ignore[valid-type, misc]
            pass

        sampling = FlowSampling(None)
        sampling.set_parameters(shift=flow["shift"])
        model = self.model.clone()
        model.add_object_patch("model_sampling", sampling)
        return model

    _seed_loop_cache: Any = None
    noise_dir: Path | None = None  # ComfyUI_Noise, for the upscaler's noise injection hook

    def upscale(self, case: Case) -> Tensor:
        return parity_upscale.run_upstream(self, case, self.noise_dir)

    def _seed_loop_modules(self) -> Any:
        """The older Impact Pack, imported under its own name after the current one's modules are set aside."""
        if self._seed_loop_cache is None:
            saved = {m: sys.modules.pop(m) for m in list(sys.modules) if m == "impact" or m.startswith("impact.")}
            modules = str(self.seed_loop_dir / "modules")
            sys.path.insert(0, modules)
            try:
                self._seed_loop_cache = (importlib.import_module("impact.impact_pack"),
                                         importlib.import_module("impact.core"))
            finally:
                sys.path.remove(modules)
                for m in [m for m in sys.modules if m == "impact" or m.startswith("impact.")]:
                    del sys.modules[m]
                sys.modules.update(saved)
        return self._seed_loop_cache

    def run(self, case: Case) -> Tensor:
        """The case's tensor; a seed list's elements each run alone with their seed (upstream has no seed lists:
        that is what ours promises for them)."""
        if case.flow is not None:
            plain, self.model = self.model, self.flow_model(case.flow)
            try:
                return self.run(replace(case, extra={k: v for k, v in case.extra.items() if k != "flow"}))
            finally:
                self.model = plain
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seeds = case.extra.get("seeds")
            if not seeds:
                return getattr(self, case.route)(case).float().cpu()
            alone = [replace(case, seed=seed, extra={**case.extra, "seeds": None, "element": b})
                     for b, seed in enumerate(seeds)]
            return torch.cat([getattr(self, c.route)(c).float().cpu() for c in alone])


# --------------------------------------------------------------------------------------------------------------
# Comparison, table, goldens
# --------------------------------------------------------------------------------------------------------------

def compare(ours: Tensor, theirs: Tensor) -> float:
    if ours.shape != theirs.shape:
        return math.inf
    return float((ours.float() - theirs.float()).abs().max())


def status_of(diff: float, case: Case, compat_diff: float | None) -> str:
    """ok within TOLERANCE; a documented deviation names itself and how close `upstream_compat=True` comes."""
    if diff <= TOLERANCE:
        return "ok"
    if case.deviation:
        compat = "" if compat_diff is None else f", upstream_compat diff {compat_diff:.1e}"
        return f"deviation ({case.deviation}{compat})"
    return "DIFF"


# Causes of the differences known when the goldens were last written (first match by case name).
KNOWN_CAUSES = [
    (r"^flow/\w+/(slice|regional)/sa_solver", ("upstream's sa_solver (a125cd84) returns its input from a one-step "
                                                "slice that ends above sigma 0, and the state before its last "
                                                "predictor step from a longer one (under a flow model then divided "
                                                "by 1 - sigma); ours takes the step")),
    (r"^flow/.*res_multistep_ancestral", ("upstream computes the ancestral split in float32: on a flow schedule's "
                                          "step from ~0.4 to ~0.001 `sigma_down = sqrt(s_next^2 - s_up^2)` cancels "
                                          "to rounding noise (upstream's own float64 run matches ours exactly)")),
    (r"^flow/\w+/regional/dpmpp_sde", ("upstream computes dpmpp_sde's ancestral splits in float32: from the moved "
                                        "first sigma (1 - 3e-5) of a one-step slice `sigma_down` cancels (on that "
                                        "step upstream's own float64 run differs from its float32 one by 5e-4, ours "
                                        "by 1e-5); with upstream_compat the rest is its held latent")),
    (r"^flow/.*ddpm", ("upstream's DDPM step computes 1 - 1/(1 + sigma^2) in float32, which cancels at a flow "
                       "schedule's small last sigma (under a soft mask upstream's own float64 run differs from its "
                       "float32 one by 1.5e-4)")),
    (r"^all/(regional|seed)/sa_solver", ("upstream's sa_solver (a125cd84) returns its input from a one-step slice that "
                                         "ends above sigma 0, so its per-step routes never denoise with it; ours "
                                         "takes the step (ComfyUI's fix of Dec 2025)")),
    (r"rounded_one", ("a constant-1 mask resized with aligned corners is 1 - 2^-23 at some pixels: upstream's "
                      "`mask != 1` hands them to the base sampler too; ours counts a value within 1e-6 of 1 as on")),
    (r"^seeds/dpm_adaptive$", ("dpm_adaptive's step-size controller takes the error norm over the whole batch, so a "
                               "seed list's element differs from its run alone (upstream's equivalent)")),
    (r"^slice/sa_solver", ("upstream's sa_solver returns the state before its last predictor step when the slice "
                           "ends above sigma 0 (a one-step leftover slice returns its input)")),
    (r"uni_pc", ("upstream's UniPC runs in float32 and drifts up to ~1e-4 from its own float64 result, which ours "
                 "matches to 1e-13")),
]


def known_cause(name: str) -> str:
    return next((cause for pattern, cause in KNOWN_CAUSES if re.search(pattern, name)), "unexplained")


def write_golden(out_dir: Path, cases: list[Case], tensors: dict[str, Tensor], commits: dict[str, str],
                 diffs: dict[str, float], compat_diffs: dict[str, float]) -> None:
    """`golden.safetensors` (upstream's tensor per case) and `manifest.json` (commits, model, cases, each case's
    difference when written and its tolerance: tests expect `ok` and `deviation` cases to hold and the others to
    fail)."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [c for c in cases if c.name in tensors and c.name in diffs]
    save_file({c.name: tensors[c.name].contiguous() for c in written}, str(out_dir / "golden.safetensors"))
    entries = []
    for c in written:
        diff = diffs[c.name]
        if diff <= TOLERANCE:
            status = "ok"
        elif c.deviation and compat_diffs.get(c.name, math.inf) <= TOLERANCE:
            status = "deviation"
        else:
            status = "known_difference"
        entry = {**asdict(c), "status": status, "max_abs_diff": float(f"{diff:.3e}")}
        if status == "known_difference":
            cause = known_cause(c.name)
            entry["cause"] = DEVIATIONS[c.deviation] if c.deviation and cause == "unexplained" else cause
        entries.append(entry)
    manifest = {
        "upstream": commits,
        "model": {"kind": "gaussian per channel", "mu": MU, "std": STD, "latent_shape": LATENT_SHAPE,
                  "image_scale": IMAGE_SCALE},
        "tolerance": TOLERANCE,
        "written_by": "scripts/upstream_parity.py --write-golden",
        "cases": entries,
    }
    write_manifest(out_dir / "manifest.json", manifest)
    parity_tolerance.assign(out_dir / "manifest.json")


def write_manifest(path: Path, manifest: dict) -> None:
    """The manifest as JSON with one line per case (diffs stay readable)."""
    head = json.dumps({k: v for k, v in manifest.items() if k != "cases"}, indent=1)[:-2]
    lines = ",\n  ".join(json.dumps(entry) for entry in manifest["cases"])
    path.write_text(f'{head},\n "cases": [\n  {lines}\n ]\n}}\n')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", type=Path, required=True, help="a ComfyUI checkout (outside this repo)")
    parser.add_argument("--impact", type=Path, help="an Impact Pack checkout (TwoSamplersForMask, regional route)")
    parser.add_argument("--impact-seed-loop", type=Path, help="an Impact Pack checkout with the per-step loop")
    parser.add_argument("--comfyui-noise", type=Path, help="a ComfyUI_Noise checkout (the upscaler's noise hook)")
    parser.add_argument("--only", default=None, help="run only cases whose name matches this regex")
    parser.add_argument("--write-golden", type=Path, default=None, help="write golden tensors and manifest here")
    args = parser.parse_args(argv)

    upstream = Upstream(args.comfyui.resolve(), args.impact and args.impact.resolve(),
                        args.impact_seed_loop and args.impact_seed_loop.resolve())
    from dualsampler.sampling import SAMPLERS, SCHEDULERS

    theirs_samplers = set(upstream.samplers.KSampler.SAMPLERS)
    theirs_schedulers = set(upstream.samplers.KSampler.SCHEDULERS)
    samplers = [s for s in SAMPLERS if s in theirs_samplers]
    schedulers = [s for s in SCHEDULERS if s in theirs_schedulers]
    impact_schedulers = [s for s in SCHEDULERS if s not in theirs_schedulers] if upstream.impact else []
    cases = build_cases(samplers, schedulers, impact_schedulers, args.impact_seed_loop is not None)
    if upstream.impact:
        upstream.noise_dir = args.comfyui_noise and args.comfyui_noise.resolve()
        cases += parity_upscale.build_cases(Case, samplers, parity_upscale.has_noise_nodes(upstream.noise_dir))
        if parity_upscale.has_noise_nodes(upstream.noise_dir):
            upstream.commits["comfyui_noise"] = _git_commit(upstream.noise_dir)
    if upstream.impact is None:
        cases = [c for c in cases if c.route in ("ksampler_advanced", "ksampler", "seed_loop")]
    if args.only:
        cases = [c for c in cases if re.search(args.only, c.name)]

    rows, tensors, compat_diffs = [], {}, {}
    for case in cases:
        try:
            theirs = upstream.run(case)
        except Exception as error:  # noqa: BLE001 - one case failing upstream must not hide the others
            rows.append((case.name, math.nan, f"upstream error: {type(error).__name__}: {error}"[:120]))
            continue
        tensors[case.name] = theirs
        try:
            with torch.no_grad():
                ours = run_ours(case)
        except Exception as error:  # noqa: BLE001
            rows.append((case.name, math.nan, f"ours error: {type(error).__name__}: {error}"[:120]))
            continue
        diff = compare(ours, theirs)
        compat_diff = None
        if diff > TOLERANCE and case.deviation:
            with torch.no_grad():
                compat_diff = compat_diffs[case.name] = compare(run_ours(case, upstream_compat=True), theirs)
        status = status_of(diff, case, compat_diff)
        rows.append((case.name, diff, status if status != "DIFF" else f"DIFF ({known_cause(case.name)})"))

    width = max((len(r[0]) for r in rows), default=10)
    print(f"{'case':<{width}}  {'max abs diff':>12}  status")
    for name, diff, status in rows:
        print(f"{name:<{width}}  {diff:>12.3e}  {status}")
    compared = [r for r in rows if not math.isnan(r[1])]
    beyond = [r for r in compared if r[1] > TOLERANCE]
    deviations = [r for r in beyond if r[2].startswith("deviation")]
    unexplained = [r for r in beyond if r[2] == "DIFF (unexplained)"]
    errors = len(rows) - len(compared)
    worst = max((r[1] for r in compared), default=0.0)
    print(f"summary: {len(compared)} cases compared, max diff {worst:.3e}, {len(beyond)} beyond {TOLERANCE:g} "
          f"({len(deviations)} documented deviations, {len(beyond) - len(deviations) - len(unexplained)} known "
          f"differences, {len(unexplained)} unexplained), {errors} errors; upstream {upstream.commits}")
    if args.write_golden is not None:
        write_golden(args.write_golden, cases, tensors, upstream.commits, {r[0]: r[1] for r in compared},
                     compat_diffs)
        print(f"wrote {len(tensors)} golden tensors to {args.write_golden}")
    return 1 if unexplained or errors else 0


if __name__ == "__main__":
    sys.exit(main())

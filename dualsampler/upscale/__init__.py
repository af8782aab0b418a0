"""Iterative two-sampler upscaling (SPEC §8): scale methods, upscale models, (tiled) VAE codec, hooks, upscaler."""

from dualsampler.upscale.hooks import (
    CfgScheduleHook,
    CombinedHook,
    DenoiseScheduleHook,
    NoiseInjectionHook,
    StepsScheduleHook,
    UpscaleHook,
)
from dualsampler.upscale.iterative import iterative_upscale, iterative_upscale_image
from dualsampler.upscale.sampler_spec import UpscaleSampler
from dualsampler.upscale.scale_methods import SCALE_METHODS, resize_images
from dualsampler.upscale.schedules import FULL_SAMPLE_SCHEDULES, full_sample_iterations, is_full_sample_time
from dualsampler.upscale.step_plan import STEP_MODES, upscale_plan
from dualsampler.upscale.two_samplers_upscaler import TwoSamplersForMaskUpscaler
from dualsampler.upscale.upscale_models import apply_upscale_model, load_upscale_model, upscale_with_model
from dualsampler.upscale.vae_codec import vae_decode, vae_encode

__all__ = [
    "FULL_SAMPLE_SCHEDULES",
    "SCALE_METHODS",
    "STEP_MODES",
    "CfgScheduleHook",
    "CombinedHook",
    "DenoiseScheduleHook",
    "NoiseInjectionHook",
    "StepsScheduleHook",
    "TwoSamplersForMaskUpscaler",
    "UpscaleHook",
    "UpscaleSampler",
    "apply_upscale_model",
    "full_sample_iterations",
    "is_full_sample_time",
    "iterative_upscale",
    "iterative_upscale_image",
    "load_upscale_model",
    "resize_images",
    "upscale_plan",
    "upscale_with_model",
    "vae_decode",
    "vae_encode",
]

"""The sigma-space sampling core: model sampling, schedules, samplers, guided denoisers over a network's backbone,
KSampler calls."""

from .backbone import Backbone, UNetBackbone
from .conditioning import Conditioning
from .flow_sampling import FlowModelSampling, FluxModelSampling
from .ksampler import KSampler, denoise_to_steps
from .model_sampling import ModelSampling
from .noise import NoiseStream
from .noise_mask import MaskedDenoiser, latent_noise_mask
from .sample import sample
from .samplers import SAMPLERS, STOCHASTIC_SAMPLERS, Denoiser
from .schedules import SCHEDULERS, get_sigmas
from .unet_denoiser import JointDenoiser, ModelDenoiser, UNetDenoiser, denoise_together

__all__ = [
    "Backbone",
    "Conditioning",
    "ModelDenoiser",
    "UNetBackbone",
    "FlowModelSampling",
    "FluxModelSampling",
    "KSampler",
    "ModelSampling",
    "NoiseStream",
    "JointDenoiser",
    "MaskedDenoiser",
    "SAMPLERS",
    "SCHEDULERS",
    "STOCHASTIC_SAMPLERS",
    "Denoiser",
    "UNetDenoiser",
    "denoise_to_steps",
    "denoise_together",
    "get_sigmas",
    "latent_noise_mask",
    "sample",
]

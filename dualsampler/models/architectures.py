"""The tiny world's architectures, in one place for the training scripts and random-weight test worlds."""
from __future__ import annotations

from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from .judge import Judge
from .prompt_encoder import PromptEncoder
from .upscaler import Upscaler2x

PROMPT_DIM = 64

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(16, 32, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64,
    mid_block_add_attention=False,
)

UNET_CONFIG = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    layers_per_block=1,
    cross_attention_dim=PROMPT_DIM,
    attention_head_dim=8,
    norm_num_groups=16,
)

SCHEDULER_CONFIG = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
)


def build_vae(scaling_factor: float = 1.0) -> AutoencoderKL:
    """Untrained tiny AutoencoderKL (4 latent channels, 4x down-sampling)."""
    return AutoencoderKL(**VAE_CONFIG, scaling_factor=scaling_factor)


def build_unet() -> UNet2DConditionModel:
    """Untrained tiny UNet2DConditionModel conditioned on PromptEncoder states [B, 2, 64]."""
    return UNet2DConditionModel(**UNET_CONFIG)


def build_prompt_encoder() -> PromptEncoder:
    """Untrained PromptEncoder over the world vocabulary."""
    return PromptEncoder(dim=PROMPT_DIM)


def build_judge() -> Judge:
    """Untrained Judge over the world vocabulary."""
    return Judge()


def build_upscaler() -> Upscaler2x:
    """Untrained Upscaler2x."""
    return Upscaler2x()


def build_scheduler() -> DDPMScheduler:
    """DDPMScheduler with Stable Diffusion's betas (scaled_linear 0.00085..0.012, 1000 steps, eps)."""
    return DDPMScheduler(**SCHEDULER_CONFIG)

"""Models behind every config: the embedded tiny world, diffusers Stable Diffusion folders and single checkpoint
files, one interface (`load_model`, SPEC §9), and `ModelSource`, the model a config names."""
from .codec import decode_latents, encode_images
from .judge import Judge
from .loader import load_model
from .prompt_encoder import PromptEncoder
from .source import ModelSource
from .stable_diffusion import StableDiffusion
from .upscaler import Upscaler2x
from .world import (
    WEIGHTS_DIR,
    World,
    load_world,
    random_world,
    weights_fingerprint,
    world_folders,
)

__all__ = [
    "WEIGHTS_DIR",
    "Judge",
    "ModelSource",
    "PromptEncoder",
    "StableDiffusion",
    "Upscaler2x",
    "World",
    "decode_latents",
    "encode_images",
    "load_model",
    "load_world",
    "random_world",
    "weights_fingerprint",
    "world_folders",
]

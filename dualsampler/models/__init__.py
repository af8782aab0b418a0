"""Models behind every config: the embedded tiny world, diffusers folders of every family (Stable Diffusion 1.x,
2.x, XL, SD3, Flux) and single checkpoint files, one interface (`Model`, `load_model`, SPEC §9), LoRAs
(`LoraSpec`), and `ModelSource`, the model a config names."""
from .codec import decode_latents, encode_images
from .interface import Model
from .judge import Judge
from .loader import load_model
from .lora import LoraSpec
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
    "LoraSpec",
    "Model",
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

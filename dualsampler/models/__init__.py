"""Models of the embedded tiny world and the loader shared with real diffusers folders."""
from .judge import Judge
from .prompt_encoder import PromptEncoder
from .upscaler import Upscaler2x
from .world import WEIGHTS_DIR, World, load_world, random_world, weights_fingerprint, world_folders

__all__ = ["Judge", "PromptEncoder", "Upscaler2x", "World", "WEIGHTS_DIR", "load_world", "random_world", "weights_fingerprint", "world_folders"]

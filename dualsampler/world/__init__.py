"""The embedded tiny world: a vocabulary of prompts and deterministic procedural textures."""
from .composites import random_region_mask, render_composite, render_regions
from .prompts import COLORS, PATTERNS, PROMPTS, parse_prompt, split_prompt
from .textures import render_texture

__all__ = ["COLORS", "PATTERNS", "PROMPTS", "parse_prompt", "split_prompt", "render_texture", "render_composite", "render_regions",
           "random_region_mask"]

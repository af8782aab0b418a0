"""Deterministic procedural RGB textures: a prompt's pattern painted in its color over a dark ground.

Every pattern is stationary (a periodic or random field with a seeded orientation, scale and
phase), so any crop of a large canvas looks like a small canvas. Edges are anti-aliased over
about one pixel: coverage = clamp(0.5 + signed_distance / EDGE, 0, 1).
"""
from __future__ import annotations

import math

import torch

from .prompts import parse_prompt

EDGE = 1.2
RGB: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "orange": (0.98, 0.52, 0.05),
    "yellow": (0.95, 0.90, 0.15),
    "green": (0.12, 0.72, 0.22),
    "blue": (0.12, 0.28, 0.92),
    "purple": (0.58, 0.18, 0.78),
}
GROUND = (0.10, 0.10, 0.12)


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def _coverage(signed_distance: torch.Tensor) -> torch.Tensor:
    return (0.5 + signed_distance / EDGE).clamp(0.0, 1.0)


def _wrap(u: torch.Tensor, period: float) -> torch.Tensor:
    """Signed offset of u from the nearest multiple of `period`, in [-period/2, period/2)."""
    return torch.remainder(u + period / 2, period) - period / 2


def _rotated_grid(height: int, width: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    angle = _uniform(gen, 0.0, math.pi)
    oy, ox = _uniform(gen, 0, 1000), _uniform(gen, 0, 1000)
    y = torch.arange(height, dtype=torch.float32).view(-1, 1) + oy
    x = torch.arange(width, dtype=torch.float32).view(1, -1) + ox
    c, s = math.cos(angle), math.sin(angle)
    return x * c + y * s, -x * s + y * c


def _stripes(u: torch.Tensor, v: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    period = _uniform(gen, 10.0, 20.0)
    half_width = period * _uniform(gen, 0.22, 0.3)
    return _coverage(half_width - _wrap(u, period).abs())


def _waves(u: torch.Tensor, v: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    period = _uniform(gen, 10.0, 18.0)
    wavelength = _uniform(gen, 22.0, 40.0)
    amplitude = period * _uniform(gen, 0.35, 0.6)
    bent = u + amplitude * torch.sin(2 * math.pi * v / wavelength)
    slope = 1 + (2 * math.pi * amplitude / wavelength) ** 2
    half_width = period * _uniform(gen, 0.22, 0.3)
    return _coverage((half_width - _wrap(bent, period).abs()) / math.sqrt(slope))


def _dots(u: torch.Tensor, v: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    period = _uniform(gen, 12.0, 22.0)
    radius = period * _uniform(gen, 0.24, 0.34)
    return _coverage(radius - torch.hypot(_wrap(u, period), _wrap(v, period)))


def _checker(u: torch.Tensor, v: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    period = _uniform(gen, 14.0, 26.0)
    a = (period / 4 - _wrap(u, period).abs()).div(EDGE / 2).clamp(-1, 1)
    b = (period / 4 - _wrap(v, period).abs()).div(EDGE / 2).clamp(-1, 1)
    return 0.5 + 0.5 * a * b


def _grid(u: torch.Tensor, v: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    period = _uniform(gen, 12.0, 22.0)
    half_width = _uniform(gen, 1.0, 1.6)
    distance = torch.minimum(_wrap(u, period).abs(), _wrap(v, period).abs())
    return _coverage(half_width - distance)


def _blobs(u: torch.Tensor, v: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    height, width = u.shape
    scale = _uniform(gen, 3.0, 4.5)
    noise = torch.randn(height + 32, width + 32, generator=gen)
    fy = torch.fft.fftfreq(height + 32).view(-1, 1)
    fx = torch.fft.rfftfreq(width + 32).view(1, -1)
    kernel = torch.exp(-2 * (math.pi * scale) ** 2 * (fy**2 + fx**2))
    field = torch.fft.irfft2(torch.fft.rfft2(noise) * kernel, s=noise.shape)[16:-16, 16:-16]
    field = field / (field.std() + 1e-8)
    gy, gx = torch.gradient(field)
    return _coverage(field / (torch.hypot(gy, gx) + 0.05))


PATTERN_FUNCTIONS = {
    "stripes": _stripes,
    "dots": _dots,
    "checker": _checker,
    "waves": _waves,
    "grid": _grid,
    "blobs": _blobs,
}


def render_texture(prompt: str, height: int, width: int, seed: int) -> torch.Tensor:
    """Texture of `prompt` ("<color> <pattern>") -> Tensor[3, height, width] in [0, 1].

    image = ground * (1 - coverage) + color * coverage, with the color and ground jittered by
    at most 0.04 per channel and the pattern's orientation, scale and phase drawn from `seed`.
    """
    color, pattern = parse_prompt(prompt)
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    gen = torch.Generator().manual_seed(int(seed))
    jitter = (torch.rand(2, 3, generator=gen) - 0.5) * 0.08
    fg = (torch.tensor(RGB[color]) + jitter[0]).clamp(0, 1).view(3, 1, 1)
    bg = (torch.tensor(GROUND) + jitter[1]).clamp(0, 1).view(3, 1, 1)
    u, v = _rotated_grid(height, width, gen)
    coverage = PATTERN_FUNCTIONS[pattern](u, v, gen).unsqueeze(0)
    return bg * (1 - coverage) + fg * coverage

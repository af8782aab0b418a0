"""VAE decode/encode between latents and images `[B, 3, H, W]` in `[0, 1]`, plain (the models' one codec,
`dualsampler.models.codec`) or tiled with tiles of `tile_size` pixels (the same scaling and shift per tile).

Tiling uses `tiling.tiled_apply` rather than diffusers' `AutoencoderKL.enable_tiling()`: diffusers' tiler is
configured by mutating the shared model (`tile_sample_min_size`, `tile_latent_min_size`), and its `int()`
arithmetic misplaces tiles unless the tile is a multiple of 4x the VAE factor (tile 68 px on a 4x VAE decodes a
40x40 latent to 169x169 pixels instead of 160x160), while `tile_size` here may be any multiple of the factor.
"""

from __future__ import annotations

import torch

from dualsampler.models.codec import decode_latents, encode_images, vae_scaling
from dualsampler.validation import MAX_TILE_SIZE, check_int
from dualsampler.upscale.tiling import tiled_apply

MIN_TILE_SIZE = 64


def vae_factor(vae) -> int:
    """Pixels per latent cell of a diffusers AutoencoderKL: `2 ** (len(block_out_channels) - 1)`."""
    blocks = getattr(getattr(vae, "config", None), "block_out_channels", None)
    if not blocks:
        raise ValueError(f"vae must be a diffusers AutoencoderKL, got {type(vae).__name__}")
    return 2 ** (len(blocks) - 1)


def check_tile_size(tile_size: int, factor: int) -> None:
    """Raise ValueError unless `tile_size` is an integer in [64, MAX_TILE_SIZE] and a multiple of the VAE factor."""
    try:
        size = check_int(tile_size, "tile_size", MIN_TILE_SIZE, MAX_TILE_SIZE)
    except ValueError:
        size = None
    if size is None or size % factor:
        raise ValueError(f"tile_size must be an integer >= {MIN_TILE_SIZE} and a multiple of the VAE factor {factor}, "
                         f"at most {MAX_TILE_SIZE} px (memory); got {tile_size!r}")


def tile_overlap(tile_size: int, factor: int) -> int:
    """Overlap between neighbouring pixel tiles: a quarter tile, rounded down to a multiple of `factor`."""
    return max(tile_size // 4 // factor, 1) * factor


def _param(vae) -> torch.Tensor:
    return next(vae.parameters())


def vae_decode(vae, latents: torch.Tensor, tile_size: int | None = None) -> torch.Tensor:
    """Images `clamp((decoder(z / s + shift) + 1) / 2, 0, 1)`; tiled over `tile_size // factor` latent cells."""
    factor = vae_factor(vae)
    if tile_size is not None:
        check_tile_size(tile_size, factor)
    if tile_size is None:
        return decode_latents(vae, latents).to(latents.dtype)
    scaling, shift = vae_scaling(vae)
    p = _param(vae)
    z = latents.to(device=p.device, dtype=p.dtype) / scaling + shift

    def decode(tile: torch.Tensor) -> torch.Tensor:
        return vae.decode(tile).sample

    with torch.no_grad():
        images = tiled_apply(decode, z, tile_size // factor, tile_overlap(tile_size, factor) // factor, factor)
    return ((images + 1) / 2).clamp(0, 1).to(latents.dtype)


def vae_encode(vae, images: torch.Tensor, tile_size: int | None = None) -> torch.Tensor:
    """Latents `(mode(encoder(2 * images - 1)) - shift) * s`; tiled over `tile_size` pixel tiles.

    Height and width must be multiples of the VAE factor. The posterior's mode is used, so encoding is
    deterministic.
    """
    factor = vae_factor(vae)
    if tile_size is not None:
        check_tile_size(tile_size, factor)
    if images.shape[-2] % factor or images.shape[-1] % factor:
        raise ValueError(f"image height and width must be multiples of the VAE factor {factor}; got {tuple(images.shape)}")
    if tile_size is None:
        return encode_images(vae, images).to(images.dtype)
    scaling, shift = vae_scaling(vae)
    p = _param(vae)
    x = images.to(device=p.device, dtype=p.dtype) * 2 - 1

    def encode(tile: torch.Tensor) -> torch.Tensor:
        return vae.encode(tile).latent_dist.mode()

    with torch.no_grad():
        z = tiled_apply(encode, x, tile_size, tile_overlap(tile_size, factor), 1 / factor)
    return ((z - shift) * scaling).to(images.dtype)

"""Apply a spatial map to overlapping tiles and blend the results with linear ramps."""

from __future__ import annotations

from typing import Callable

import torch


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile offsets `0, stride, 2*stride, ...` plus `length - tile` so the tiles cover `[0, length)`."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def _ramp(size: int, ramp: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """Weights 1 inside, rising as `(j + 1) / (ramp + 1)` over `ramp` samples on each side that meets a neighbour."""
    weights = torch.ones(size, dtype=torch.float64)
    ramp = min(ramp, size // 2)
    rise = torch.arange(1, ramp + 1, dtype=torch.float64) / (ramp + 1)
    if ramp and not at_start:
        weights[:ramp] = rise
    if ramp and not at_end:
        weights[size - ramp :] = rise.flip(0)
    return weights


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    scale: int | float,
) -> torch.Tensor:
    """`fn` over `tile x tile` windows of `x[B, C, H, W]` that overlap by `overlap`, blended into one output.

    `fn` maps a window of size `(h, w)` to `(h * scale, w * scale)`; output pixel `p` is
    `sum_t w_t(p) * fn(x_t)(p) / sum_t w_t(p)`, with `w_t` the product of two linear ramps over the
    `overlap * scale` samples where tile `t` meets a neighbour (and 1 at the image border).
    """
    if overlap >= tile:
        raise ValueError(f"overlap must be < tile; got overlap={overlap}, tile={tile}")
    height, width = x.shape[-2:]
    ys = tile_starts(height, tile, tile - overlap)
    xs = tile_starts(width, tile, tile - overlap)
    if len(ys) == 1 and len(xs) == 1:
        return fn(x)
    out_h, out_w = round(height * scale), round(width * scale)
    ramp = round(overlap * scale)
    out = weight = None
    for y0 in ys:
        for x0 in xs:
            piece = fn(x[..., y0 : y0 + tile, x0 : x0 + tile])
            if out is None:
                out = torch.zeros(*piece.shape[:-2], out_h, out_w, dtype=piece.dtype, device=piece.device)
                weight = torch.zeros(out_h, out_w, dtype=piece.dtype, device=piece.device)
            ph, pw = piece.shape[-2:]
            oy, ox = round(y0 * scale), round(x0 * scale)
            wy = _ramp(ph, ramp, y0 == 0, y0 + tile >= height)
            wx = _ramp(pw, ramp, x0 == 0, x0 + tile >= width)
            w = (wy[:, None] * wx[None, :]).to(piece)
            out[..., oy : oy + ph, ox : ox + pw] += piece * w
            weight[oy : oy + ph, ox : ox + pw] += w
    return out / weight

"""Background preservation: how much of an input image a job kept where nothing was to change (`keep` = 1, outside
every region's grown mask). `background/psnr` (dB), `background/ssim`, `background/lpips`, per image."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .bands import erode
from .inputs import check_images, prepare_masks

PSNR_CAP_DB = 100.0  # dB: identical kept pixels (MSE 0, PSNR infinite) read 100 dB, which JSON can hold
SSIM_KERNEL = 11  # torchmetrics' default Gaussian window (sigma 1.5): the SSIM map at a pixel reads 5 px around it
SSIM_HALF = SSIM_KERNEL // 2
BACKGROUND_KEYS = ("background/psnr", "background/ssim", "background/lpips")
NO_INPUT = "the job starts from noise (no input image)"


def shrink(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Images [B,C,H,W] brought down to `size` (h, w) <= (H, W): area averaging for integer factors, antialiased
    bilinear otherwise; unchanged at that size. ValueError when an image is smaller than `size`."""
    height, width = images.shape[-2:]
    if (height, width) == tuple(size):
        return images
    if height < size[0] or width < size[1]:
        raise ValueError(f"images of {height}x{width} px are smaller than the size {size[0]}x{size[1]} they are to "
                         f"be brought down to")
    if height % size[0] == 0 and width % size[1] == 0:
        return F.interpolate(images, size=tuple(size), mode="area")
    return F.interpolate(images, size=tuple(size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def check_background(images: Tensor, inputs: Tensor, keep: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(images at the inputs' size, inputs, keep as a binary [B,1,H,W]) after checking them: inputs [B,3,H,W] in
    [0,1], the images' batch, at most the images' size; keep [H,W] (or [B|1,1,H,W]) in [0,1] at the inputs' size
    or an integer fraction of it."""
    check_images(images)
    check_images(inputs, "inputs")
    if inputs.shape[0] != images.shape[0]:
        raise ValueError(f"inputs must hold one input image per image ({images.shape[0]}), got {inputs.shape[0]}")
    try:
        images = shrink(images, inputs.shape[-2:])
    except ValueError:
        raise ValueError(f"inputs must be at most the images' size {images.shape[-2]}x{images.shape[-1]}, got "
                         f"{inputs.shape[-2]}x{inputs.shape[-1]}") from None
    try:
        keep = prepare_masks(keep, inputs)
    except ValueError as error:  # prepare_masks names its argument `masks`
        raise ValueError("keep " + str(error).removeprefix("masks ")) from None
    return images, inputs.to(images.device), keep


def masked_psnr(images: Tensor, inputs: Tensor, keep: Tensor) -> Tensor:
    """Per image, 10 log10(1 / MSE) over the kept pixels (every channel), data range 1, capped at PSNR_CAP_DB ->
    float64 [B]; NaN where nothing is kept."""
    values = []
    for image, source, kept in zip(images.double(), inputs.double(), keep[:, 0] > 0.5):
        if not kept.any():
            values.append(torch.tensor(math.nan, dtype=torch.float64))
            continue
        psnr = peak_signal_noise_ratio(image[:, kept], source[:, kept], data_range=1.0)
        values.append(psnr.clamp(max=PSNR_CAP_DB).cpu())
    return torch.stack(values)


def masked_ssim(images: Tensor, inputs: Tensor, keep: Tensor) -> Tensor:
    """Per image, the mean of the SSIM map (torchmetrics, 11 px Gaussian window, every channel) over the kept
    pixels eroded by the window's half-size (a window there sees kept pixels only) -> float64 [B]; NaN where
    none is left."""
    _, full = structural_similarity_index_measure(images.double(), inputs.double(), data_range=1.0,
                                                  kernel_size=SSIM_KERNEL, return_full_image=True)
    inner = erode(keep.double(), SSIM_HALF)
    count = inner.sum(dim=(1, 2, 3)) * full.shape[1]
    total = (full * inner).sum(dim=(1, 2, 3))
    return torch.where(count > 0, total / count.clamp(min=1), math.nan).cpu()


def kept_composite(images: Tensor, inputs: Tensor, keep: Tensor) -> Tensor:
    """The images where `keep` is 1, the inputs elsewhere: a whole-image distance to the inputs then sees only the
    kept pixels' changes (how `background/lpips` is measured)."""
    return keep * images + (1 - keep) * inputs


def masked_lpips(lpips: torch.nn.Module, images: Tensor, inputs: Tensor, keep: Tensor) -> Tensor:
    """Per image, `lpips(composite, input)` of `kept_composite` (LPIPS, images in [0,1]) -> float64 [B]; NaN where
    nothing is kept."""
    composite = kept_composite(images, inputs, keep)
    values = [float(lpips(composite[k:k + 1], inputs[k:k + 1])) if keep[k].any() else math.nan
              for k in range(images.shape[0])]
    return torch.tensor(values, dtype=torch.float64)

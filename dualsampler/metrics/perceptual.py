"""Perceptual distance between images and references: `lpips/<net>` (torchmetrics) or `perceptual/judge`.

`perceptual/judge` is LPIPS-style but not LPIPS: unweighted, on the judge's feature layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric

from dualsampler.metrics.features import frozen
from dualsampler.metrics.inputs import check_images, check_pair

PERCEPTUAL = ("auto", "judge", "lpips/alex", "lpips/vgg", "lpips/squeeze")  # what `perceptual_metric` takes
from dualsampler.metrics.optional import lpips_available, lpips_weights


def layer_mean(distances: list[Tensor], weight: Tensor | None = None) -> Tensor:
    """sum_l (weighted) spatial mean of d_l [B,1,h_l,w_l] -> [B]; `weight` [B,1,H,W] is resized to layer l by area."""
    total = distances[0].new_zeros(distances[0].shape[0])
    for d in distances:
        if weight is None:
            total = total + d.mean(dim=(1, 2, 3))
        else:
            w = F.interpolate(weight, size=d.shape[-2:], mode="area")
            total = total + (d * w).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3)).clamp(min=1e-12)
    return total


class JudgePerceptualDistance(Metric):
    """perceptual/judge: mean over images of d(x, r) = sum_l mean_{h,w} sum_c (f_l(x)/|f_l(x)| - f_l(r)/|f_l(r)|)^2.

    f_l = judge.feature_maps(.)[l], normalised to unit length over channels at every position.
    0 for identical images; larger is more different. update(images, references), both [B,3,H,W] in [0,1].
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, judge: nn.Module, **kwargs) -> None:
        super().__init__(**kwargs)
        self.judge = frozen(judge)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, images: Tensor, references: Tensor) -> None:
        """Add the per-image distances of a batch."""
        value = judge_distances(self.judge, images, references)
        self.total += value.double().sum()
        self.count += value.shape[0]

    def compute(self) -> Tensor:
        """Mean distance over all images seen (0 before any update)."""
        return (self.total / self.count.clamp(min=1)).float()


def judge_distances(judge: nn.Module, images: Tensor, references: Tensor) -> Tensor:
    """Per image, `perceptual/judge` d(x, r) (JudgePerceptualDistance) -> float32 [B]."""
    check_pair(check_images(images), references)
    return layer_mean(frozen(judge).distance_maps(images, references))


def lpips_distances(lpips: Metric, images: Tensor, references: Tensor) -> Tensor:
    """Per image, the LPIPS of a torchmetrics LPIPS metric (`lpips_metric`, images in [0,1]) -> float32 [B]."""
    check_pair(check_images(images), references)
    with torch.no_grad():
        return lpips.net(images, references, normalize=True).reshape(images.shape[0]).float()


def lpips_metric(net: str = "alex") -> Metric:
    """torchmetrics LPIPS, `net` in alex|vgg|squeeze, images in [0,1]; needs torchvision and its local weights."""
    lpips_weights(net)
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)


def perceptual_metric(name: str = "auto", judge: nn.Module | None = None) -> tuple[str, Metric]:
    """(key, metric) for `name`: 'judge', 'lpips/<net>' or 'auto' (lpips/alex when available, else 'judge')."""
    if name == "auto":
        name = "lpips/alex" if lpips_available("alex") else "judge"
    if name.startswith("lpips/"):
        return name, lpips_metric(name.split("/", 1)[1])
    if name != "judge":
        raise ValueError(f"perceptual must be 'auto', 'judge' or 'lpips/<alex|vgg|squeeze>', got {name!r}")
    if judge is None:
        raise ValueError("judge must be given for perceptual/judge")
    return "perceptual/judge", JudgePerceptualDistance(judge)

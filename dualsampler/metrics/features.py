"""Feature spaces for the metrics: the judge's features (default) and the optional torchvision-based ones.

torchvision, torch-fidelity and their weights are optional (extra `vision`): they are imported
lazily, and a missing piece raises an ImportError or FileNotFoundError naming what to install or
where the weights file must be. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VISION_HINT = "pip install 'dualsampler[vision]'"
LPIPS_NETS = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}


def require(package: str, purpose: str) -> ModuleType:
    """Import `package` or raise ImportError naming it, what needs it and the install command."""
    try:
        return importlib.import_module(package)
    except Exception as error:  # torchvision can fail with errors other than ImportError on a mismatched torch
        raise ImportError(f"{purpose} needs the package '{package}', which does not import here ({error}); "
                          f"install it with: {VISION_HINT}") from error


def hub_checkpoint(url: str) -> str:
    """The path where torch.hub keeps the weights file of `url` (it may not exist)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def inception_weights(weights_path: str | None = None) -> str:
    """Path of local torch-fidelity InceptionV3 weights; ImportError / FileNotFoundError naming what is missing."""
    require("torchvision", "fid/inception and kid/inception")
    require("torch_fidelity", "fid/inception and kid/inception")
    extractor = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    path = weights_path or hub_checkpoint(extractor.URL_INCEPTION_V3)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"fid/inception needs the torch-fidelity InceptionV3 weights at {path} "
                                "(no downloads at run time: copy the file there or pass its path)")
    return path


def lpips_weights(net: str) -> str:
    """Path of the local torchvision backbone weights for `lpips/<net>`; ImportError / FileNotFoundError otherwise."""
    if net not in LPIPS_NETS:
        raise ValueError(f"lpips net must be one of {sorted(LPIPS_NETS)}, got {net!r}")
    torchvision = require("torchvision", f"lpips/{net}")
    path = hub_checkpoint(getattr(torchvision.models, LPIPS_NETS[net]).DEFAULT.url)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"lpips/{net} needs the torchvision weights at {path} "
                                "(no downloads at run time: copy the file there)")
    return path


def lpips_available(net: str = "alex") -> bool:
    """True when torchvision imports and the `net` backbone weights are on disk (so `lpips/<net>` runs offline)."""
    try:
        lpips_weights(net)
    except (ImportError, FileNotFoundError):
        return False
    return True


class FrozenJudge(nn.Module):
    """A judge that stays in eval mode and runs without gradients, so a batch's results do not depend on the batch.

    Inputs go in channels-last (about 2x faster convolutions on CPU). Inside `with frozen.reuse():`,
    results are kept per input tensor object, so metrics updated on the same batch share one pass.
    """

    def __init__(self, judge: nn.Module) -> None:
        super().__init__()
        self.judge = judge.eval()
        self._kept: dict[tuple[str, int], tuple[Tensor, object]] | None = None

    def train(self, mode: bool = True) -> FrozenJudge:
        """Stay in eval mode whatever is asked."""
        return super().train(False)

    @contextmanager
    def reuse(self) -> Iterator[None]:
        """Within the block, a call repeated on the same tensor object returns the first call's result."""
        self._kept = {}
        try:
            yield
        finally:
            self._kept = None

    def _reused(self, name: str, compute: Callable[..., object], *inputs: Tensor) -> object:
        key = (name, *map(id, inputs))
        if self._kept is not None and key in self._kept:
            return self._kept[key][1]
        with torch.no_grad():
            result = compute(*inputs)
        if self._kept is not None:
            self._kept[key] = (inputs, result)  # holding the inputs keeps their ids from being reused
        return result

    def _judge(self, method: str, images: Tensor) -> object:
        return self._reused(method, lambda x: getattr(self.judge, method)(x.contiguous(memory_format=torch.channels_last)),
                            images)

    def features(self, images: Tensor) -> Tensor:
        """judge.features: images [B,3,H,W] in [0,1] -> [B,D]."""
        return self._judge("features", images)

    def feature_maps(self, images: Tensor) -> list[Tensor]:
        """judge.feature_maps: images -> list of Tensor[B,C_l,h_l,w_l]."""
        return self._judge("feature_maps", images)

    def predict_prompts(self, images: Tensor) -> list[str]:
        """judge.predict_prompts: images -> ["<color> <pattern>", ...]."""
        return self._judge("predict_prompts", images)

    def distance_maps(self, images: Tensor, references: Tensor) -> list[Tensor]:
        """unit_distances of the feature maps of images and references: one Tensor[B,1,h_l,w_l] per layer."""
        return self._reused("distance_maps", lambda x, r: unit_distances(self.feature_maps(x), self.feature_maps(r)),
                            images, references)


def unit_distances(x_maps: list[Tensor], r_maps: list[Tensor]) -> list[Tensor]:
    """Per layer l: d_l = sum_c (x_l/(|x_l|+e) - r_l/(|r_l|+e))^2 over channels c -> Tensor[B,1,h_l,w_l], e = 1e-10.

    Expanded as |x|^2/(|x|+e)^2 + |r|^2/(|r|+e)^2 - 2 x.r/((|x|+e)(|r|+e)) to avoid normalised copies.
    """
    distances = []
    for x, r in zip(x_maps, r_maps):
        xx, rr, xr = (x * x).sum(1, keepdim=True), (r * r).sum(1, keepdim=True), (x * r).sum(1, keepdim=True)
        nx, nr = xx.sqrt() + 1e-10, rr.sqrt() + 1e-10
        distances.append((xx / nx.square() + rr / nr.square() - 2 * xr / (nx * nr)).clamp(min=0))
    return distances


def frozen(judge: nn.Module) -> FrozenJudge:
    """`judge` wrapped in a FrozenJudge (unchanged if it already is one)."""
    return judge if isinstance(judge, FrozenJudge) else FrozenJudge(judge)


class JudgeFeatures(nn.Module):
    """The judge's penultimate features `judge.features(images) -> [B, D]` as a torchmetrics feature module."""

    def __init__(self, judge: nn.Module) -> None:
        super().__init__()
        self.judge = frozen(judge)
        self.num_features = int(self.judge.features(torch.zeros(1, 3, 64, 64, device=_device(judge))).shape[-1])

    def forward(self, images: Tensor) -> Tensor:
        """images [B,3,H,W] in [0,1] -> features [B,D]."""
        return self.judge.features(images)


def weighted_layer_mean(maps: list[Tensor], weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """sum_l mean over (weight resized to layer l by area) of d_l -> (per-image value [B], weight mass [B])."""
    batch = maps[0].shape[0]
    value = maps[0].new_zeros(batch)
    if weight is None:
        for d in maps:
            value = value + d.mean(dim=(1, 2, 3))
        return value, torch.ones_like(value)
    for d in maps:
        w = F.interpolate(weight, size=d.shape[-2:], mode="area")
        mass = w.sum(dim=(1, 2, 3))
        value = value + (d * w).sum(dim=(1, 2, 3)) / mass.clamp(min=1e-12)
    return value, weight.sum(dim=(1, 2, 3))


def _device(module: nn.Module) -> torch.device:
    return next(iter(module.parameters()), torch.zeros(())).device

"""`fid/<extractor>` and `kid/<extractor>`: torchmetrics FID and KID over a chosen feature space.

Extractors: `judge` (the embedded world's judge features, default) and `inception` (torch-fidelity's
InceptionV3 pool3 features as the FID literature computes them, see metrics/reference.py; needs the `vision` extra
and local weights). Images are float [B,3,H,W] in [0,1].
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd
from torchmetrics.utilities.data import dim_zero_cat

from dualsampler.metrics.features import JudgeFeatures
from dualsampler.metrics.optional import inception_weights
from dualsampler.validation import BOUNDS, check_int

EXTRACTORS = ("judge", "inception")
MAX_SUBSETS = int(BOUNDS["kid_subsets"].high)  # KID subsets: one polynomial-kernel MMD each
MAX_SUBSET_SIZE = 100_000  # samples per KID subset: its kernel matrices are subset_size^2


class InceptionFeatures(nn.Module):
    """torch-fidelity's InceptionV3 pool3 features [B,2048] of float images in [0,1], quantised to uint8 as FID expects.

    torch-fidelity's own `FeatureExtractorInceptionV3` with its '2048' output: TF1.x-compatible bilinear resize to
    299 (no antialiasing), the TF 2015-12-05 weights read from the local file `weights_path` (never downloaded).
    It stays in evaluation mode.
    """

    num_features = 2048

    def __init__(self, weights_path: str | None = None) -> None:
        super().__init__()
        self.weights_path = inception_weights(weights_path)
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                               feature_extractor_weights_path=self.weights_path)

    def train(self, mode: bool = True) -> "InceptionFeatures":
        """Evaluation mode whatever `mode` is: batch norm keeps its running statistics."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        """images [B,3,H,W] in [0,1] -> features [B,2048] float32."""
        (features,) = self.net((images.clamp(0, 1) * 255).round().to(torch.uint8))
        return features.reshape(images.shape[0], -1)


def feature_module(extractor: str = "judge", judge: nn.Module | None = None,
                   weights_path: str | None = None) -> nn.Module:
    """The feature module for `extractor` in EXTRACTORS (`judge` needs `judge`)."""
    if extractor not in EXTRACTORS:
        raise ValueError(f"extractor must be one of {EXTRACTORS}, got {extractor!r}")
    if extractor == "inception":
        return InceptionFeatures(weights_path)
    if judge is None:
        raise ValueError("judge must be given for the 'judge' extractor")
    return JudgeFeatures(judge)


def frechet_distance(extractor: str = "judge", judge: nn.Module | None = None,
                     weights_path: str | None = None) -> FrechetInceptionDistance:
    """FID = |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)) over `extractor` features.

    update(images, real=bool); compute() -> scalar.
    """
    return FrechetInceptionDistance(feature=feature_module(extractor, judge, weights_path))


def check_kid_settings(subsets: int, subset_size: int = 1000) -> None:
    """Raise ValueError unless `subsets` is an integer in [1, MAX_SUBSETS] and `subset_size` in [2, MAX_SUBSET_SIZE]."""
    check_int(subsets, "subsets", 1, MAX_SUBSETS)
    check_int(subset_size, "subset_size", 2, MAX_SUBSET_SIZE)


class KernelDistance(KernelInceptionDistance):
    """KID = unbiased MMD^2 with kernel k(x, y) = (x.y / D + 1)^3, averaged over `subsets` random subsets.

    Unlike torchmetrics' KID, the subset size shrinks to the number of samples when there are fewer,
    and the subsets are drawn from a generator seeded with `seed` (the result is reproducible).
    """

    def __init__(self, feature: nn.Module, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> None:
        check_kid_settings(subsets, subset_size)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            super().__init__(feature=feature, subsets=subsets, subset_size=subset_size)
        self.seed = seed

    def compute(self) -> tuple[Tensor, Tensor]:
        """(mean, std) of the KID over subsets; needs at least 2 real and 2 generated samples."""
        real = dim_zero_cat(self.real_features).double()  # MMD is a small difference of large sums
        fake = dim_zero_cat(self.fake_features).double()
        size = min(self.subset_size, real.shape[0], fake.shape[0])
        if size < 2:
            raise RuntimeError("KID needs at least 2 real and 2 generated samples")
        if size == real.shape[0] == fake.shape[0]:  # every subset is the whole of both sets: one value
            return poly_mmd(real, fake, self.degree, self.gamma, self.coef), torch.zeros((), device=real.device)
        generator = torch.Generator().manual_seed(self.seed)
        scores = []
        for _ in range(self.subsets):
            r = real[torch.randperm(real.shape[0], generator=generator)[:size].to(real.device)]
            f = fake[torch.randperm(fake.shape[0], generator=generator)[:size].to(fake.device)]
            scores.append(poly_mmd(r, f, self.degree, self.gamma, self.coef))
        stacked = torch.stack(scores)
        return stacked.mean(), stacked.std(unbiased=False)


def kernel_distance(extractor: str = "judge", judge: nn.Module | None = None,
                    weights_path: str | None = None, subsets: int = 100) -> KernelDistance:
    """KID over `extractor` features (see KernelDistance); update(images, real=bool)."""
    check_kid_settings(subsets)
    return KernelDistance(feature_module(extractor, judge, weights_path), subsets=subsets)

"""Metrics: FID/KID over a named feature space, perceptual distance, seam metrics, region prompt accuracy."""
from dualsampler.metrics.compute import compute_metrics
from dualsampler.metrics.fid import KernelDistance, frechet_distance, kernel_distance
from dualsampler.metrics.perceptual import JudgePerceptualDistance, lpips_metric, perceptual_metric
from dualsampler.metrics.region_accuracy import RegionAccuracy
from dualsampler.metrics.seam import SeamColorJump, SeamGradientRatio, SeamPerceptual

__all__ = [
    "JudgePerceptualDistance",
    "KernelDistance",
    "RegionAccuracy",
    "SeamColorJump",
    "SeamGradientRatio",
    "SeamPerceptual",
    "compute_metrics",
    "frechet_distance",
    "kernel_distance",
    "lpips_metric",
    "perceptual_metric",
]

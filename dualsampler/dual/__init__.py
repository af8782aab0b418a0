"""Region samplers: one object per algorithm (SPEC §5-6, §9), called as
`algorithm(latent, *, base_sampler, mask_sampler, mask, seed, steps, denoise=1.0)` or, for N regions,
`algorithm.sample_regions(latent, *, base_sampler, regions, seed, steps, denoise=1.0)`.
`two_samplers_for_mask`, `two_advanced_samplers_for_mask` and `regional_sampler` keep upstream's names and
arguments."""

from .alternate import Alternate
from .base import Region, RegionRun, RegionSampler, inverse_mask
from .compat import MODES, regional_sampler, two_advanced_samplers_for_mask, two_samplers_for_mask
from .differential_diffusion import DifferentialDiffusion
from .fused import Fused
from .mixture_of_diffusers import MixtureOfDiffusers
from .multidiffusion import MultiDiffusion
from .regional import Regional
from .soft_inpainting import SoftInpainting
from .whole_run import WholeRun

ALGORITHMS: dict[str, type[RegionSampler]] = {cls.name: cls for cls in (
    WholeRun, Alternate, Regional, Fused, MultiDiffusion, MixtureOfDiffusers, SoftInpainting, DifferentialDiffusion)}

__all__ = ["ALGORITHMS", "MODES", "Alternate", "DifferentialDiffusion", "Fused", "MixtureOfDiffusers", "MultiDiffusion",
           "SoftInpainting", "Region", "RegionRun", "RegionSampler", "Regional", "WholeRun",
           "inverse_mask", "regional_sampler", "two_advanced_samplers_for_mask", "two_samplers_for_mask"]

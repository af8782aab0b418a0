"""The public functions of the behaviour contract (SPEC §5-6, §9) with upstream's names, argument orders and
spellings ('enable'/'disable', 'DISABLE', 'AUTO', `additional_*`, `seed_2nd*`), mapped onto the algorithm objects."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ..sampling.ksampler import KSampler
from ..sampling.noise import Seed
from ..sampling.recovery import Recovery
from ..sampling.samplers import Callback
from .alternate import Alternate
from .base import Region
from .fused import Fused
from .regional import Regional
from .whole_run import WholeRun

MODES = ("seed", "regional", "fused")
RECOVERY_MODE_NAMES = {"DISABLE": "none", "ratio additional": "ratio additional", "ratio between": "ratio between"}
# Upstream lists increment/decrement/randomize too and runs them as `fixed` ("not implemented yet").
SEED_2ND_MODE_NAMES = {"ignore": "none", "fixed": "fixed", "seed+seed_2nd": "add", "seed-seed_2nd": "subtract",
                       "increment": "fixed", "decrement": "fixed", "randomize": "fixed"}


def _one_of(value: str, names: dict[str, str], key: str) -> str:
    if value not in names:
        raise ValueError(f"{key} must be one of {', '.join(names)}; got {value!r}")
    return names[value]


def two_samplers_for_mask(
    latent: Tensor,
    base_sampler: KSampler,
    mask_sampler: KSampler,
    mask: Tensor,
    seed: Seed,
    steps: int,
    denoise: float = 1.0,
    callback: Callback | None = None,
    *,
    mask_seed: Seed | None = None,
    mask_steps: int | None = None,
    mask_denoise: float | None = None,
) -> Tensor:
    """TwoSamplersForMask (SPEC §5): `WholeRun()` with upstream's argument order."""
    return WholeRun()(latent, base_sampler=base_sampler, mask_sampler=mask_sampler, mask=mask, seed=seed, steps=steps,
                      denoise=denoise, callback=callback, mask_seed=mask_seed, mask_steps=mask_steps,
                      mask_denoise=mask_denoise)


def two_advanced_samplers_for_mask(
    seed: Seed,
    steps: int,
    denoise: float,
    latent: Tensor,
    base_sampler: KSampler,
    mask_sampler: KSampler,
    mask: Tensor,
    overlap_factor: int = 10,
    mode: str = "seed",
    *,
    feather: float = 0.0,
    base_only_steps: int = 1,
    restore_latent: bool = True,
    additional_mode: str = "ratio between",
    additional_sampler: str = "AUTO",
    additional_sigma_ratio: float = 0.3,
    seed_2nd: int = 0,
    seed_2nd_mode: str = "ignore",
    callback: Callback | None = None,
) -> Tensor:
    """TwoAdvancedSamplersForMask (SPEC §6) with upstream's argument order: `mode` picks `Alternate` (`seed`),
    `Regional` (`regional`, with upstream's `additional_*` and `seed_2nd*` inputs) or `Fused` (`fused`, `feather`)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if mode == "seed":
        algorithm = Alternate(overlap_factor)
    elif mode == "fused":
        algorithm = Fused(overlap_factor, feather)
    else:
        algorithm = _regional(overlap_factor, base_only_steps, restore_latent, additional_mode, additional_sampler,
                              additional_sigma_ratio, seed_2nd, seed_2nd_mode)
    return algorithm(latent, base_sampler=base_sampler, mask_sampler=mask_sampler, mask=mask, seed=seed, steps=steps,
                     denoise=denoise, callback=callback)


def regional_sampler(
    seed: Seed,
    seed_2nd: int,
    seed_2nd_mode: str,
    steps: int,
    base_only_steps: int,
    denoise: float,
    latent: Tensor,
    base_sampler: KSampler,
    regions: Sequence[Region],
    overlap_factor: int = 10,
    restore_latent: bool = True,
    additional_mode: str = "ratio between",
    additional_sampler: str = "AUTO",
    additional_sigma_ratio: float = 0.3,
    callback: Callback | None = None,
) -> Tensor:
    """The Impact Pack's RegionalSampler with its argument order and spellings (`regions` for its
    regional_prompts): `Regional(...).sample_regions`. TwoAdvancedSamplersForMask's regional route is this with one
    region, seed_2nd_mode `ignore` and base_only_steps 1."""
    algorithm = _regional(overlap_factor, base_only_steps, restore_latent, additional_mode, additional_sampler,
                          additional_sigma_ratio, seed_2nd, seed_2nd_mode)
    return algorithm.sample_regions(latent, base_sampler=base_sampler, regions=regions, seed=seed, steps=steps,
                                    denoise=denoise, callback=callback)


def _regional(overlap_factor: int, base_only_steps: int, restore_latent: bool, additional_mode: str,
              additional_sampler: str, additional_sigma_ratio: float, seed_2nd: int, seed_2nd_mode: str) -> Regional:
    """`Regional` from upstream's widget values ('DISABLE', 'AUTO', 'seed+seed_2nd', ...), growing masks at their
    own resolution as upstream does (`overlap_at_mask_resolution`)."""
    recovery = Recovery(_one_of(additional_mode, RECOVERY_MODE_NAMES, "additional_mode"),
                        "auto" if additional_sampler == "AUTO" else additional_sampler, additional_sigma_ratio)
    return Regional(overlap_factor, base_only_steps, restore_latent, recovery, seed_2nd,
                    _one_of(seed_2nd_mode, SEED_2ND_MODE_NAMES, "seed_2nd_mode"), overlap_at_mask_resolution=True)

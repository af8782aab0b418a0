"""One seed owner (issue 19, part 2): each image has one seed, every random stream derives from it by name, so the
batch an image is sampled in changes nothing beyond float rounding, for every shipped config."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir

from dualsampler.run import CONF_DIR
from dualsampler.runner.job import JobParts, prepare_item, sample_batch
from dualsampler.sampling import NoiseStream
from dualsampler.sampling.streams import stream_seed, stream_seeds
from dualsampler.upscale import NoiseInjectionHook

SEEDS = [0, 1, 2, 3]
TOLERANCE = 2e-4  # of the latents' scale: batched convolutions round differently from single ones (README, "Seeds")
TINY = ["model=random_world", "height=64", "width=64", "steps=2", f"seeds={len(SEEDS)}", "logger=none"]
UPSCALED = ["upscaler.steps=2", "upscaler.iterations=2"]  # 64 -> 128 px in two iterations of 2 steps per pass
SHIPPED = ([f"experiment={p.stem}" for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))]
           + [f"dual={p.stem}" for p in sorted((CONF_DIR / "dual").glob("*.yaml"))]
           + [f"upscaler={p.stem}" for p in sorted((CONF_DIR / "upscaler").glob("*.yaml"))])
# Swept values of the experiments beyond their defaults that take other code paths: ancestral and second-order
# samplers in the per-step route, a full-sample upscale iteration.
SWEPT = ["experiment=sampler_pairs sampler@base_sampler=euler_ancestral sampler@mask_sampler=heun",
         "experiment=upscale_schedules upscaler.full_sample_schedule=interleave1"]


def job_parts(choice: str) -> JobParts:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose(config_name="config", overrides=[*choice.split(), *TINY])
        if config.get("upscaler"):
            config = compose(config_name="config", overrides=[*choice.split(), *TINY, *UPSCALED])
    return JobParts.from_config(config)


@pytest.fixture(scope="module")
def model():
    return job_parts("dual=alternate").source.load("cpu")


def test_every_shipped_config_is_covered():
    assert len(SHIPPED) == len(list(CONF_DIR.glob("experiment/*.yaml"))) + 8 + 3
    assert {"experiment=blending_methods", "dual=regional", "upscaler=two_samplers_hooks"} <= set(SHIPPED)


def slow_if_upscaled(choice: str):
    """The upscaled configs sample 64 -> 128 px three times over (seconds each): end to end, out of the quick subset."""
    upscaled = any(word in choice for word in ("upscaler=two_samplers", "experiment=upscale_schedules"))
    return pytest.param(choice, marks=pytest.mark.slow) if upscaled else choice


@pytest.mark.parametrize("choice", [slow_if_upscaled(choice) for choice in SHIPPED + SWEPT])
def test_batch_sizes_one_two_and_four_give_the_same_images(choice, model):
    parts = job_parts(choice)
    with torch.inference_mode():
        run, upscale = prepare_item(parts, model, parts.items[0], torch.device("cpu"))
        alone, pairs, four = (torch.cat([sample_batch(parts, run, upscale, SEEDS[i:i + b])
                                         for i in range(0, len(SEEDS), b)]) for b in (1, 2, 4))
    assert alone.shape[0] == len(SEEDS) and not torch.equal(alone[0], alone[1])  # each image its own noise
    scale = max(1.0, float(alone.abs().max()))  # the random-weight world's latents reach tens after 2 steps
    for batched in (pairs, four):
        assert (batched - alone).abs().max() <= TOLERANCE * scale, choice


def test_stream_seeds_are_named_per_element_and_reproducible():
    assert stream_seed(7, "noise_injection", 0) == stream_seed(7, "noise_injection", 0)
    assert len({stream_seed(7, "noise_injection", 0), stream_seed(7, "noise_injection", 2),
                stream_seed(7, "background", 0), stream_seed(8, "noise_injection", 0)}) == 4
    assert all(0 <= s < 2**63 for s in stream_seeds([0, 2**64 - 1], "background", 3))
    assert stream_seeds(5, "x") == [stream_seed(5, "x")]


def test_injected_noise_follows_each_images_seed_not_its_batch():
    """The hook draws each element's noise from its own seed's stream; with an int batch seed (upstream's call) it
    keeps upstream's one batch-shaped draw from `seed + 2 * i`."""
    hook = NoiseInjectionHook(seed=3, start_strength=1.0, end_strength=1.0)
    zeros = torch.zeros(2, 4, 4, 4)
    hook.set_steps((1, 2))
    hook.set_seed([10, 11])
    both = hook.post_encode(zeros)
    hook.set_seed([11])
    assert torch.equal(hook.post_encode(zeros[:1]), both[1:])
    assert torch.equal(both[0], NoiseStream([stream_seed(10, "noise_injection", 3 + 2)])(zeros[:1])[0])
    hook.set_seed(10)
    assert torch.equal(hook.post_encode(zeros), NoiseStream(3 + 2)(zeros))

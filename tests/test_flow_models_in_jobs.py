"""SD3 and Flux through everything a sweep uses: every region algorithm, the iterative upscaler, and
`dualsampler-run model=diffusers model.path=<folder>` end to end (the family detected from the folder), on the tiny
random folders of tests/sd3_fixtures.py and tests/flux_fixtures.py."""

import inspect
import json
import os

import pytest
import torch

from dualsampler.dual import ALGORITHMS
from dualsampler.masks import rectangle_mask
from dualsampler.models import load_model
from dualsampler.runner.job import JobParts
from dualsampler.runner.settings import ConfigError
from dualsampler.runner.specs import SamplerSpec
from run_app import run_app
from test_lora import compose_job

MASK = rectangle_mask(16, 16, 0.25, 0.25, 0.75, 0.75)


@pytest.fixture(scope="module", params=["sd3", "flux"])
def model(request, sd3_model, flux_models):
    return load_model(sd3_model.folder if request.param == "sd3" else flux_models.dev)


def samplers(model, height=32, width=32):
    specs = [SamplerSpec("euler", "simple", 1.0, "blue stripes"), SamplerSpec("dpmpp_2m", "simple", 1.0, "red dots")]
    return [spec.build(model, height, width) for spec in specs]


def small_overlap(cls) -> dict:
    return {"overlap_factor": 2} if "overlap_factor" in inspect.signature(cls).parameters else {}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_region_algorithm_samples_a_flow_model_latent(model, name):
    base, inside = samplers(model)
    algorithm = ALGORITHMS[name](**small_overlap(ALGORITHMS[name]))
    latent = torch.zeros(1, model.latent_channels, 16, 16)
    out = algorithm(latent, base_sampler=base, mask_sampler=inside, mask=MASK, seed=0, steps=2)
    assert out.shape == latent.shape and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_the_iterative_upscaler_runs_on_a_flow_model(model):
    from dualsampler.runner.upscaling import UpscaleSpec

    specs = {role: SamplerSpec("euler", "simple", 1.0, prompt) for role, prompt in (("base", "blue"), ("mask", "red dots"))}
    built = {role: (spec, spec.build(model, 32, 32)) for role, spec in specs.items()}
    upscale = UpscaleSpec(iterations=1, steps=2).build(model, built, MASK)
    out = upscale(torch.randn(1, model.latent_channels, 16, 16), [0])
    assert out.shape == (1, model.latent_channels, 32, 32) and torch.isfinite(out).all()


def test_a_flux_sampler_samples_with_its_canvas_model_sampling_and_guidance(flux_models):
    flux = load_model(flux_models.dev)
    sampler = SamplerSpec("euler", "simple", 1.0, "red dots", guidance=5.0).build(flux, 64, 32)
    assert sampler.model_sampling == flux.model_sampling_for(64, 32) != flux.model_sampling
    assert float(sampler.denoiser.cond.guidance[0]) == 5.0


@pytest.mark.parametrize("overrides, message", [
    (["model=random_world", "base_sampler.guidance=4"], r"base_sampler\.guidance: the world model has no distilled"),
    (["model=diffusers", "model.path=SD15", "mask_sampler.guidance=4"],
     r"mask_sampler\.guidance: the sd1 model has no distilled guidance"),
])
def test_guidance_on_a_model_without_it_is_refused_before_the_model_loads(sd_models, monkeypatch, overrides,
                                                                          message):
    monkeypatch.setattr("dualsampler.models.source.load_model", lambda *a, **k: pytest.fail("a model loaded"))
    overrides = [o.replace("SD15", str(sd_models.sd15)) for o in overrides]
    with pytest.raises(ConfigError, match=message):
        JobParts.from_config(compose_job(*overrides, "logger=none"))


@pytest.mark.slow
@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_dualsampler_run_detects_the_family_and_runs_fused_end_to_end(family, sd3_model, flux_models, tmp_path):
    folder = flux_models.dev if family == "flux" else sd3_model.folder
    guidance = ["base_sampler.guidance=2", "mask_sampler.guidance=5"] if family == "flux" else []
    done = run_app("model=diffusers", f"model.path={folder}", "dual=fused", "base_sampler.cfg=1",
                   "mask_sampler.cfg=1", *guidance, "seeds=2", "steps=3", "height=32", "width=32", "logger=none",
                   f"hydra.run.dir={tmp_path / 'job'}", multirun=False,
                   env=dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "job" / "result.json").read_text())
    assert result["model"]["kind"] == family
    sampling = "FluxModelSampling" if family == "flux" else "FlowModelSampling(shift=3"
    assert len(result["model"]["model_sampling"]) == 1 and result["model"]["model_sampling"][0].startswith(sampling)
    assert [p for p in result["images"]] == ["images/seed0.png", "images/seed1.png"]
    assert all((tmp_path / "job" / p).is_file() for p in result["images"])
    assert "seam/color_jump" in result["metrics"] and "region_accuracy/inside" in result["absent"]

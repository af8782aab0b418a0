"""A LoRA per sampler (issue 22) on the tiny SD 1.5 and Flux.1 dev folders and their tiny random LoRAs
(lora_fixtures.py): a LoRA changes the denoiser as diffusers' own fused LoRA does, in the kohya and the diffusers
layout alike; two regions with two LoRAs run in one job, each forward computing exactly its sampler's LoRA alone;
bad LoRA settings are refused before any model loads; a changed LoRA file changes the job's fingerprint."""

from __future__ import annotations

import shutil

import pytest
import torch
from hydra import compose, initialize_config_dir

from dualsampler.models import load_model
from dualsampler.models.lora import ACTIVE, LoraSpec, activate_adapters, check_loras
from dualsampler.run import CONF_DIR
from dualsampler.runner.items import inputs_fingerprint, loras_record
from dualsampler.runner.job import JobParts, prepare_item, sample_batch
from dualsampler.runner.settings import ConfigError
from dualsampler.runner.specs import SamplerSpec
from dualsampler.sampling.unet_denoiser import JointDenoiser
from lora_fixtures import flux_lora_files, lora_files  # noqa: F401  (tiny LoRA files, written once per run)

STEP = 500  # a schedule index: sigma = model_sampling.sigmas[STEP] maps to the integer timestep STEP


@pytest.fixture(scope="module")
def model(sd_models):
    return load_model(sd_models.sd15)


def noisy(model, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A latent [1, 4, 8, 8] at sigma = sigmas[STEP], and that sigma."""
    sigma = model.model_sampling.sigmas[STEP].reshape(1)
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed)) * sigma, sigma


def spec(loras=(), prompt: str = "red dots") -> SamplerSpec:
    return SamplerSpec("euler", "karras", 2.0, prompt, loras=loras)


@torch.no_grad()
def test_a_lora_changes_the_denoiser_and_scale_zero_leaves_it_as_without(model, lora_files):
    x, sigma = noisy(model)
    plain = model.denoiser("red dots", cfg=2.0)(x, sigma)
    one = model.denoiser("red dots", cfg=2.0, loras=[str(lora_files.unet_a)])(x, sigma)
    assert torch.equal(model.denoiser("red dots", cfg=2.0)(x, sigma), plain)  # no LoRA active again
    half = model.denoiser("red dots", cfg=2.0, loras=[{"path": str(lora_files.unet_a), "scale": 0.5}])(x, sigma)
    zero = model.denoiser("red dots", cfg=2.0, loras=[{"path": str(lora_files.unet_a), "scale": 0.0}])(x, sigma)
    assert (one - plain).abs().max() > 1e-2 and (half - plain).abs().max() > 1e-3 and (half - one).abs().max() > 1e-3
    assert torch.equal(zero, plain)


@torch.no_grad()
def test_the_lora_forward_equals_diffusers_own_fused_lora(model, sd_models, lora_files):
    """Independent path: a fresh pipeline with diffusers' `load_lora_weights` + `fuse_lora` (UNet and text encoder
    weights merged), eps-prediction x0 = x - sigma * eps at the integer timestep STEP, CFG by hand."""
    from diffusers import StableDiffusionPipeline

    x, sigma = noisy(model, seed=1)
    ours = model.denoiser("red dots", "blue", cfg=2.0,
                          loras=[{"path": str(lora_files.with_text), "scale": 0.7}])(x, sigma)
    pipe = StableDiffusionPipeline.from_pretrained(sd_models.sd15, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False, local_files_only=True)
    pipe.load_lora_weights(str(lora_files.with_text.parent), weight_name=lora_files.with_text.name)
    pipe.fuse_lora(components=["unet", "text_encoder"], lora_scale=0.7)
    cond, uncond = pipe.encode_prompt(["red dots"], "cpu", 1, True, negative_prompt=["blue"])
    eps = pipe.unet(torch.cat([x, x]) / (sigma**2 + 1).sqrt(), torch.tensor([STEP, STEP]),
                    encoder_hidden_states=torch.cat([cond, uncond])).sample
    x0_cond, x0_uncond = (x - sigma * eps).chunk(2)
    expected = x0_uncond + (x0_cond - x0_uncond) * 2.0
    assert (expected - model.denoiser("red dots", "blue", cfg=2.0)(x, sigma)).abs().max() > 1e-2
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_the_kohya_layout_loads_as_the_diffusers_layout(model, lora_files):
    x, sigma = noisy(model, seed=2)
    diffusers_layout = model.denoiser("red dots", cfg=2.0, loras=[str(lora_files.with_text)])(x, sigma)
    kohya_layout = model.denoiser("red dots", cfg=2.0, loras=[str(lora_files.kohya_text)])(x, sigma)
    torch.testing.assert_close(kohya_layout, diffusers_layout, atol=1e-5, rtol=1e-5)


def test_samplers_with_one_adapter_set_share_a_forward_and_others_do_not(model, lora_files):
    a = [str(lora_files.unet_a)]
    same = JointDenoiser([model.denoiser("red dots", loras=a), model.denoiser("blue", loras=a)])
    other = JointDenoiser([model.denoiser("red dots", loras=a), model.denoiser("blue", loras=[str(lora_files.unet_b)])])
    plain = JointDenoiser([model.denoiser("red dots", loras=a), model.denoiser("blue")])
    assert same.shared and not other.shared and not plain.shared


def test_activating_the_active_set_again_touches_no_layer(model, lora_files, monkeypatch):
    adapters = model.load_loras(check_loras([str(lora_files.unet_a)], "loras"))
    activate_adapters(model.unet, adapters)
    assert getattr(model.unet, ACTIVE) == adapters
    walked = []
    monkeypatch.setattr(model.unet, "modules", lambda: walked.append(1) or iter(()))
    activate_adapters(model.unet, adapters)
    assert walked == []


def compose_job(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def two_lora_regions(folder, a, b) -> list[str]:
    regions = (f"regions=[{{mask:{{shape:half,side:left}},prompt:'red dots',loras:['{a}']}},"
               f"{{mask:{{shape:half,side:right}},prompt:'blue stripes',loras:[{{path:'{b}',scale:0.8}}]}}]")
    return ["model=diffusers", f"model.path={folder}", "dual=fused", "steps=2", "height=32", "width=32", "seeds=1",
            "logger=none", regions]


def network(model) -> torch.nn.Module:
    """The model's denoising network: a Flux transformer or a UNet."""
    return model.transformer if hasattr(model, "transformer") else model.unet


def tensors(value, change):
    """`value` (a tensor, or a tuple/dict holding some) with `change` applied to every tensor in it."""
    if isinstance(value, torch.Tensor):
        return change(value)
    if isinstance(value, (tuple, list)):
        return type(value)(tensors(v, change) for v in value)
    if isinstance(value, dict):
        return {k: tensors(v, change) for k, v in value.items()}
    return value


def output(out) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out.sample


def forward(net, args, kwargs) -> torch.Tensor:
    return output(net(*args, **kwargs))


FOLDERS = {"sd15": lambda request: (request.getfixturevalue("sd_models").sd15, request.getfixturevalue("lora_files")),
           "flux": lambda request: (request.getfixturevalue("flux_models").dev,
                                    request.getfixturevalue("flux_lora_files"))}


@pytest.mark.parametrize("family", sorted(FOLDERS))
@torch.no_grad()
def test_two_regions_with_two_loras_in_one_job_each_forward_is_its_lora_alone(family, request):
    """The job's fused run records every network forward with the adapter set active in it; each forward is then
    recomputed on a model holding only that LoRA (or none): equal outputs, different from no LoRA, and no forward
    holds two samplers' rows."""
    folder, files = FOLDERS[family](request)
    a, b = (files.unet_a, files.unet_b) if family == "sd15" else (files.a, files.b)
    parts = JobParts.from_config(compose_job(*two_lora_regions(folder, a, b)))
    (item,) = parts.items
    assert [r.spec.loras for r in item.regions] == [(LoraSpec(str(a)),), (LoraSpec(str(b), 0.8),)]
    model = load_model(folder)
    calls = []

    def record(net, args, kwargs, out):
        calls.append((getattr(net, ACTIVE, ()), tensors(args, torch.clone), tensors(kwargs, torch.clone),
                      output(out).clone()))

    hook = network(model).register_forward_hook(record, with_kwargs=True)
    run, _ = prepare_item(parts, model, item, torch.device("cpu"))
    latent = sample_batch(parts, run, None, [0])
    hook.remove()
    assert latent.shape == (1, model.latent_channels, 16, 16) and torch.isfinite(latent).all()
    named = {LoraSpec(str(path)).adapter_name(): str(path) for path in (a, b)}
    seen = {active for active, *_ in calls}
    assert seen == {(), ((LoraSpec(str(a)).adapter_name(), 1.0),), ((LoraSpec(str(b)).adapter_name(), 0.8),)}
    assert all(output_rows.shape[0] == 2 for *_, output_rows in calls)  # one sampler's cond and uncond alone
    plain = network(load_model(folder))
    for active in seen:
        alone = load_model(folder)
        activate_adapters(network(alone), alone.load_loras([LoraSpec(named[name], scale) for name, scale in active]))
        mine = [c for c in calls if c[0] == active]
        for _, args, kwargs, out in mine:
            torch.testing.assert_close(forward(network(alone), args, kwargs), out, atol=1e-5, rtol=1e-5)
        if active:
            assert max((forward(plain, args, kwargs) - out).abs().max() for _, args, kwargs, out in mine) > 1e-3


def test_a_job_records_and_fingerprints_its_lora_files(sd_models, lora_files, tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    shutil.copy(lora_files.unet_a, a)
    shutil.copy(lora_files.unet_b, b)
    job = compose_job(*two_lora_regions(sd_models.sd15, a, b))
    items = JobParts.from_config(job).items
    before = inputs_fingerprint(items)
    record = loras_record(items)
    assert record == {
        "regions[0].loras": [{"path": str(a), "scale": 1.0, "fingerprint": LoraSpec(str(a)).fingerprint()}],
        "regions[1].loras": [{"path": str(b), "scale": 0.8, "fingerprint": LoraSpec(str(b)).fingerprint()}]}
    shutil.copy(lora_files.unet_b, a)  # a's bytes change, its path and the config do not
    after = JobParts.from_config(job).items
    assert inputs_fingerprint(after) != before
    assert loras_record(after)["regions[0].loras"][0]["fingerprint"] != record["regions[0].loras"][0]["fingerprint"]
    assert LoraSpec(str(a)).adapter_name() == LoraSpec(str(b)).adapter_name()  # named by content, not path


def test_a_job_without_loras_keeps_its_fingerprint(sd_models):
    parts = JobParts.from_config(compose_job("model=diffusers", f"model.path={sd_models.sd15}", "logger=none"))
    assert parts.inputs is None and loras_record(parts.items) == {}
    with_lora = compose_job("model=diffusers", f"model.path={sd_models.sd15}", "logger=none",
                            f"base_sampler.loras=['{sd_models.sd15 / 'unet' / 'diffusion_pytorch_model.safetensors'}']")
    assert JobParts.from_config(with_lora).inputs is not None


@pytest.mark.parametrize("loras, message", [
    (["missing.safetensors"], r"loras\[0\]\.path must be an existing LoRA file"),
    (["{folder}/model_index.json"], r"loras\[0\]\.path must be a LoRA file ending in \.safetensors or \.bin"),
    ([{"path": "{a}", "scale": float("nan")}], r"loras\[0\]\.scale must be a finite number in \[-100, 100\]"),
    ([{"path": "{a}", "scale": float("inf")}], r"loras\[0\]\.scale must be a finite number"),
    ([{"path": "{a}", "strength": 1.0}], r"loras\[0\] must be a path or a mapping with path"),
    (["{a}", "{a}"], r"loras\[1\]: .* is listed twice"),
    ("{a}", r"loras must be a list of LoRA files"),
])
def test_bad_lora_settings_are_refused_naming_the_key(sd_models, lora_files, loras, message):
    def fill(value):
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value.format(a=lora_files.unet_a, folder=sd_models.sd15) if isinstance(value, str) else value

    value = fill(loras) if isinstance(loras, str) else [fill(v) for v in loras]
    with pytest.raises(ValueError, match=message):
        SamplerSpec("euler", "karras", 2.0, "red dots", loras=value)


def test_a_region_with_a_bad_lora_fails_the_job_before_any_model_loads(sd_models, lora_files, monkeypatch):
    monkeypatch.setattr("dualsampler.models.source.load_model", lambda *a, **k: pytest.fail("a model loaded"))
    overrides = two_lora_regions(sd_models.sd15, lora_files.unet_a, "gone.safetensors")
    with pytest.raises(ConfigError, match=r"regions\[1\]: loras\[0\]\.path must be an existing LoRA file"):
        JobParts.from_config(compose_job(*overrides))


def test_the_world_model_refuses_a_sampler_with_loras(lora_files):
    from dualsampler.models.world import random_world

    with pytest.raises(ValueError, match=r"loras: the world model takes no LoRA"):
        spec([str(lora_files.unet_a)]).build(random_world(0))


def test_a_lora_of_another_family_is_refused_naming_the_file(model, flux_lora_files):
    with pytest.raises(ValueError, match=r"flux_a\.safetensors' patches none of this StableDiffusionPipeline's"):
        model.denoiser("red dots", loras=[str(flux_lora_files.a)])

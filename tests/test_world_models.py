"""The shipped models load offline from package data and give finite outputs of the right shapes."""
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from dualsampler.models import (
    WEIGHTS_DIR,
    Judge,
    ModelSource,
    PromptEncoder,
    Upscaler2x,
    World,
    load_model,
    load_world,
    random_world,
    weights_fingerprint,
)
from dualsampler.sampling import KSampler, ModelSampling, UNetDenoiser
from dualsampler.world import COLORS, PATTERNS


@pytest.fixture(scope="module")
def world():
    return load_world()


def test_shipped_weights_are_small_safetensors_folders():
    files = list(WEIGHTS_DIR.rglob("*.safetensors"))
    assert {f.parent.name for f in files} >= {"vae", "unet", "prompt_encoder", "judge", "upscaler"}
    assert sum(f.stat().st_size for f in files) < 15 * 2**20


def test_load_world_is_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("socket.socket.connect", lambda *a, **k: pytest.fail("network touched"))
    w = load_world()
    assert isinstance(w.vae, AutoencoderKL) and isinstance(w.unet, UNet2DConditionModel)
    assert isinstance(w.model_sampling, ModelSampling)
    assert w.vae_scale_factor == 4 and w.vae.config.latent_channels == 4
    assert w.vae.config.scaling_factor != 1.0, "scaling factor set from latent statistics"


def test_vae_round_trip_shapes(world):
    images = torch.rand(2, 3, 48, 64)
    latents = world.encode(images)
    assert latents.shape == (2, 4, 12, 16) and torch.isfinite(latents).all()
    decoded = world.decode(latents)
    assert decoded.shape == images.shape and 0 <= decoded.min() and decoded.max() <= 1


def test_prompt_encoder_states_and_unconditional_prompt(world):
    states = world.encode_prompt(["red stripes", "", "blue"])
    assert states.shape == (3, 2, world.unet.config.cross_attention_dim)
    assert not torch.allclose(states[0], states[1])
    with pytest.raises(ValueError, match="colors .*red.*patterns .*stripes"):
        world.encode_prompt(["red zebra"])


def test_denoiser_predicts_finite_x0_with_cfg(world):
    den = world.denoiser("green dots", negative_prompt="", cfg=5.0)
    assert isinstance(den, UNetDenoiser) and den.cfg == 5.0
    x = torch.randn(1, 4, 16, 16) * 10
    x0 = den(x, torch.tensor([10.0]))
    assert x0.shape == x.shape and torch.isfinite(x0).all()


def test_judge_interface_on_any_size(world):
    judge = world.judge
    for h, w in [(32, 32), (40, 72)]:
        images = torch.rand(3, 3, h, w)
        color_logits, pattern_logits = judge(images)
        assert color_logits.shape == (3, len(COLORS)) and pattern_logits.shape == (3, len(PATTERNS))
        assert judge.features(images).shape == (3, judge.config.feature_dim)
        assert all(m.shape[0] == 3 and m.dim() == 4 for m in judge.feature_maps(images))
    assert all(p.split()[0] in COLORS for p in judge.predict_prompts(torch.rand(2, 3, 32, 32)))
    with pytest.raises(ValueError, match="H, W >= 32"):
        judge(torch.rand(1, 3, 16, 16))


def test_upscaler_doubles_the_size(world):
    out = world.upscaler(torch.rand(2, 3, 20, 24))
    assert out.shape == (2, 3, 40, 48) and 0 <= out.min() and out.max() <= 1


def test_generate_gives_images(world):
    images = world.generate("purple grid", seeds=[0, 1], height=64, width=64, steps=3)
    assert images.shape == (2, 3, 64, 64) and torch.isfinite(images).all()
    torch.testing.assert_close(images[1:], world.generate("purple grid", [1], 64, 64, steps=3), atol=1e-4, rtol=1e-4)


def test_random_world_has_the_shipped_architectures():
    w = random_world(seed=1)
    assert list(w.unet.config.block_out_channels) == list(load_world().unet.config.block_out_channels)
    latent = torch.zeros(1, 4, 8, 8)
    out = KSampler(w.denoiser("red dots", cfg=2.0)).sample(latent, seed=0, steps=2)
    assert out.shape == latent.shape and torch.isfinite(out).all()


def test_load_world_accepts_a_diffusers_style_folder(tmp_path):
    w = random_world(seed=2)
    for name in ("vae", "unet", "prompt_encoder"):
        getattr(w, name).save_pretrained(tmp_path / name)
    loaded = load_world(tmp_path)
    torch.testing.assert_close(loaded.unet.conv_in.weight, w.unet.conv_in.weight)
    assert isinstance(loaded.judge, Judge) and isinstance(loaded.upscaler, Upscaler2x)
    assert isinstance(loaded.prompt_encoder, PromptEncoder)


def test_load_world_names_the_missing_subfolder(tmp_path):
    (tmp_path / "vae").mkdir()
    with pytest.raises(ValueError, match="unet/"):
        load_world(tmp_path)


def test_load_model_gives_the_world_with_the_common_surface():
    w = load_model("world", dtype="bfloat16")
    assert isinstance(w, World) and w.dtype == torch.bfloat16 and w.latent_channels == 4
    assert next(w.judge.parameters()).dtype == torch.float32  # metrics read float32 images
    out = KSampler(w.denoiser("red dots", cfg=3.0)).sample(torch.zeros(1, 4, 8, 8), seed=0, steps=2)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_world_codec_applies_the_vae_shift_factor():
    w = random_world(seed=3)
    images = torch.rand(1, 3, 32, 32)
    raw = w.vae.encode(images * 2 - 1).latent_dist.mode()
    scale = w.vae.config.scaling_factor
    w.vae.register_to_config(shift_factor=0.2)
    torch.testing.assert_close(w.encode(images), (raw - 0.2) * scale)
    latents = torch.randn(1, 4, 8, 8)
    expected = ((w.vae.decode(latents / scale + 0.2).sample + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(w.decode(latents), expected)


def test_world_fingerprints_match_their_sources(tmp_path):
    assert load_world().fingerprint() == ModelSource().fingerprint() == weights_fingerprint()
    assert random_world(seed=4).fingerprint() == ModelSource(random_seed=4).fingerprint() == "random-4"
    w = random_world(seed=2)
    for name in ("vae", "unet", "prompt_encoder"):
        getattr(w, name).save_pretrained(tmp_path / name)
    before = ModelSource(str(tmp_path)).fingerprint()
    assert load_world(tmp_path).fingerprint() == before
    random_world(seed=5).unet.save_pretrained(tmp_path / "unet")
    assert ModelSource(str(tmp_path)).fingerprint() != before

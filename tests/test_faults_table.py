"""Bad values through the Python API (issue 14): each is refused before any model call by a ValueError whose
message names the parameter (and its allowed range or values).

Every row runs against fresh counting models: a denoiser, a tiny VAE and a judge that count their calls; the
row passes only when the error names the parameter and no model was called.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image

from dualsampler.dual import Alternate, Fused, Regional, WholeRun, two_samplers_for_mask
from dualsampler.masks import as_mask_batch, ellipse_mask, feather_mask, grow_mask, half_mask, load_mask, rectangle_mask, resize_mask
from dualsampler.metrics import compute_metrics, kernel_distance
from dualsampler.models.judge import Judge
from dualsampler.runner.claim import claim_job
from dualsampler.runner.devices import check_device
from dualsampler.runner.specs import SamplerSpec
from dualsampler.runner.upscaling import UpscaleSpec
from dualsampler.sampling import KSampler
from dualsampler.tracking import WandbTracker
from dualsampler.upscale import (
    CfgScheduleHook,
    CombinedHook,
    DenoiseScheduleHook,
    NoiseInjectionHook,
    StepsScheduleHook,
    TwoSamplersForMaskUpscaler,
    UpscaleSampler,
    iterative_upscale,
    resize_images,
    upscale_plan,
)

NAN, INF = math.nan, math.inf


class Models:
    """Fresh counting models for one row: `calls` counts denoiser, VAE encoder/decoder and judge calls."""

    def __init__(self, vae: AutoencoderKL, judge: Judge, tmp_path) -> None:
        self.calls = 0
        self.vae, self.judge, self.tmp_path = vae, judge, tmp_path
        self.cfg = 5.0
        self.latent_channels = 4  # what the channel check reads

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.zeros_like(x)

    def count(self, *_) -> None:
        self.calls += 1

    def ksampler(self, sampler: str = "euler") -> KSampler:
        return KSampler(self, sampler, "karras")

    def latent(self, channels: int = 4, size: int = 8) -> torch.Tensor:
        return torch.zeros(1, channels, size, size)

    def mask(self, size: int = 8) -> torch.Tensor:
        return half_mask(size, size)

    def two(self, algorithm, **kwargs):
        """`algorithm(latent, base_sampler, mask_sampler, mask, seed=0, steps=4)` with `kwargs` replacing any."""
        args = dict(base_sampler=self.ksampler(), mask_sampler=self.ksampler(), mask=self.mask(), seed=0, steps=4)
        args.update(kwargs)
        latent = args.pop("latent", self.latent())
        return algorithm(latent, **args)

    def pass_(self, **kwargs) -> UpscaleSampler:
        args = dict(ksampler=self.ksampler(), seed=0, steps=2, denoise=0.5)
        args.update(kwargs)
        return UpscaleSampler(**args)

    def upscaler(self, **kwargs) -> TwoSamplersForMaskUpscaler:
        args = dict(scale_method="bilinear", full_sample_schedule="none", use_tiled_vae=False,
                    base_sampler=self.pass_(), mask_sampler=self.pass_(), mask=self.mask(32), vae=self.vae, tile_size=64)
        args.update(kwargs)
        return TwoSamplersForMaskUpscaler(**args)

    def images(self, size: int = 64, value: float = 0.5) -> torch.Tensor:
        return torch.full((2, 3, size, size), value)

    def metrics(self, **kwargs):
        args = dict(images=self.images(), masks=ellipse_mask(64, 64), base_prompts="red stripes",
                    mask_prompts="blue dots", judge=self.judge)
        args.update(kwargs)
        return compute_metrics(**args)

    def png(self, name: str, data: bytes | None = None) -> str:
        path = self.tmp_path / name
        if data is None:
            Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(path)
        else:
            path.write_bytes(data)
        return str(path)

    def truncated_png(self) -> str:
        whole = (self.tmp_path / "whole.png")
        Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(whole)
        return self.png("truncated.png", whole.read_bytes()[: whole.stat().st_size // 2])


@pytest.fixture(scope="module")
def vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, mid_block_add_attention=False,
    ).eval()


@pytest.fixture(scope="module")
def judge() -> Judge:
    torch.manual_seed(0)
    return Judge()


@pytest.fixture
def models(vae, judge, tmp_path) -> Models:
    m = Models(vae, judge, tmp_path)
    # the judge's stem is the first layer of each of its entry points (features, feature_maps, forward)
    hooks = [module.register_forward_hook(lambda *_: m.count()) for module in (vae.encoder, vae.decoder, judge.stem)]
    yield m
    for hook in hooks:
        hook.remove()


def _dead_claim(m: Models):
    return claim_job(m.tmp_path / "job", timeout=NAN).__enter__()


# (id, call on the counting models, regex the message must match: the parameter's name and its range or values)
ROWS = [
    # masks: shapes, fractions, sizes and files
    ("ellipse rx NaN", lambda m: ellipse_mask(64, 64, rx=NAN), r"rx must be a finite number in \(0, 4\]"),
    ("ellipse ry inf", lambda m: ellipse_mask(64, 64, ry=INF), r"ry must be a finite number in \(0, 4\]"),
    ("ellipse rx negative", lambda m: ellipse_mask(64, 64, rx=-0.1), r"rx must be .* \(0, 4\]"),
    ("ellipse rx zero", lambda m: ellipse_mask(64, 64, rx=0), r"rx must be .* \(0, 4\]"),
    ("ellipse cy NaN", lambda m: ellipse_mask(64, 64, cy=NAN), r"cy must be a finite number in \[-1, 2\]"),
    ("ellipse cx inf", lambda m: ellipse_mask(64, 64, cx=INF), r"cx must be a finite number in \[-1, 2\]"),
    ("ellipse height 0", lambda m: ellipse_mask(0, 64), r"height must be an integer in \[1, 16384\]"),
    ("ellipse width negative", lambda m: ellipse_mask(64, -8), r"width must be an integer in \[1, 16384\]"),
    ("ellipse height 10**6", lambda m: ellipse_mask(10**6, 64), r"height must be an integer in \[1, 16384\]"),
    ("ellipse height 64.5", lambda m: ellipse_mask(64.5, 64), r"height must be an integer"),
    ("rectangle top NaN", lambda m: rectangle_mask(64, 64, NAN, 0, 1, 1), r"top must be a finite number in \[0, 1\]"),
    ("rectangle right inf", lambda m: rectangle_mask(64, 64, 0, 0, 1, INF), r"right must be a finite number in \[0, 1\]"),
    ("rectangle left negative", lambda m: rectangle_mask(64, 64, 0, -0.5, 1, 1), r"left must be .* \[0, 1\]"),
    ("rectangle empty box", lambda m: rectangle_mask(64, 64, 0.6, 0, 0.4, 1), r"top < bottom"),
    ("half side unknown", lambda m: half_mask(64, 64, "middle"), r"side must be one of left, right, top, bottom"),
    ("half width 0", lambda m: half_mask(64, 0), r"width must be an integer in \[1,"),
    ("grow_by NaN", lambda m: grow_mask(m.mask(), 8, 8, NAN), r"grow_by \(overlap_factor\) must be an integer in \[0, 1024\]"),
    ("grow_by inf", lambda m: grow_mask(m.mask(), 8, 8, INF), r"grow_by \(overlap_factor\) must be an integer in \[0,"),
    ("grow_by 10**6", lambda m: grow_mask(m.mask(), 8, 8, 10**6), r"grow_by \(overlap_factor\) .* \[0, 1024\]"),
    ("grow_by negative", lambda m: grow_mask(m.mask(), 8, 8, -1), r"grow_by \(overlap_factor\) must be an integer in \[0,"),
    ("feather NaN", lambda m: feather_mask(m.mask(), NAN), r"radius \(feather\) must be a finite number in \[0, 1024\]"),
    ("feather 1e9", lambda m: feather_mask(m.mask(), 1e9), r"radius \(feather\) .* \[0, 1024\]"),
    ("resize height 0", lambda m: resize_mask(m.mask(), 0, 8), r"height must be an integer in \[1,"),
    ("mask values NaN", lambda m: as_mask_batch(torch.full((4, 4), NAN)), r"mask values must lie in \[0, 1\]"),
    ("load_mask missing file", lambda m: load_mask(m.tmp_path / "nope.png"), r"path must be an existing image file, got '.*nope\.png'"),
    ("load_mask truncated PNG", lambda m: load_mask(m.truncated_png()), r"path '.*truncated\.png' is not a readable image"),
    ("load_mask not an image", lambda m: load_mask(m.png("text.png", b"not a png")), r"path '.*text\.png' is not a readable image"),
    ("load_mask height 0", lambda m: load_mask(m.png("ok.png"), height=0), r"height must be an integer in \[1,"),
    ("load_mask width negative", lambda m: load_mask(m.png("ok.png"), width=-64), r"width must be an integer in \[1,"),
    # upscaler: factor, iterations, tiles, passes and hooks
    ("plan factor NaN", lambda m: upscale_plan(NAN, 2), r"upscale_factor \(upscaler.factor\) must be a finite number in \[1, 16\]"),
    ("plan factor inf", lambda m: upscale_plan(INF, 2), r"upscale_factor \(upscaler.factor\) .* \[1, 16\]"),
    ("plan factor 1000", lambda m: upscale_plan(1000, 2), r"upscale_factor \(upscaler.factor\) .* \[1, 16\]"),
    ("plan factor 0.5", lambda m: upscale_plan(0.5, 2), r"upscale_factor \(upscaler.factor\) .* \[1, 16\]"),
    ("plan iterations 0", lambda m: upscale_plan(2.0, 0), r"steps \(upscaler.iterations\) must be an integer in \[1, 64\]"),
    ("plan iterations 10**6", lambda m: upscale_plan(2.0, 10**6), r"steps \(upscaler.iterations\) .* \[1, 64\]"),
    ("plan step_mode unknown", lambda m: upscale_plan(2.0, 2, "cubic"), r"step_mode must be one of simple, geometric"),
    ("final size past 16384 px", lambda m: iterative_upscale(m.latent(size=512), 16, 1, m.upscaler()),
     r"upscale_factor \(upscaler.factor\)=16 .* <= 16384 px"),
    ("upscale factor NaN", lambda m: m.upscaler().upscale((0, 1), m.latent(), NAN), r"factor must be a finite number in \[1, 16\]"),
    ("tile_size NaN", lambda m: m.upscaler(tile_size=NAN), r"tile_size must be an integer >= 64 .* at most 4096"),
    ("tile_size inf", lambda m: m.upscaler(tile_size=INF), r"tile_size must be an integer >= 64 .* at most 4096"),
    ("tile_size 10**6", lambda m: m.upscaler(tile_size=10**6), r"tile_size .* at most 4096"),
    ("tile_size 48", lambda m: m.upscaler(tile_size=48), r"tile_size must be an integer >= 64"),
    ("use_tiled_vae string", lambda m: m.upscaler(use_tiled_vae="no"), r"use_tiled_vae must be true or false"),
    ("scale_method unknown", lambda m: m.upscaler(scale_method="nearest"), r"scale_method must be one of"),
    ("full_sample_schedule unknown", lambda m: m.upscaler(full_sample_schedule="last3"), r"full_sample_schedule must be one of"),
    ("pass steps 0", lambda m: m.pass_(steps=0), r"steps must be an integer in \[1, 10000\]"),
    ("pass steps 10**7", lambda m: m.pass_(steps=10**7), r"steps must be an integer in \[1, 10000\]"),
    ("pass denoise NaN", lambda m: m.pass_(denoise=NAN), r"denoise must be a finite number in \(0, 1\]"),
    ("pass denoise 1e-9", lambda m: m.pass_(denoise=1e-9), r"denoise must be >= steps / 10000"),
    ("pass cfg NaN", lambda m: m.pass_(cfg=NAN), r"cfg must be a finite number in \[0, 100\]"),
    ("cfg hook target NaN", lambda m: CfgScheduleHook(NAN), r"target_cfg must be a finite number in \[0, 100\]"),
    ("cfg hook target inf", lambda m: CfgScheduleHook(INF), r"target_cfg must be a finite number in \[0, 100\]"),
    ("cfg hook target negative", lambda m: CfgScheduleHook(-1.0), r"target_cfg .* \[0, 100\]"),
    ("denoise hook target 0", lambda m: DenoiseScheduleHook(0.0), r"target_denoise must be a finite number in \(0, 1\]"),
    ("denoise hook target NaN", lambda m: DenoiseScheduleHook(NAN), r"target_denoise .* \(0, 1\]"),
    ("denoise hook target 1.5", lambda m: DenoiseScheduleHook(1.5), r"target_denoise .* \(0, 1\]"),
    ("steps hook target 0", lambda m: StepsScheduleHook(0), r"target_steps must be an integer in \[1, 10000\]"),
    ("steps hook target 10**9", lambda m: StepsScheduleHook(10**9), r"target_steps .* \[1, 10000\]"),
    ("noise hook start NaN", lambda m: NoiseInjectionHook(0, NAN, 0.0), r"start_strength must be a finite number in \[0, 100\]"),
    ("noise hook end inf", lambda m: NoiseInjectionHook(0, 0.1, INF), r"end_strength must be a finite number in \[0, 100\]"),
    ("noise hook seed negative", lambda m: NoiseInjectionHook(-1, 0.1, 0.0), r"seed must be an int in \[0, 2\*\*64\)"),
    ("combined hook not a hook", lambda m: CombinedHook(CfgScheduleHook(3.0), "denoise"), r"hook2 must be an UpscaleHook"),
    ("resize height 0 px", lambda m: resize_images(m.images(), 0, 16, "bilinear"), r"height must be an integer in \[1,"),
    ("resize width NaN", lambda m: resize_images(m.images(), 16, NAN, "bilinear"), r"width must be an integer in \[1,"),
    ("upscaler config factor NaN", lambda m: UpscaleSpec(factor=NAN), r"upscale_factor \(upscaler.factor\) .* \[1, 16\]"),
    ("upscaler config tile_size inf", lambda m: UpscaleSpec(tile_size=INF), r"tile_size must be an integer >= 64"),
    ("upscaler config steps 10**6", lambda m: UpscaleSpec(steps=10**6), r"steps must be an integer in \[1, 10000\]"),
    ("upscaler config denoise 1e-9", lambda m: UpscaleSpec(denoise=1e-9), r"denoise must be >= steps / 10000"),
    ("upscaler config iterations 0", lambda m: UpscaleSpec(iterations=0), r"steps \(upscaler.iterations\) .* \[1, 64\]"),
    # metrics: prompts the judge cannot read, canvases too small for it, bad settings
    ("metrics unknown prompt word", lambda m: m.metrics(mask_prompts="purple unicorns"), r"mask_prompts: .*'unicorns' is unknown"),
    ("metrics prompt without pattern", lambda m: m.metrics(base_prompts="red"), r"base_prompts: .*must name one color and one pattern"),
    ("metrics canvas 16 px with judge", lambda m: m.metrics(images=m.images(16), masks=ellipse_mask(16, 16)),
     r"images must be at least 32 px on each side"),
    ("metrics band_width 0", lambda m: m.metrics(band_width=0), r"band_width must be an integer in \[1, 4096\]"),
    ("metrics band_width 10**9", lambda m: m.metrics(band_width=10**9), r"band_width must be an integer in \[1, 4096\]"),
    ("metrics batch_size 0", lambda m: m.metrics(batch_size=0), r"batch_size must be an integer in \[1, 4096\]"),
    ("metrics images NaN", lambda m: m.metrics(images=m.images(value=NAN)), r"images values must lie in \[0, 1\]"),
    ("metrics fid_features unknown", lambda m: m.metrics(fid_features="clip"), r"fid_features must be one of"),
    ("metrics mask size mismatch", lambda m: m.metrics(masks=ellipse_mask(48, 48)), r"masks size must be the image size"),
    ("kid subsets 10**9", lambda m: kernel_distance("judge", m.judge, subsets=10**9), r"subsets must be an integer in \[1, 10000\]"),
    ("kid subsets 0", lambda m: kernel_distance("judge", m.judge, subsets=0), r"subsets must be an integer in \[1,"),
    # devices, tracker, job claim
    ("device gpu", lambda m: check_device("gpu"), r"device must be one of cpu, cuda, cuda:N \(N a GPU index\), mps; got 'gpu'"),
    ("device cuda:", lambda m: check_device("cuda:"), r"device must be one of cpu, cuda, cuda:N .*; got 'cuda:'"),
    ("device integer", lambda m: check_device(0), r"device must be one of cpu, cuda, cuda:N .*; got 0"),
    ("device cpu:0", lambda m: check_device("cpu:0"), r"device must be one of .*; got 'cpu:0'"),
    ("logger mode unknown", lambda m: WandbTracker(mode="sometimes"), r"logger.mode must be one of auto, online, offline, disabled"),
    ("logger init_timeout NaN", lambda m: WandbTracker(init_timeout=NAN), r"logger.init_timeout must be .* \(0, 600\]"),
    ("logger init_timeout 0", lambda m: WandbTracker(init_timeout=0), r"logger.init_timeout must be .* \(0, 600\]"),
    ("claim timeout NaN", _dead_claim, r"timeout must be None or a number of seconds >= 0"),
    # region samplers and sampling (the lead's dual/ and H2/H7's sampling/): rows the issue lists
    ("latent with 3 channels", lambda m: m.two(Alternate(), latent=m.latent(channels=3)), r"latent has 3 channels but base_sampler's model expects 4"),
    ("base_sampler None", lambda m: m.two(Alternate(), base_sampler=None), r"base_sampler must be a dualsampler.sampling.KSampler"),
    ("mask_sampler None", lambda m: m.two(Fused(), mask_sampler=None), r"mask_sampler must be a dualsampler.sampling.KSampler"),
    ("mask_steps 0", lambda m: two_samplers_for_mask(m.latent(), m.ksampler(), m.ksampler(), m.mask(), 0, 4, mask_steps=0),
     r"mask_steps: steps must be an integer in \[1,"),
    ("mask_denoise NaN", lambda m: m.two(WholeRun(), mask_denoise=NAN), r"mask_denoise: denoise must be a finite number in \(0, 1\]"),
    ("base_only_steps > steps", lambda m: m.two(Regional(base_only_steps=5), steps=4), r"base_only_steps"),
    ("overlap_factor NaN", lambda m: Alternate(overlap_factor=NAN), r"overlap_factor must be an integer in \[0,"),
    ("overlap_factor inf", lambda m: Fused(overlap_factor=INF), r"overlap_factor must be an integer in \[0,"),
    ("feather NaN in fused", lambda m: Fused(feather=NAN), r"feather must be a finite number in \[0, 64\]"),
    ("sampler config cfg NaN", lambda m: SamplerSpec("euler", "karras", NAN, "red dots"), r"cfg must be a finite number in \[0, 100\]"),
    ("sampler config cfg inf", lambda m: SamplerSpec("euler", "karras", INF, "red dots"), r"cfg must be a finite number in \[0, 100\]"),
    ("sampler config name unknown", lambda m: SamplerSpec("eulerr", "karras", 3.0, "red dots"), r"sampler must be one of"),
    ("seed negative", lambda m: m.two(Alternate(), seed=-1), r"seed must be an int in \[0, 2\*\*64\)"),
    ("seed 2**64", lambda m: m.two(Alternate(), seed=2**64), r"seed must be an int in \[0, 2\*\*64\)"),
    ("steps 0", lambda m: m.two(Alternate(), steps=0), r"steps must be an integer in \[1,"),
    ("denoise NaN", lambda m: m.two(Alternate(), denoise=NAN), r"denoise must be a finite number in \(0, 1\]"),
    ("latent NaN", lambda m: m.two(Alternate(), latent=torch.full((1, 4, 8, 8), NAN)), r"latent contains NaN"),
    ("mask of another size", lambda m: m.two(Alternate(), mask=half_mask(12, 12)), r"mask of size 12x12 does not match"),
]


def assert_refused_before_any_model_call(models: Models, call, message: str) -> None:
    """`call(models)` raises a ValueError matching `message` and no counting model was called."""
    with pytest.raises(ValueError) as error:
        call(models)
    assert re.search(message, str(error.value)), str(error.value)
    assert models.calls == 0


@pytest.mark.parametrize("call, message", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_a_bad_value_is_refused_before_any_model_call_naming_the_parameter(models, call, message):
    assert_refused_before_any_model_call(models, call, message)


def test_the_counting_models_count_a_valid_call_of_each(models):
    models.two(Alternate(overlap_factor=1), steps=1)
    sampled = models.calls
    models.upscaler().decode(models.latent())
    decoded = models.calls
    models.metrics(references=models.images())
    assert 0 < sampled < decoded < models.calls


def test_the_table_holds_at_least_sixty_bad_values():
    assert len(ROWS) >= 60 and len({row[0] for row in ROWS}) == len(ROWS)


def test_an_overlap_covering_the_whole_canvas_warns_before_sampling(models):
    with pytest.warns(UserWarning, match="overlap_factor: the grown mask covers the whole canvas"):
        models.two(Alternate(overlap_factor=40), steps=1)


def test_a_16_bit_png_mask_keeps_its_values(tmp_path):
    values = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    Image.fromarray(values).save(tmp_path / "mask16.png")
    mask = load_mask(tmp_path / "mask16.png")
    assert torch.allclose(mask[0, 0, 0], torch.tensor([0, 16384, 32768, 65535]) / 65535.0)


# Values that would ask for gigabytes if unchecked run in a child process whose address space is capped at 1 GiB
# above what its imports use: an unbounded one fails with a MemoryError there instead of filling the machine.
CAPPED = textwrap.dedent("""
    import re, resource, sys
    import torch
    from dualsampler.sampling import KSampler
    from dualsampler.sampling.schedules import get_sigmas

    used = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    cap = used + 2**30 if hard == resource.RLIM_INFINITY else min(used + 2**30, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    calls = []
    sampler = KSampler(lambda x, s: calls.append(1) or torch.zeros_like(x), "euler", "karras")
    try:
        {call}
    except ValueError as error:
        print("VALUE_ERROR", calls == [], error)
    except BaseException as error:
        print("OTHER", type(error).__name__, error)
""")


@pytest.mark.slow  # each case starts a child process
@pytest.mark.parametrize(
    "call, message",
    [("sampler.sample(torch.zeros(1, 4, 8, 8), 0, 20, denoise=1e-9)", r"denoise"),
     ("get_sigmas('karras', 10**9)", r"steps must be an integer")],
    ids=["denoise 1e-9 in KSampler.sample", "get_sigmas steps 10**9"],
)
def test_a_value_asking_for_gigabytes_is_refused_before_allocating(call, message):
    done = subprocess.run([sys.executable, "-c", CAPPED.format(call=call)], capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("VALUE_ERROR True"), done.stdout + done.stderr[-2000:]
    assert re.search(message, done.stdout), done.stdout

"""Small, fast versions of the tiny world's quality bars (full bars: scripts/evaluate_world.py)."""
import pytest
import torch
import torch.nn.functional as F

from dualsampler.dual import two_samplers_for_mask
from dualsampler.masks import half_mask
from dualsampler.models import load_world
from dualsampler.sampling import KSampler
from dualsampler.world import COLORS, PATTERNS, PROMPTS, parse_prompt, render_composite, render_texture

HELD_OUT = 1_500_000_000  # training seeds are < 1e6


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((10 * torch.log10(1 / (a - b).pow(2).flatten(1).mean(1))).mean())


@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    return load_world()


def held_out(prompts, size, per_prompt=1):
    images = [render_texture(p, size, size, HELD_OUT + 97 * i + j) for i, p in enumerate(prompts) for j in range(per_prompt)]
    return torch.stack(images), [p for p in prompts for _ in range(per_prompt)]


def read_back(judge, images, prompts):
    color_logits, pattern_logits = judge(images)
    pairs = [parse_prompt(p) for p in prompts]
    colors = torch.tensor([COLORS.index(c) for c, _ in pairs])
    patterns = torch.tensor([PATTERNS.index(p) for _, p in pairs])
    return (color_logits.argmax(1) == colors).float(), (pattern_logits.argmax(1) == patterns).float()


def test_vae_reconstructs_held_out_textures(world):
    images, _ = held_out(PROMPTS[::3], 64)
    assert psnr(world.decode(world.encode(images)), images) >= 26.0


def sides(images):
    """Left and right 3/8 of the images: the outside and inside of a right-half mask, away from the seam."""
    width = images.shape[-1]
    return images[..., : width * 3 // 8], images[..., width * 5 // 8 :]


DIAGONAL = [f"{color} {pattern}" for color, pattern in zip(COLORS, PATTERNS)]
PAIRS = [(DIAGONAL[i], DIAGONAL[(i + 3) % 6]) for i in range(6)]  # every color and pattern once on each side
DUAL_CFG = 3.0  # the world's two-region CFG (conf/sampler/_spec.yaml); at 5 the guidance pushes each region's color away from its neighbour's


def test_vae_keeps_the_colors_of_two_regions_apart(world):
    mask = half_mask(96, 96, "right")
    images = torch.stack([render_composite(a, b, mask, HELD_OUT + s) for a, b in PAIRS[:3] for s in range(2)])
    outside, inside = sides(world.decode(world.encode(images)))
    assert read_back(world.judge, outside, [a for a, _ in PAIRS[:3] for _ in range(2)])[0].mean() == 1.0
    assert read_back(world.judge, inside, [b for _, b in PAIRS[:3] for _ in range(2)])[0].mean() == 1.0


@pytest.mark.slow
def test_dual_sampled_images_show_a_prompt_in_each_region(world):
    mask = half_mask(96, 96, "right")
    outside, inside = [], []
    for a, b in PAIRS:
        base, inside_sampler = KSampler(world.denoiser(a, cfg=DUAL_CFG)), KSampler(world.denoiser(b, cfg=DUAL_CFG))
        latent = two_samplers_for_mask(torch.zeros(2, 4, 24, 24), base, inside_sampler, mask, [0, 1], 12)
        left, right = sides(world.decode(latent))
        outside.append(read_back(world.judge, left, [a, a]))
        inside.append(read_back(world.judge, right, [b, b]))
    for region in (outside, inside):
        color_ok = torch.cat([c for c, _ in region])
        joint_ok = torch.cat([c * p for c, p in region])
        assert color_ok.mean() >= 0.8 and joint_ok.mean() >= 0.6  # measured 0.92-1.0 and 0.75-1.0 over seed pairs


def test_judge_reads_held_out_textures(world):
    images, prompts = held_out(PROMPTS, 64, per_prompt=2)
    color_ok, pattern_ok = read_back(world.judge, images, prompts)
    assert color_ok.mean() >= 0.95 and pattern_ok.mean() >= 0.9


def test_upscaler_beats_bicubic(world):
    images, _ = held_out(PROMPTS[::4], 64)
    low = F.avg_pool2d(images, 2)
    bicubic = F.interpolate(low, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    assert psnr(world.upscaler(low), images) >= psnr(bicubic, images) + 1.0


@pytest.mark.slow
def test_generated_images_show_their_prompt(world):
    prompts = ["red stripes", "blue checker", "yellow dots"]
    images = torch.cat([world.generate(p, seeds=[0, 1, 2, 3], height=64, width=64, steps=12, cfg=5.0) for p in prompts])
    color_ok, pattern_ok = read_back(world.judge, images, [p for p in prompts for _ in range(4)])
    assert color_ok.mean() >= 0.9 and (color_ok * pattern_ok).mean() >= 0.6

"""Stable Diffusion models through everything a sweep uses: every region algorithm, the iterative upscaler with a
tiled VAE, and `dualsampler-run model=diffusers` end to end with resume, on the tiny folders of sd_fixtures.

The command lines run the Hydra app in the test process (`run_app`); the resume check's relaunch is a real
process, so a result written by one process is what another one skips."""

import inspect
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from dualsampler.dual import ALGORITHMS
from dualsampler.masks import rectangle_mask
from dualsampler.models import load_model
from dualsampler.sampling import KSampler
from run_app import run_app

MASK = rectangle_mask(16, 16, 0.25, 0.25, 0.75, 0.75)


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def model(request, sd_models):
    return load_model(getattr(sd_models, request.param))


def samplers(model):
    base = KSampler(model.denoiser("blue", cfg=4.0), "euler", "karras", model.model_sampling)
    inside = KSampler(model.denoiser("red dots", cfg=4.0), "dpmpp_2m", "karras", model.model_sampling)
    return base, inside


def small_overlap(cls) -> dict:
    """overlap_factor 2 (of a 16-cell latent) for the algorithms that grow the mask."""
    return {"overlap_factor": 2} if "overlap_factor" in inspect.signature(cls).parameters else {}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_region_algorithm_samples_a_stable_diffusion_latent(model, name):
    base, inside = samplers(model)
    algorithm = ALGORITHMS[name](**small_overlap(ALGORITHMS[name]))
    out = algorithm(torch.zeros(1, 4, 16, 16), base_sampler=base, mask_sampler=inside, mask=MASK, seed=0, steps=2)
    assert out.shape == (1, 4, 16, 16) and out.dtype == torch.float32 and torch.isfinite(out).all()


def test_fused_runs_one_forward_of_both_prompts_and_the_shared_negative(model):
    base, inside = samplers(model)
    inside = KSampler(inside.denoiser, "euler", "karras", model.model_sampling)
    batches = []
    hook = model.unet.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    try:
        ALGORITHMS["fused"](overlap_factor=2)(torch.zeros(1, 4, 16, 16), base_sampler=base, mask_sampler=inside, mask=MASK, seed=0, steps=3)
    finally:
        hook.remove()
    assert batches == [3, 3, 3]


def test_the_iterative_upscaler_runs_on_a_stable_diffusion_vae_tiled(model):
    from dualsampler.runner.specs import SamplerSpec
    from dualsampler.runner.upscaling import UpscaleSpec

    specs = {role: SamplerSpec(sampler="euler", scheduler="karras", cfg=3.0, prompt=prompt)
             for role, prompt in (("base", "blue"), ("mask", "red dots"))}
    built = {role: (spec, spec.build(model)) for role, spec in specs.items()}
    upscale = UpscaleSpec(iterations=1, steps=2, use_tiled_vae=True, tile_size=64).build(model, built, MASK)
    out = upscale(torch.randn(1, 4, 16, 16), [0])
    assert out.shape == (1, 4, 32, 32) and torch.isfinite(out).all()


def cli_env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")


def run_cli(*overrides, cwd):
    """`python -m dualsampler.run <overrides>` in a fresh process."""
    env = cli_env()
    return subprocess.run([sys.executable, "-m", "dualsampler.run", *overrides], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_dualsampler_run_on_a_diffusers_folder_resumes_until_the_weights_change(sd_models, tmp_path):
    folder = tmp_path / "sd15"
    shutil.copytree(sd_models.sd15, folder)
    args = ["model=diffusers", f"model.path={folder}", "seeds=2", "steps=2", "height=32", "width=32", "logger=none",
            "name=sd", f"hydra.run.dir={tmp_path / 'job'}"]
    first = run_app(*args, multirun=False, env=cli_env(), cwd=tmp_path)  # the runner logs to stdout
    assert first.returncode == 0, first.stderr[-3000:]
    result_file = tmp_path / "job" / "result.json"
    result = json.loads(result_file.read_text())
    assert result["weights"] and "seam/color_jump" in result["metrics"]
    assert not any(k.startswith("region_accuracy") for k in result["metrics"])  # no judge for SD: absent, not 0
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "skipping" in again.stdout
    unet = load_model(folder).unet
    with torch.no_grad():
        unet.conv_out.bias.add_(0.5)
    unet.save_pretrained(folder / "unet")
    changed = run_app(*args, multirun=False, env=cli_env(), cwd=tmp_path)
    assert changed.returncode == 0 and "skipping" not in changed.stdout
    assert json.loads(result_file.read_text())["weights"] != result["weights"]


@pytest.mark.slow
def test_dualsampler_run_on_a_single_file_checkpoint_with_a_config_folder(sd_models, tmp_path):
    args = ["model=diffusers", f"model.path={sd_models.sd15_checkpoint}", f"model.config={sd_models.sd15}",
            "model.dtype=bfloat16", "dual=fused", "seeds=1", "steps=2", "height=32", "width=32", "logger=none",
            f"hydra.run.dir={tmp_path / 'job'}"]
    done = run_app(*args, multirun=False, env=cli_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "job" / "images" / "seed0.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("model_args", [["model=random_world"], ["model=diffusers", "model.path=SD15"]],
                         ids=["world", "sd15"])
def test_dual_selects_each_blending_method_on_the_command_line(sd_models, tmp_path, model_args):
    methods = ["multidiffusion", "mixture_of_diffusers", "soft_inpainting", "differential_diffusion"]
    model_args = [a.replace("SD15", str(sd_models.sd15)) for a in model_args]
    done = run_app(*model_args, f"dual={','.join(methods)}", "overlap_factor=1", "seeds=1", "steps=2",
                   "height=32", "width=32", "metrics=seams", "logger=none", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                   env=cli_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in (tmp_path / "sweep").rglob("result.json")]
    assert sorted(r["dual"]["algorithm"] for r in results) == sorted(methods)
    assert all(r["trace"]["share_at_sigma0"] == 1.0 and r["trace"]["skipped_pixels"] == 0 for r in results)

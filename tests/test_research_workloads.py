"""Research workloads through `dualsampler-run` (issue 20): jobs that start from given images, data sets of prompts
and masks with 1-3 regions, `regions` lists in a config, and one model load per worker for a whole sweep.

Every command line runs the Hydra app in this process (`run_app`) on the world (random weights where the test is
about the plumbing, trained where it measures images) or on the tiny Stable Diffusion folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dualsampler.masks import ellipse_mask, grow_mask
from dualsampler.models.source import ModelSource
from dualsampler.runner.images import to_pil
from dualsampler.runner.inputs import load_image
from dualsampler.runner.manifest import WORLD_MANIFEST
from dualsampler.runner.model_cache import clear_models
from dualsampler.world.textures import render_texture
from helpers import offline_table
from run_app import run_app

QUICK = ["logger=none", "seeds=2", "steps=4"]


def results(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("result.json"))]


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    """Peak signal-to-noise ratio (dB, peak 1) of two images over the pixels where `where` is 1."""
    mse = ((a - b) ** 2 * where).sum() / (where.sum() * a.shape[0])
    return float(10 * torch.log10(1 / mse))


@pytest.fixture
def texture_folder(tmp_path) -> Path:
    """Two world textures of the job's base prompt as PNG input images, one 160 x 128 (centre-cropped)."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    to_pil(render_texture("blue stripes", 128, 128, 0)).save(folder / "a.png")
    to_pil(render_texture("blue stripes", 128, 160, 1)).save(folder / "b.png")
    return folder


def test_input_images_are_refined_and_kept_outside_the_grown_mask(texture_folder, tmp_path):
    done = run_app("input=image", f"input.path={texture_folder}", "denoise=0.5", "dual=fused", *QUICK,
                   multirun=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (result,) = results(tmp_path / "runs")
    assert [(row["item"], row["seed"]) for row in result["per_seed"]] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    job = next((tmp_path / "runs").rglob("result.json")).parent
    outside = 1 - grow_mask(ellipse_mask(128, 128, ry=0.3, rx=0.3), 128, 128, 4 * 4 + 8)[0, 0]
    for item in ("a", "b"):
        given = load_image(texture_folder / f"{item}.png", 128, 128)
        for seed in (0, 1):
            out = load_image(job / "images" / item / f"seed{seed}.png", 128, 128)
            assert psnr(out, given, outside) > 18.0
            assert psnr(out, given, 1 - outside) < psnr(out, given, outside)  # the inside was re-sampled
    assert len(result["inputs"]) == 16  # the images' fingerprint: changed images are sampled again
    assert result["metrics"]["background/psnr"] > 18.0 and 0 < result["metrics"]["background/ssim"] <= 1
    assert all("background/psnr" in row for row in result["per_seed"])


def test_an_input_image_is_what_the_upscaler_upscales(texture_folder, tmp_path):
    done = run_app("input=image", f"input.path={texture_folder / 'a.png'}", "upscaler=two_samplers",
                   "upscaler.iterations=1", "upscaler.steps=2", "model=random_world", "metrics=seams", *QUICK,
                   multirun=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (result,) = results(tmp_path / "runs")
    job = next((tmp_path / "runs").rglob("result.json")).parent
    assert load_image(job / "images" / "a" / "seed0.png", 256, 256).shape == (3, 256, 256)
    assert "absent" in result["trace"]
    assert "steps" not in result["config"] and "dual" not in result["config"]  # no region-sampler run acts


def test_a_manifest_runs_every_item_for_every_seed_with_its_regions(tmp_path):
    done = run_app("data=manifest", f"data.path={WORLD_MANIFEST}", "model=random_world", "seeds=1", "steps=2",
                   "logger=none", multirun=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (result,) = results(tmp_path / "runs")
    job = next((tmp_path / "runs").rglob("result.json")).parent
    items = [json.loads(line) for line in WORLD_MANIFEST.read_text().splitlines() if line.strip()]
    assert [row["item"] for row in result["per_seed"]] == [item["id"] for item in items]
    for row, item in zip(result["per_seed"], items):
        per_region = {key for key in row if key.startswith("seam/gradient_ratio/region")}
        assert len(per_region) == (len(item["regions"]) if len(item["regions"]) > 1 else 0)
        assert (job / row["image"]).is_file()
    assert sorted({len(item["regions"]) for item in items}) == [1, 2, 3]


def test_a_manifest_runs_on_a_stable_diffusion_folder(sd_models, tmp_path):
    (tmp_path / "masks").mkdir()
    to_pil(ellipse_mask(32, 32, cx=0.3, rx=0.2)[0].expand(3, -1, -1)).save(tmp_path / "masks" / "left.png")
    lines = [{"id": "one", "prompt": "a hill", "regions": [{"mask": {"shape": "half"}, "prompt": "a red dot"}]},
             {"id": "two", "prompt": "sky", "negative_prompt": "blur",
              "regions": [{"mask": "masks/left.png", "prompt": "a cat", "cfg": 2.0},
                          {"mask": {"shape": "ellipse", "cx": 0.75, "rx": 0.2}, "prompt": "a dog"}]},
             {"id": "three", "prompt": "sea", "regions": [
                 {"mask": {"shape": "rectangle", "top": 0.0, "bottom": 0.4, "left": 0.0, "right": 1.0}, "prompt": "a"},
                 {"mask": {"shape": "rectangle", "top": 0.4, "bottom": 0.7, "left": 0.0, "right": 1.0}, "prompt": "b"},
                 {"mask": {"shape": "rectangle", "top": 0.7, "bottom": 1.0, "left": 0.0, "right": 1.0}, "prompt": "c"}]}]
    manifest = tmp_path / "items.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = run_app("model=diffusers", f"model.path={sd_models.sd15}", "data=manifest", f"data.path={manifest}",
                   "height=32", "width=32", "metrics=seams", "dual=regional", *QUICK, multirun=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (result,) = results(tmp_path / "runs")
    assert [(row["item"], row["seed"]) for row in result["per_seed"]] == [
        (i, s) for i in ("one", "two", "three") for s in (0, 1)]
    assert [item["regions"] for item in result["items"]] == [1, 2, 3]


def test_a_bad_manifest_line_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    manifest = tmp_path / "items.jsonl"
    manifest.write_text('{"id": "a", "prompt": "blue stripes", "regions": [{"mask": {"shape": "half"}, '
                        '"prompt": "red dots"}]}\n{"id": "b", "prompt": "blue stripes", "regions": []}\n')
    monkeypatch.setattr(ModelSource, "load", lambda *a, **k: pytest.fail("the model loaded"))
    clear_models()
    done = run_app("data=manifest", f"data.path={manifest}", *QUICK, multirun=False, cwd=tmp_path)
    assert done.returncode == 1
    assert "line 2" in done.stdout + done.stderr and "regions" in done.stdout + done.stderr
    assert not list((tmp_path / "runs").rglob("result.json"))


def test_regions_from_a_config_sample_three_regions_with_their_own_samplers(tmp_path):
    regions = ("regions=[{mask:{shape:ellipse,cx:0.25,cy:0.3,rx:0.2,ry:0.2},prompt:'red dots'},"
               "{mask:{shape:ellipse,cx:0.75,cy:0.3,rx:0.2,ry:0.2},prompt:'green waves',sampler:heun},"
               "{mask:{shape:rectangle,top:0.65,bottom:0.95,left:0.2,right:0.8},prompt:'yellow checker',cfg:2.0}]")
    done = run_app(regions, "dual=alternate,regional,fused,multidiffusion", "model=random_world", *QUICK,
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = results(tmp_path / "runs")
    assert len(found) == 4
    for result in found:
        assert {"region_accuracy/region0", "region_accuracy/region2", "seam/gradient_ratio/region1"} <= (
            set(result["metrics"]) | set(result["absent"]))
        assert "mask" not in result["config"]  # the regions replace it


def test_a_six_job_sweep_loads_the_model_once(tmp_path, monkeypatch):
    loads = []
    original = ModelSource.load

    def counting(self, device="cpu"):
        loads.append(self)
        return original(self, device)

    monkeypatch.setattr(ModelSource, "load", counting)
    clear_models()
    done = run_app("overlap_factor=0,1,2,3,4,5", "model=random_world", "metrics=seams", "height=32", "width=32",
                   *QUICK, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = results(tmp_path / "runs")
    assert len(found) == 6 and len(loads) == 1
    assert sorted(r["model_reused"] for r in found) == [False] + [True] * 5
    assert all(r["timings"]["load_s"] >= 0 for r in found)


def test_input_images_and_a_regions_list_run_on_a_stable_diffusion_folder(sd_models, texture_folder, tmp_path):
    regions = ("regions=[{mask:{shape:half,side:left},prompt:'a cat'},"
               "{mask:{shape:rectangle,top:0.0,bottom:0.5,left:0.5,right:1.0},prompt:'a dog',sampler:heun}]")
    done = run_app("model=diffusers", f"model.path={sd_models.sd15}", "input=image", f"input.path={texture_folder}",
                   regions, "denoise=0.5", "height=32", "width=32", "metrics=seams", "dual=fused", *QUICK,
                   multirun=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (result,) = results(tmp_path / "runs")
    assert [(row["item"], row["seed"]) for row in result["per_seed"]] == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert {"seam/gradient_ratio/region0", "seam/gradient_ratio/region1"} <= set(result["metrics"])
    assert [item["regions"] for item in result["items"]] == [2, 2]


def test_a_job_is_recomputed_when_its_input_files_change_and_skipped_when_they_do_not(tmp_path):
    manifest = tmp_path / "items.jsonl"
    line = {"id": "a", "prompt": "blue stripes", "regions": [{"mask": {"shape": "half"}, "prompt": "red dots"}]}
    manifest.write_text(json.dumps(line) + "\n")
    args = ["data=manifest", f"data.path={manifest}", "model=random_world", "metrics=seams", "height=32", "width=32",
            "seeds=1", "steps=2", "logger=none", "name=resume"]

    def launch() -> dict:
        assert run_app(*args, multirun=False, cwd=tmp_path).returncode == 0
        (result,) = results(tmp_path / "runs")
        return result

    first = launch()
    assert launch()["timings"] == first["timings"]  # the same files: the finished result is kept
    line["regions"][0]["prompt"] = "green waves"
    manifest.write_text(json.dumps(line) + "\n")
    changed = launch()
    assert changed["inputs"] != first["inputs"] and changed["timings"] != first["timings"]
    assert changed["config"] == first["config"]  # the same configuration, other files: recomputed in place


@pytest.mark.slow  # a real `dualsampler-run` process with W&B's service (seconds)
def test_a_data_set_job_logs_one_wandb_table_row_per_image_offline(tmp_path):
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, "HOME": str(home),
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    manifest = tmp_path / "items.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in [
        {"id": "one", "prompt": "blue stripes", "regions": [{"mask": {"shape": "half"}, "prompt": "red dots"}]},
        {"id": "two", "prompt": "green grid", "regions": [{"mask": {"shape": "half", "side": "left"}, "prompt":
                                                           "red dots"}, {"mask": {"shape": "rectangle", "left": 0.6},
                                                                         "prompt": "yellow waves"}]}]))
    done = subprocess.run([sys.executable, "-m", "dualsampler.run", "data=manifest", f"data.path={manifest}",
                           "model=random_world", "metrics=seams", "height=32", "width=32", "seeds=2", "steps=2",
                           "logger=wandb", "logger.mode=offline", f"hydra.run.dir={tmp_path / 'job'}"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "job" / "result.json").read_text())
    assert result["tracker"]["ok"], result["tracker"]
    table, files = offline_table(next((tmp_path / "job" / "wandb").glob("offline-run-*/run-*.wandb")), env)
    assert table["columns"][:3] == ["item", "seed", "image"]
    assert [row[:2] for row in table["data"]] == [["one", 0], ["one", 1], ["two", 0], ["two", 1]]
    assert [row[2]["caption"] for row in table["data"]] == ["one seed 0", "one seed 1", "two seed 0", "two seed 1"]
    assert {row[2]["path"] for row in table["data"]} <= files
    assert all("regions" in row[2]["masks"] for row in table["data"])  # each image with its item's region overlay

"""What a job is (issue 19, part 1): each region algorithm declares the settings it consumes, and a job's folder,
resume comparison and recorded config hold what acts on it and nothing else."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from hydra import compose, initialize_config_dir

from dualsampler.dual import ALGORITHMS, Alternate, Regional
from dualsampler.dual.base import RegionRun
from dualsampler.masks import ellipse_mask, grow_mask, rectangle_mask, resize_mask
from dualsampler.run import CONF_DIR
from dualsampler.runner.identity import (BASE_JOB_DIR, CONSUMABLE, differing_keys, inert_keys, job_identity,
                                         job_name)
from dualsampler.runner.upscaling import UpscaleSpec
from dualsampler.sampling import KSampler

from helpers import GaussianData
from run_app import run_app

TINY = ["model=random_world", "steps=2", "seeds=1", "batch_size=1", "height=64", "width=64", "metrics=seams",
        "logger=none"]


def compose_job(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run_algorithm(name: str, changed: str | None = None) -> torch.Tensor:
    """The algorithm `name` on analytic denoisers (base N(-1, 0.3^2), region N(1, 0.3^2)), 8x8 latent, a disc mask
    at image size, with one consumable job setting `changed` from its default."""
    cls = ALGORITHMS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    algorithm = cls(**({"overlap_factor": 3 if changed == "overlap_factor" else 1} if "overlap_factor" in fields else {}))
    schedule = {"sampler": "euler", "scheduler": "normal"}
    base_schedule, mask_schedule = dict(schedule), dict(schedule)
    if changed is not None and changed != "overlap_factor":
        group, key = changed.split(".")
        target = base_schedule if group == "base_sampler" else mask_schedule
        target[key] = "heun" if key == "sampler" else "karras"
    base = KSampler(GaussianData(mu=-1.0, std=0.3), **base_schedule)
    inside = KSampler(GaussianData(mu=1.0, std=0.3), **mask_schedule)
    return algorithm(torch.zeros(1, 4, 8, 8), base_sampler=base, mask_sampler=inside, mask=ellipse_mask(32, 32),
                     seed=3, steps=4)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_each_algorithm_declares_exactly_the_sampler_settings_that_act_on_it(name):
    consumes = ALGORITHMS[name].consumes
    default = run_algorithm(name)
    for key in ("base_sampler.sampler", "base_sampler.scheduler", "mask_sampler.sampler", "mask_sampler.scheduler"):
        acted = not torch.equal(run_algorithm(name, key), default)
        assert acted == (key in consumes), f"{name}: {key} {'acts' if acted else 'does not act'}"
    has_overlap = "overlap_factor" in {f.name for f in dataclasses.fields(ALGORITHMS[name])}
    assert has_overlap == ("overlap_factor" in consumes)
    if has_overlap:
        assert not torch.equal(run_algorithm(name, "overlap_factor"), default)


def test_one_trajectory_ignores_the_mask_samplers_schedule_and_whole_run_the_overlap():
    one_trajectory = {"fused", "multidiffusion", "mixture_of_diffusers", "soft_inpainting", "differential_diffusion"}
    for name in one_trajectory:
        assert inert_keys(ALGORITHMS[name].consumes) >= {"mask_sampler.sampler", "mask_sampler.scheduler"}
    assert "overlap_factor" in inert_keys(ALGORITHMS["whole_run"].consumes)
    assert inert_keys(ALGORITHMS["alternate"].consumes) == {f"{g}.{k}" for g in ("base_sampler", "mask_sampler")
                                                             for k in ("steps", "denoise")}
    assert inert_keys(ALGORITHMS["fused"].consumes, UpscaleSpec.consumes) == set()  # the upscaler's passes read them


def test_regional_grows_masks_in_latent_pixels_like_every_algorithm_upstreams_unit_on_request():
    """A right-half mask given at the latent's size and at the image's (4x) grows by the same latent band, as in
    `Alternate`; upstream's unit (`overlap_at_mask_resolution`) grows the image-size mask 4x less."""
    latent = torch.zeros(1, 4, 8, 16)
    at_latent, at_image = rectangle_mask(8, 16, 0, 0.5, 1, 1), rectangle_mask(32, 64, 0, 0.5, 1, 1)
    sampler = KSampler(GaussianData(), "euler")

    def grown(algorithm: Regional, mask: torch.Tensor) -> torch.Tensor:
        run = RegionRun(latent, sampler, (), 0, 4, 1.0, 4, 0, None)
        return algorithm.grown(run, mask)

    for mask in (at_latent, at_image):
        assert torch.equal(grown(Regional(4), mask), grow_mask(at_latent, 8, 16, 4).expand(1, 1, 8, 16))
    assert torch.equal(grow_mask(at_latent, 8, 16, 4), grow_mask(at_image, 8, 16, 4))  # Alternate's unit
    upstream = grown(Regional(4, overlap_at_mask_resolution=True), at_image)
    assert upstream.sum() < grown(Regional(4), at_image).sum()
    assert torch.equal(upstream, resize_mask(grow_mask(at_image, 32, 64, 4), 8, 16))
    with pytest.raises(ValueError, match="overlap_at_mask_resolution"):
        Regional(overlap_at_mask_resolution="no")
    assert Alternate(4).consumes == Regional(4).consumes


def test_the_folder_name_holds_the_overrides_that_act_and_experiment_nested_neutral_keys_do_not():
    overrides = ["experiment=sampler_pairs", "logger.init_timeout=5", "threads=2", "seeds=8", "dual=alternate"]
    name, unused = job_name(overrides, compose_job(*overrides))
    assert name == "dual=alternate,experiment=sampler_pairs,seeds=8" and unused == []
    assert job_name([], compose_job()) == (BASE_JOB_DIR, [])


@pytest.mark.parametrize("overlap", [0, 2, 4])
def test_blending_methods_names_one_whole_run_job_for_every_overlap(overlap):
    overrides = ["experiment=blending_methods", f"overlap_factor={overlap}", "dual=whole_run"]
    name, unused = job_name(overrides, compose_job(*overrides))
    assert name == "dual=whole_run,experiment=blending_methods" and unused == [f"overlap_factor={overlap}"]


def test_the_mask_samplers_schedule_names_no_one_trajectory_job_unless_an_upscaler_runs_it():
    overrides = ["dual=fused", "sampler@mask_sampler=heun", "mask_sampler.scheduler=karras", "overlap_factor=3"]
    assert job_name(overrides, compose_job(*overrides)) == ("dual=fused,overlap_factor=3", overrides[1:3])
    upscaled = overrides + ["upscaler=two_samplers"]
    assert job_name(upscaled, compose_job(*upscaled))[0] == ",".join(sorted(upscaled))


def test_the_identity_leaves_out_neutral_and_inert_keys_and_names_the_experiment():
    plain = {"name": "x", "seeds": 2, "overlap_factor": 2, "logger": {"init_timeout": 5}, "batch_size": 4,
             "base_sampler": {"sampler": "euler", "steps": None}, "dual": {"_target_": "dualsampler.dual.WholeRun"}}
    identity = job_identity(plain, inert_keys(ALGORITHMS["whole_run"].consumes), "blending_methods")
    assert identity == {"seeds": 2, "base_sampler": {"sampler": "euler"}, "experiment": "blending_methods",
                        "dual": {"_target_": "dualsampler.dual.WholeRun"}}
    assert plain["base_sampler"] == {"sampler": "euler", "steps": None}  # the config itself is left alone
    assert differing_keys({"a": {"b": 1}, "c": 2}, {"a": {"b": 2}, "d": 2}) == ["a.b", "c", "d"]
    assert set(CONSUMABLE) >= set(UpscaleSpec.consumes)


@pytest.mark.slow
def test_a_sweep_over_a_key_that_does_not_act_runs_one_job_and_says_so(tmp_path):
    done = run_app(*TINY, "dual=whole_run", "overlap_factor=0,2", f"hydra.sweep.dir={tmp_path}")
    assert done.returncode == 0, done.stderr[-3000:]
    results = list(tmp_path.rglob("result.json"))
    assert [p.parent.name for p in results] == ["dual=whole_run,height=64,metrics=seams,model=random_world,"
                                                "seeds=1,steps=2,width=64"]
    said = done.stdout + done.stderr
    assert "overlap_factor=2 does not act on dual=whole_run" in said
    assert said.count("result.json matches the config and weights, skipping") == 1
    config = json.loads(results[0].read_text())["config"]
    assert "overlap_factor" not in config and "batch_size" not in config and "logger" not in config


@pytest.mark.slow
def test_another_experiments_job_never_replaces_a_finished_result(tmp_path):
    """Two experiments sharing a sweep folder: each job gets its own folder; a folder that holds another
    configuration's finished result is refused, and that result is kept."""
    conf = tmp_path / "my_conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "a.yaml").write_text("# @package _global_\nname: shared\nsteps: 2\n")
    (conf / "b.yaml").write_text("# @package _global_\nname: shared\nsteps: 3\n")
    sweep = tmp_path / "sweep"
    common = [*TINY[:1], *TINY[2:], "overlap_factor=1", f"hydra.sweep.dir={sweep}"]

    def launch(experiment: str):
        return run_app("--config-dir", str(tmp_path / "my_conf"), f"experiment={experiment}", *common)

    assert launch("a").returncode == 0
    (a_result,) = sweep.rglob("result.json")
    kept = a_result.read_text()
    assert launch("b").returncode == 0
    assert a_result.read_text() == kept and len(list(sweep.rglob("result.json"))) == 2
    assert "experiment=a" in a_result.parent.name

    other = json.loads(kept)
    other["config"]["steps"] = 5  # as if an earlier release had computed this folder with other settings
    a_result.write_text(json.dumps(other))
    refused = launch("a")
    assert refused.returncode == 1
    assert json.loads(a_result.read_text()) == other
    failure = json.loads((a_result.parent / "failure.json").read_text())
    assert "holds the finished result of another configuration" in failure["error"] and "steps" in failure["error"]


def test_a_hyper_parameter_its_other_settings_switch_off_names_no_job_and_is_not_recorded():
    overrides = ["dual=regional", "dual.second_seed=7"]
    assert job_name(overrides, compose_job(*overrides)) == ("dual=regional", ["dual.second_seed=7"])
    seeded = overrides + ["dual.second_seed_mode=add"]
    assert job_name(seeded, compose_job(*seeded))[0] == ",".join(sorted(seeded))
    flat = ["dual=mixture_of_diffusers", "dual.weights=flat", "dual.sigma_scale=0.3"]
    assert job_name(flat, compose_job(*flat)) == ("dual.weights=flat,dual=mixture_of_diffusers", [flat[2]])
    assert "second_seed" not in Regional().settings() and Regional(second_seed_mode="add").settings()["second_seed"] == 0
    assert "sigma_scale" not in ALGORITHMS["mixture_of_diffusers"](weights="flat").settings()


@pytest.mark.parametrize("name, settings, switched_off", [
    ("regional", {"second_seed_mode": "none"}, {"second_seed": 5}),
    ("mixture_of_diffusers", {"weights": "flat"}, {"sigma_scale": 0.5}),
])
@pytest.mark.filterwarnings("ignore:overlap_factor. the grown mask covers")  # regional's default overlap on 8x8
def test_a_switched_off_hyper_parameter_changes_nothing(name, settings, switched_off):
    base = KSampler(GaussianData(mu=-1.0, std=0.3), "euler")
    inside = KSampler(GaussianData(mu=1.0, std=0.3), "euler")

    def run(**extra) -> torch.Tensor:
        return ALGORITHMS[name](**settings, **extra)(torch.zeros(1, 4, 8, 8), base_sampler=base, mask_sampler=inside,
                                                     mask=ellipse_mask(32, 32), seed=3, steps=4)

    assert set(switched_off) == ALGORITHMS[name].inert(settings)
    assert torch.equal(run(), run(**switched_off))

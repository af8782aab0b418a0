"""The runner's config tree: every group instantiates a checked object, and bad values fail before any model loads."""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_dir

from dualsampler.dual import Alternate, Fused, Regional, WholeRun
from dualsampler.metrics.evaluator import Evaluator
from dualsampler.run import CONF_DIR
from dualsampler.runner.job import JobParts
from dualsampler.runner.settings import ConfigError, Objective, seed_list
from run_app import run_app


def compose_job(*overrides: str, with_hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=with_hydra)


def test_documented_overrides_build_the_objects_they_name():
    cfg = compose_job("overlap_factor=8", "dual=fused", "dual.feather=2", "seeds=4", "steps=12", "batch_size=8",
                      "sampler@mask_sampler=dpmpp_2m", "logger=none", "model=random_world")
    parts = JobParts.from_config(cfg)
    assert parts.dual == Fused(overlap_factor=8, feather=2.0)
    assert parts.seeds == [0, 1, 2, 3] and parts.settings.steps == 12 and parts.settings.batch_size == 8
    (item,) = parts.items  # the job's own item: base_sampler outside the mask, mask_sampler inside
    assert item.regions[0].spec.sampler == "dpmpp_2m" and item.regions[0].spec.prompt == "red dots"
    assert isinstance(parts.evaluator, Evaluator) and type(parts.tracker).__name__ == "NullTracker"
    assert item.regions[0].mask.shape[-2:] == (128, 128) and item.id is None and item.image is None


@pytest.mark.parametrize("name, algorithm", [("alternate", Alternate), ("regional", Regional), ("fused", Fused),
                                             ("whole_run", WholeRun)])
def test_each_dual_config_names_its_algorithm(name, algorithm):
    assert isinstance(JobParts.from_config(compose_job(f"dual={name}", "model=random_world")).dual, algorithm)


def test_seeds_may_be_a_list():
    assert seed_list(compose_job("seeds=[3,7]").seeds) == [3, 7]


@pytest.mark.parametrize("experiment", ["overlap_sweep", "sampler_pairs", "upscale_schedules"])
def test_experiments_compose_and_declare_a_figure(experiment):
    cfg = compose_job(f"experiment={experiment}", "model=random_world", with_hydra=True)
    assert cfg.name == experiment and cfg.figures[0].name == experiment
    assert cfg.hydra.sweeper.params and cfg.hydra.mode.name == "MULTIRUN"
    del cfg.hydra
    JobParts.from_config(cfg)


@pytest.mark.parametrize("override, key", [
    ("overlap_factor=-1", "overlap_factor"),
    ("mask_sampler.sampler=foo", "mask_sampler"),
    ("base_sampler.scheduler=bar", "base_sampler"),
    ("base_sampler.cfg=nan", "base_sampler"),
    ("seeds=0", "seeds"),
    ("steps=0", "steps"),
    ("threads=0", "threads"),
    ("height=16", "height"),
    ("dual=fused", "dual"),
    ("dual=regional", "dual"),
    ("upscaler=two_samplers", "upscaler"),
    ("metrics.band_width=0", "metrics"),
    ("mask_sampler.prompt=purple unicorns", "purple unicorns"),
])
def test_a_bad_value_names_its_key(override, key):
    extra = {"dual=fused": ["dual.feather=-1"], "dual=regional": ["dual.second_seed_mode=sometimes"],
             "upscaler=two_samplers": ["upscaler.full_sample_schedule=last3"]}.get(override, [])
    with pytest.raises(ConfigError, match=key):
        JobParts.from_config(compose_job(override, *extra, "model=random_world"))


def test_a_typed_key_is_checked_when_the_config_is_composed():
    with pytest.raises(Exception, match="steps"):
        compose_job("steps=many")


def test_the_objective_penalises_metrics_below_their_floors():
    objective = Objective("seam/gradient_ratio", {"region_accuracy/inside": 0.8}, penalty=10.0)
    assert objective.value({"seam/gradient_ratio": 1.2, "region_accuracy/inside": 0.9}) == pytest.approx(1.2)
    assert objective.value({"seam/gradient_ratio": 1.2, "region_accuracy/inside": 0.7}) == pytest.approx(2.2)
    assert objective.value({"region_accuracy/inside": 0.9}) == math.inf
    assert objective.value({"seam/gradient_ratio": 1.2}) == math.inf  # an absent floor is not a satisfied one
    assert Objective("region_accuracy/inside", direction="maximize").value({}) == -math.inf


@pytest.mark.parametrize("override, message", [
    ("sampler@mask_sampler=unknown_sampler", "sampler/unknown_sampler"),
    ("overlap_factor=-1", "overlap_factor=-1 is invalid"),
])
def test_bad_override_fails_on_the_command_line_before_sampling(override, message, tmp_path):
    """The Hydra app in this process (run_app); tests/test_faults_cli.py runs a real process for the exit status."""
    done = run_app("model=random_world", "logger=none", override, f"hydra.run.dir={tmp_path}", multirun=False)
    assert done.returncode != 0
    assert message in done.stderr + done.stdout
    assert (done.stderr + done.stdout).count("Traceback") == 0
    assert not (tmp_path / "images").exists() and not (tmp_path / "result.json").exists()

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
    objective = Objective("seam/color_jump", {"region_accuracy/inside": 0.8}, penalty=10.0)
    assert objective.value({"seam/color_jump": 1.2, "region_accuracy/inside": 0.9}) == pytest.approx(1.2)
    assert objective.value({"seam/color_jump": 1.2, "region_accuracy/inside": 0.7}) == pytest.approx(2.2)
    assert objective.value({"region_accuracy/inside": 0.9}) == math.inf
    assert objective.value({"seam/color_jump": 1.2}) == math.inf  # an absent floor is not a satisfied one
    assert Objective("region_accuracy/inside", direction="maximize").value({}) == -math.inf


def test_the_objective_takes_the_metrics_direction_from_the_registry_unless_given():
    assert (Objective("seam/color_jump").sense, Objective("region_accuracy/inside").sense) == ("minimize", "maximize")
    assert Objective("region_accuracy/inside").value({"region_accuracy/inside": 0.75}) == pytest.approx(0.75)
    assert Objective("region_accuracy/inside").worst == -math.inf
    assert Objective("seam/color_jump", direction="maximize").sense == "maximize"  # an explicit override


def test_the_default_objective_minimises_the_seams_distance_from_a_healthy_ratio_of_1():
    # per image |G - 1|, then the mean: 0.8 and 1.2 average to a ratio of 1 but sit 0.2 from it each
    rows = [{"seed": 0, "seam/gradient_ratio": 0.8}, {"seed": 1, "seam/gradient_ratio": 1.2}]
    objective = Objective()
    assert objective.metric == "seam/gradient_ratio_error" and objective.sense == "minimize"
    assert objective.value({"seam/gradient_ratio": 1.0}, rows) == pytest.approx(0.2)
    assert objective.value({"seam/gradient_ratio_error": 0.3}, rows) == pytest.approx(0.3)  # as the job wrote it
    assert objective.value({"seam/gradient_ratio": 1.0}) == math.inf  # neither the key nor the rows to derive it
    # a smoother-than-texture band (0.816, the raw ratio's "best" trial) scores worse than a healthy 1.05
    assert objective.value({}, [{"seam/gradient_ratio": 0.816}]) > objective.value({}, [{"seam/gradient_ratio": 1.05}])
    # the raw target metric without a direction minimises its error; with one, the raw value
    assert Objective("seam/gradient_ratio").value({}, rows) == pytest.approx(0.2)
    assert Objective("seam/gradient_ratio", direction="minimize").value({"seam/gradient_ratio": 0.8}) == 0.8


def test_the_objective_accepts_derived_keys_whose_inputs_the_job_reports():
    Objective().check(["seam/gradient_ratio", "seam/color_jump"])
    Objective("seam/gradient_ratio_error/region1").check(Evaluator(judge=False).keys(regions=2))
    with pytest.raises(ConfigError, match=r"objective.metric: 'seam/gradient_ratio_error' is not a metric this job"):
        Objective().check(["seam/color_jump"])
    with pytest.raises(ConfigError, match=r"objective.metric: 'seam/gradient_ratoi' is not a metric this job reports"):
        Objective("seam/gradient_ratoi")
    with pytest.raises(ConfigError, match=r"objective.metric: 'judge/inside' is a per-image reading"):
        Objective("judge/inside")
    with pytest.raises(ConfigError, match=r"objective.direction must be one of minimize, maximize or null"):
        Objective(direction="lower")


def test_the_shipped_configs_search_the_gradient_ratio_error():
    assert compose_job().objective.metric == "seam/gradient_ratio_error"
    assert compose_job().objective.direction is None
    search = compose_job("hparams_search=seam_overlap", with_hydra=True)
    assert search.objective.metric == "seam/gradient_ratio_error"
    assert search.hydra.sweeper.direction == "minimize"


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

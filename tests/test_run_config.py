"""The runner's config tree: the documented overrides compose, and bad values fail before any sampling."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from dualsampler.run import CONF_DIR
from dualsampler.runner.validate import ConfigError, seed_list, validate


def compose_job(*overrides: str, with_hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=with_hydra)


def test_documented_overrides_compose_as_written():
    cfg = compose_job("overlap_factor=8", "dual.mode=fused", "seeds=4", "steps=12", "batch_size=8", "device=cuda",
                      "sampler@mask_sampler=dpmpp_2m", "logger=none")
    validate(cfg)
    assert cfg.dual.overlap_factor == 8 and cfg.dual.mode == "fused"
    assert seed_list(cfg.seeds) == [0, 1, 2, 3] and cfg.steps == 12 and cfg.batch_size == 8
    assert cfg.mask_sampler.sampler == "dpmpp_2m" and cfg.mask_sampler.prompt == "red dots"
    assert cfg.logger._target_ == "dualsampler.tracking.NullTracker"


def test_seeds_may_be_a_list():
    assert seed_list(compose_job("seeds=[3,7]").seeds) == [3, 7]


@pytest.mark.parametrize("experiment", ["overlap_sweep", "sampler_pairs", "upscale_schedules"])
def test_experiments_compose_and_declare_a_figure(experiment):
    cfg = compose_job(f"experiment={experiment}", with_hydra=True)
    assert cfg.name == experiment and cfg.figures[0].name == experiment
    assert cfg.hydra.sweeper.params and cfg.hydra.mode.name == "MULTIRUN"
    del cfg.hydra
    validate(cfg)


@pytest.mark.parametrize("override, key", [
    ("overlap_factor=-1", "overlap_factor"),
    ("mask_sampler.sampler=foo", "mask_sampler.sampler"),
    ("base_sampler.scheduler=bar", "base_sampler.scheduler"),
    ("seeds=0", "seeds"),
    ("steps=0", "steps"),
    ("dual.mode=blend", "dual.mode"),
    ("threads=0", "threads"),
    ("upscaler=two_samplers", None),
])
def test_validate_names_the_bad_key(override, key):
    overrides = [override] if key else [override, "upscaler.full_sample_schedule=last3"]
    with pytest.raises(ConfigError, match=f"^{key or 'upscaler.full_sample_schedule'}="):
        validate(compose_job(*overrides))


@pytest.mark.parametrize("override, message", [
    ("sampler@mask_sampler=unknown_sampler", "sampler/unknown_sampler"),
    ("overlap_factor=-1", "overlap_factor=-1 is invalid"),
])
def test_bad_override_fails_on_the_command_line_before_sampling(override, message, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "dualsampler.run", "model=random_world", "logger=none", override,
         f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "offline"}, timeout=120,
    )
    assert done.returncode != 0
    assert message in done.stderr + done.stdout
    assert not (tmp_path / "images").exists() and not (tmp_path / "result.json").exists()

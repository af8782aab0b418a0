"""Resuming a sweep: a finished job is reused only when both its config and the weights it loaded are unchanged."""

from __future__ import annotations

import json
import shutil

import pytest

from dualsampler.models import WEIGHTS_DIR, weights_fingerprint, world_folders
from dualsampler.models.source import ModelSource
from dualsampler.runner.results import RESULT_FILE, finished_result

CONFIG = {"model": {"_target_": "dualsampler.models.source.ModelSource", "path": None}, "steps": 12, "seeds": 4}


@pytest.fixture
def world_copy(tmp_path):
    """A copy of the embedded world's folder, to edit."""
    return shutil.copytree(WEIGHTS_DIR, tmp_path / "world")


def test_the_fingerprint_follows_the_weights_files(world_copy):
    assert weights_fingerprint(world_copy) == weights_fingerprint() == weights_fingerprint(WEIGHTS_DIR)
    config = world_copy / "unet" / "config.json"
    config.write_text(config.read_text() + "\n")
    assert weights_fingerprint(world_copy) != weights_fingerprint()


def test_borrowed_judge_and_upscaler_count_as_read(world_copy):
    shutil.rmtree(world_copy / "judge")
    shutil.rmtree(world_copy / "upscaler")
    assert world_folders(world_copy)["judge"] == WEIGHTS_DIR / "judge"
    assert weights_fingerprint(world_copy) == weights_fingerprint()


def test_a_folder_without_a_unet_is_named_in_the_error(world_copy):
    shutil.rmtree(world_copy / "unet")
    with pytest.raises(ValueError, match="missing unet/"):
        weights_fingerprint(world_copy)


def test_model_sources_fingerprint_the_folder_they_load(world_copy):
    assert ModelSource().fingerprint() == weights_fingerprint()
    assert ModelSource(str(world_copy)).fingerprint() == weights_fingerprint(world_copy)
    assert ModelSource(random_seed=0).fingerprint() != ModelSource(random_seed=1).fingerprint()


def test_a_result_is_reused_only_for_the_same_config_and_weights(tmp_path):
    weights = weights_fingerprint()
    (tmp_path / RESULT_FILE).write_text(json.dumps({"config": CONFIG, "weights": weights, "metrics": {"m": 1.0}}))
    assert finished_result(tmp_path, CONFIG, weights)["metrics"] == {"m": 1.0}
    assert finished_result(tmp_path, {**CONFIG, "steps": 20}, weights) is None
    assert finished_result(tmp_path, CONFIG, "0123456789abcdef") is None


def test_a_result_written_before_fingerprints_is_recomputed(tmp_path):
    (tmp_path / RESULT_FILE).write_text(json.dumps({"config": CONFIG, "metrics": {"m": 1.0}}))
    assert finished_result(tmp_path, CONFIG, weights_fingerprint()) is None

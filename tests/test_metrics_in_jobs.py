"""The metrics of issue 21 as a job reports them (`dualsampler-run`, in process): CLIP score from a local CLIP
folder for the whole image and each region, the models recorded, every key reported or absent with its reason."""

from __future__ import annotations

import json

import pytest

from clip_fixtures import write_tiny_clip
from run_app import run_app
from test_metrics_reference import needs_vision

REGIONS = ("regions=[{mask:{shape:ellipse,cx:0.25,rx:0.25},prompt:'red dots'},"
           "{mask:{shape:rectangle,top:0.5,bottom:1.0,left:0.5,right:1.0},prompt:'green waves'}]")


def test_a_job_reports_clip_scores_per_image_and_region_with_the_clip_it_used(tmp_path):
    clip = write_tiny_clip(tmp_path / "clip")
    done = run_app("model=random_world", f"metrics.clip={clip}", REGIONS, "seeds=2", "steps=2", "logger=none",
                   multirun=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(next((tmp_path / "runs").rglob("result.json")).read_text())
    scores = {key: value for key, value in result["metrics"].items() if key.startswith("clip_score/")}
    assert set(scores) == {"clip_score/image", "clip_score/inside", "clip_score/region0", "clip_score/region1"}
    assert all(0 <= value <= 100 for value in scores.values())
    assert result["metrics"]["clip_score/inside"] == pytest.approx(
        sum(row["clip_score/inside"] for row in result["per_seed"]) / 2, rel=1e-6)  # the mean of the image rows
    assert result["measured_with"]["clip"]["name"] == "clip" and len(result["measured_with"]["clip"]["fingerprint"]) == 16


def test_every_key_a_job_may_report_is_reported_or_absent_with_its_reason(tmp_path):
    done = run_app("model=random_world", REGIONS, "seeds=2", "steps=2", "logger=none", multirun=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(next((tmp_path / "runs").rglob("result.json")).read_text())
    from dualsampler.metrics.evaluator import Evaluator

    assert set(Evaluator().keys(regions=2, inputs=True)) <= set(result["metrics"]) | set(result["absent"])
    assert all(isinstance(reason, str) and reason for reason in result["absent"].values())


def test_a_reference_set_without_the_vision_extra_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    from dualsampler.metrics.optional import vision_missing
    from dualsampler.models.source import ModelSource

    if vision_missing() is None:
        pytest.skip("the vision extra imports here: the refusal is for the set-up without it")
    (tmp_path / "real").mkdir()
    monkeypatch.setattr(ModelSource, "load", lambda *a, **k: pytest.fail("the model loaded"))
    done = run_app("model=random_world", f"metrics.reference={tmp_path / 'real'}", "seeds=1", "steps=2",
                   "logger=none", multirun=False, cwd=tmp_path)
    assert done.returncode == 1 and "metrics.reference" in done.stdout


@needs_vision
def test_a_job_reports_inception_fid_and_kid_against_a_reference_folder(tmp_path):
    from test_metrics_reference import load_script

    from dualsampler.runner.images import to_pil
    from dualsampler.world import render_texture

    weights = load_script().write_inception_weights(tmp_path / "inception.pth", seed=0)
    (tmp_path / "real").mkdir()
    for seed in range(4):
        to_pil(render_texture("blue stripes", 64, 64, seed)).save(tmp_path / "real" / f"{seed}.png")
    done = run_app("model=random_world", "metrics=seams", f"metrics.reference={tmp_path / 'real'}",
                   f"metrics.inception_weights={weights}", f"metrics.reference_cache={tmp_path / 'cache'}",
                   "metrics.reference_min_generated=2", "height=64", "width=64", "seeds=3", "steps=2", "logger=none",
                   multirun=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(next((tmp_path / "runs").rglob("result.json")).read_text())
    assert {"fid/inception", "kid/inception", "kid/inception_std"} <= set(result["metrics"])
    described = result["measured_with"]["reference"]
    assert described["set_size"] == 4
    # the file the job's W&B run logs as its reference-statistics artifact (test_metrics_wandb_reference.py)
    assert described["statistics"] == str(tmp_path / "cache" / f"{described['set_fingerprint']}.safetensors")
    assert (tmp_path / "cache" / f"{described['set_fingerprint']}.safetensors").is_file()

"""The metrics of issue 21 as a job reports them (`dualsampler-run`, in process): CLIP score from a local CLIP
folder for the whole image and each region, the models recorded, every key reported or absent with its reason."""

from __future__ import annotations

import json

import pytest

from clip_fixtures import write_tiny_clip
from run_app import run_app

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

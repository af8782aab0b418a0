"""The sweep report covers this launch's jobs only: an old failure in the folder does not fail a new sweep
(issue 14, item 3)."""

from __future__ import annotations

import json
import os

import pytest
from omegaconf import OmegaConf

from dualsampler.runner.callbacks import ReportSweep, launched_jobs


def write_job(sweep_dir, name, outcome, *, age_s=0.0):
    """A job folder as Hydra and the runner leave it: `.hydra/overrides.yaml` and result.json or failure.json,
    all dated `age_s` seconds ago."""
    job = sweep_dir / name
    (job / ".hydra").mkdir(parents=True)
    files = [job / ".hydra" / "overrides.yaml", job / f"{outcome}.json"]
    files[0].write_text(f"- {name}\n")
    files[1].write_text(json.dumps({"name": name, "error": "ValueError: overlap_factor must be >= 0"}))
    for path in files:
        stamp = path.stat().st_mtime - age_s
        os.utime(path, (stamp, stamp))
    return job


def config(sweep_dir):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}, "output_subdir": ".hydra"}})


def test_an_old_failure_with_other_overrides_does_not_fail_the_new_sweep(tmp_path):
    write_job(tmp_path, "overlap_factor=-1", "failure", age_s=3600)
    write_job(tmp_path, "overlap_factor=2", "result", age_s=3600)
    report = ReportSweep()
    report.on_multirun_start(config(tmp_path))
    rerun = tmp_path / "overlap_factor=2" / ".hydra" / "overrides.yaml"  # skipped as finished: Hydra rewrites .hydra
    rerun.write_text("- overlap_factor=2\n")
    write_job(tmp_path, "overlap_factor=4", "result")
    report.on_multirun_end(config(tmp_path))  # no SystemExit
    assert [job.name for job in launched_jobs(tmp_path, report.started_ns)] == ["overlap_factor=2", "overlap_factor=4"]


def test_a_failure_of_this_launch_fails_the_sweep(tmp_path, caplog):
    caplog.set_level("INFO", logger="dualsampler.runner.callbacks")
    report = ReportSweep()
    report.on_multirun_start(config(tmp_path))
    write_job(tmp_path, "overlap_factor=-1", "failure")
    write_job(tmp_path, "overlap_factor=2", "result")
    with pytest.raises(SystemExit) as exit_:
        report.on_multirun_end(config(tmp_path))
    assert exit_.value.code == 1
    assert "FAILED overlap_factor=-1" in caplog.text and "2 job(s) this launch, 1 with a result, 1 failed" in caplog.text

"""End-to-end sweeps through the `dualsampler-run` CLI on a random-weight world (tiny canvases, 2 steps).

The sweep logged to W&B and its relaunch run as real processes (W&B's service, resume across processes); the
other launches run the Hydra app in the test process (`run_app`), their launchers starting the jobs' processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dualsampler.figures import main as figures_main
from helpers import offline_table, read_offline_run
from run_app import run_app

pytestmark = pytest.mark.slow  # each test runs sweeps of real jobs

TINY = ["model=random_world", "steps=2", "seeds=2", "batch_size=2", "height=96", "width=96", "metrics.real_images=2"]


def run_cli(*overrides: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m dualsampler.run -m <overrides>`, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "dualsampler.run", "-m", *overrides],
        capture_output=True, text=True, env=env, timeout=300,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """W&B strictly offline, with every W&B folder in a temporary directory."""
    home = tmp_path_factory.mktemp("wandb_home")
    return {
        **os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(home),
        "WANDB_CONFIG_DIR": str(home), "WANDB_CACHE_DIR": str(home), "WANDB_DATA_DIR": str(home),
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, env) -> tuple[Path, list[str]]:
    """A two-job overlap sweep (seed mode), logged to W&B offline; returns its folder and its command line."""
    sweep_dir = tmp_path_factory.mktemp("sweep") / "overlap"
    args = ["experiment=overlap_sweep", *TINY, "overlap_factor=0,2", "dual=alternate", f"hydra.sweep.dir={sweep_dir}"]
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return sweep_dir, args


def test_sweep_writes_both_results_and_a_figure(sweep, tmp_path):
    sweep_dir, _ = sweep
    results = sorted(sweep_dir.rglob("result.json"), key=lambda p: json.loads(p.read_text())["config"]["overlap_factor"])
    assert len(results) == 2 and "overlap_factor=0" in results[0].parent.name and "overlap_factor=2" in results[1].parent.name
    for path in results:
        result = json.loads(path.read_text())
        assert result["seeds"] == [0, 1]
        assert {"seam/gradient_ratio", "seam/color_jump", "region_accuracy/inside", "fid/judge"} <= set(result["metrics"])
        assert [row["seed"] for row in result["per_seed"]] == [0, 1]
        assert all((path.parent / image).is_file() for image in result["images"])
        assert (path.parent / "grid.png").is_file()
        assert result["timings"]["total_s"] > 0 and result["versions"]["torch"]
    figures_main([str(sweep_dir), "--out", str(tmp_path)])
    assert (tmp_path / "overlap_sweep.png").stat().st_size > 0
    assert (tmp_path / "overlap_sweep.pdf").stat().st_size > 0
    assert "| 2 | alternate |" in (tmp_path / "overlap_sweep.md").read_text()


def test_rerunning_the_sweep_recomputes_nothing(sweep, env):
    sweep_dir, args = sweep
    before = {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("*.png")}
    before |= {p: p.stat().st_mtime_ns for p in sweep_dir.rglob("result.json")}
    again = run_cli(*args, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    skipped = "matches the config and weights, skipping"
    assert again.stderr.count(skipped) + again.stdout.count(skipped) == 2
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_wandb_offline_run_holds_the_logged_keys(sweep):
    sweep_dir, _ = sweep
    job = next(p.parent for p in sweep_dir.rglob("result.json") if "overlap_factor=2" in p.parent.name)
    run = read_offline_run(next((job / "wandb").glob("offline-run-*")))
    assert run["project"] == "dualsampler" and run["group"] == "overlap_sweep" and run["name"] == job.name
    assert run["config"]["overlap_factor"] == 2 and run["config"]["dual"]["_target_"] == "dualsampler.dual.Alternate"
    logged = run["history"][0]
    result = json.loads((job / "result.json").read_text())
    assert logged["seam/color_jump"] == pytest.approx(result["metrics"]["seam/color_jump"])
    assert logged["grid._type"] == "image-file" and logged["per_seed._type"] == "table-file"
    assert run["summary"]["fid/judge"] == pytest.approx(result["metrics"]["fid/judge"])


def test_the_sweep_logs_a_summary_table_with_one_row_per_job(sweep, env):
    sweep_dir, _ = sweep
    run_file = next((sweep_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    table, _ = offline_table(run_file, env, key="jobs")
    assert table["columns"][0] == "job" and "seam/color_jump" in table["columns"]
    assert sorted(row[0] for row in table["data"]) == sorted(
        str(p.parent.relative_to(sweep_dir)) for p in sweep_dir.rglob("result.json"))


def test_a_failing_job_keeps_the_other_jobs_result(tmp_path, env):
    done = run_app(*TINY, "metrics=seams", "logger=none", "mask_sampler.prompt=red dots,purple unicorns",
                   f"hydra.sweep.dir={tmp_path}", env=env)
    assert done.returncode == 1
    assert [json.loads(p.read_text())["config"]["mask_sampler"]["prompt"] for p in tmp_path.rglob("result.json")] == ["red dots"]
    failure = json.loads(next(tmp_path.rglob("failure.json")).read_text())
    assert "unicorns" in failure["error"]
    assert "FAILED" in done.stderr + done.stdout and "unicorns" in failure["name"]


@pytest.mark.parametrize("launcher", [
    ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"],
], ids=["joblib", "submitit_local"])
def test_launcher_runs_a_sweep(launcher, tmp_path, env):
    done = run_app(*TINY, "seeds=1", "metrics=seams", "logger=none", "overlap_factor=1,3",
                   *launcher, f"hydra.sweep.dir={tmp_path}", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in tmp_path.rglob("result.json")]
    assert sorted(result["config"]["overlap_factor"] for result in results) == [1, 3]
    assert all(result["threads"] == 1 for result in results)  # the default: one thread per job, side by side or not


def test_optuna_search_from_the_shipped_config_finds_parameters(tmp_path, env):
    done = run_app("hparams_search=seam_overlap", *TINY, "height=128", "width=128", "metrics.real_images=0",
                   "logger=none", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path}", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    best = (tmp_path / "optimization_results.yaml").read_text()
    assert "overlap_factor" in best and "dual.feather" in best and "best_value" in best
    assert len(list(tmp_path.rglob("result.json"))) == 2

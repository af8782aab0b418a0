"""Bad values through `dualsampler-run` (issue 14): each job fails with a message naming the key before the model
loads, writing no image and no result.json; a tracker failure never costs a finished job; an old failure in the
sweep folder does not fail a new sweep.

Values of one key are swept in one multirun (`-m key=v1,v2`): Hydra runs each as a job, each job records its error
in failure.json, and the sweep exits 1. The Hydra app runs in the test process (`run_app`: the same command line,
composition, launcher, callback and exit code); real processes only where a process is the point: the printed
error of a failed single run and its exit status, W&B's service, two launches side by side, a SIGKILL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dualsampler.runner.identity import NEUTRAL_KEYS
from run_app import run_app

pytestmark = pytest.mark.slow  # every case runs a Hydra app (a job's checks, or a tiny job) or a fresh process

TINY = ["model=random_world", "steps=2", "seeds=1", "batch_size=1", "height=64", "width=64", "metrics=seams",
        "logger=none"]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return {**env, "OMP_NUM_THREADS": "1", "HOME": str(tmp_path / "home"), **extra}


def run_cli(*args: str, env: dict[str, str], multirun: bool = True) -> subprocess.CompletedProcess:
    """`python -m dualsampler.run [-m] <overrides>` in a fresh process, as a user types `dualsampler-run`."""
    return subprocess.run([sys.executable, "-m", "dualsampler.run", *(["-m"] if multirun else []), *args],
                          capture_output=True, text=True, env=env, timeout=600)


def truncated_png(folder: Path) -> Path:
    whole = folder / "whole.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(whole)
    path = folder / "cut.png"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return path


# (id, overrides: the last one sweeps the bad values, the key regex every job's error must match). A value of the
# wrong type for a typed key (an integer key given nan) is refused by Hydra while it composes the sweep: no job
# runs, and the CLI's own message names the key.
CASES = [
    ("base_sampler.cfg", ["base_sampler.cfg=nan,inf,-1"], r"base_sampler(\.|: )cfg"),
    ("mask_sampler.cfg", ["mask_sampler.cfg=nan,1000"], r"mask_sampler(\.|: )cfg"),
    ("overlap_factor", ["overlap_factor=-1,1000000000"], r"overlap_factor"),
    ("overlap_factor NaN", ["overlap_factor=nan"], r"overlap_factor"),
    ("overlap_factor inf", ["overlap_factor=inf"], r"overlap_factor"),
    ("overlap_factor fractional", ["overlap_factor=2.5"], r"overlap_factor"),
    ("steps NaN", ["steps=nan"], r"\bsteps\b"),
    ("steps", ["steps=0,-3"], r"\bsteps\b"),
    ("denoise", ["denoise=0,nan,1.5"], r"\bdenoise\b"),
    ("seeds", ["seeds=0,[-1],[18446744073709551616]"], r"\bseeds\b"),
    ("height", ["height=0,100000"], r"\bheight\b"),
    ("width", ["width=-64"], r"\bwidth\b"),
    ("batch_size", ["batch_size=0"], r"\bbatch_size\b"),
    ("threads", ["threads=0"], r"\bthreads\b"),
    ("canvas under the judge", ["metrics=default", "height=16,24"], r"\bheight\b.*judge"),
    ("sampler name", ["base_sampler.sampler=nope"], r"base_sampler(\.|: )sampler"),
    ("scheduler name", ["mask_sampler.scheduler=nope"], r"mask_sampler(\.|: )scheduler"),
    ("prompt word", ["metrics=default", "height=128", "width=128", "base_sampler.prompt=purple unicorns"],
     r"base_sampler(\.|: )prompt.*unicorns|unicorns.*base_sampler"),
    ("ellipse radius", ["mask=ellipse", "mask.rx=nan,-1,inf"], r"mask(\.|: )rx"),
    ("ellipse centre", ["mask=ellipse", "mask.cy=nan"], r"mask(\.|: )cy"),
    ("rectangle edge", ["mask=rectangle", "mask.top=nan,2"], r"mask(\.|: )top"),
    ("mask file missing", ["mask=file", "mask.path=/nonexistent/m.png"], r"mask(\.|: )path.*/nonexistent/m\.png"),
    ("device gpu", ["device=gpu"], r"device.*cpu, cuda, cuda:N"),  # device names no job folder: one value a launch
    ("device cuda:", ["device=cuda:"], r"device.*cpu, cuda, cuda:N"),
    ("upscale factor", ["upscaler=two_samplers", "upscaler.factor=nan,inf,1000,0.5"], r"upscaler(\.|: )factor"),
    ("upscale tile_size", ["upscaler=two_samplers", "upscaler.tile_size=inf,48,100000"], r"upscaler(\.|: )tile_size"),
    ("upscale iterations", ["upscaler=two_samplers", "upscaler.iterations=0,1000"], r"upscaler(\.|: )iterations"),
    ("upscale steps", ["upscaler=two_samplers", "upscaler.steps=0"], r"upscaler(\.|: )steps"),
    ("upscale denoise", ["upscaler=two_samplers", "upscaler.denoise=nan,0"], r"upscaler(\.|: )denoise"),
    ("cfg schedule target", ["upscaler=two_samplers_hooks", "upscaler.hook_mask.target_cfg=nan,inf"],
     r"upscaler(\.hook_mask)?(\.|: ).*target_cfg"),
    ("denoise schedule target", ["upscaler=two_samplers_hooks", "upscaler.hook_base.hook2.target_denoise=0,nan"],
     r"upscaler(\.hook_base)?(\.|: ).*target_denoise"),
    ("logger mode", ["logger=wandb", "logger.mode=sometimes"], r"logger(\.|: )mode"),
    ("logger init_timeout", ["logger=wandb", "logger.init_timeout=0,nan"], r"logger(\.|: )init_timeout"),
    ("fused feather", ["dual=fused", "dual.feather=nan,-1"], r"dual(\.|: )feather"),
    ("regional base-only steps", ["dual=regional", "steps=4", "dual.base_only_steps=5,9"], r"dual(\.|: )base_only_steps"),
    # issue 19: strings read as true, values checked only after sampling, a prompt the world cannot read
    ("prompt word without the judge", ["base_sampler.prompt=purple unicorns"], r"base_sampler\.prompt.*'unicorns'"),
    ("restore_latent no", ["dual=regional", "dual.restore_latent=no"], r"dual: restore_latent must be true or false"),
    ("metrics.judge no", ["metrics.judge=no,off"], r"metrics\.judge must be true or false"),
    ("use_tiled_vae no", ["upscaler=two_samplers", "upscaler.use_tiled_vae=no"], r"upscaler: use_tiled_vae must be"),
    ("objective metric typo", ["objective.metric=seam/gradient_ratoi"], r"objective\.metric: 'seam/gradient_ratoi'"),
    ("hook denoise 1e-9", ["upscaler=two_samplers_hooks", "upscaler.hook_base.hook2.target_denoise=1e-9"],
     r"upscaler: hook_base at iteration 2 of 2: denoise"),
]


def bad_values(overrides: list[str]) -> int:
    """The job folders a case's last override sweeps: one per value, one in all for a neutral key such as
    `logger.init_timeout`, whose values name no folder (runner/identity.py)."""
    key, values = overrides[-1].split("=", 1)
    if key.split(".")[0] in NEUTRAL_KEYS:
        return 1
    return len(values.replace("[", "").replace("]", "").split(","))


@pytest.mark.parametrize("overrides, key", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_bad_value_fails_its_job_naming_the_key_before_any_work(tmp_path, overrides, key):
    sweep = tmp_path / "sweep"
    done = run_app(*TINY, *overrides, f"hydra.sweep.dir={sweep}", env=cli_env(tmp_path))
    assert done.returncode == 1, done.stderr[-3000:]
    failures = [json.loads(p.read_text()) for p in sorted(sweep.rglob("failure.json"))]
    if failures:  # the runner refused each job
        assert len(failures) == bad_values(overrides), done.stderr[-3000:]
        for failure in failures:
            assert re.search(key, failure["error"]), failure["error"]
            assert failure["error"].startswith("ConfigError: "), failure["error"]  # refused before the model loads
    else:  # Hydra refused the sweep while composing it
        assert re.search(key, done.stderr) and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert list(sweep.rglob("result.json")) == [] and list(sweep.rglob("*.png")) == []
    assert list(sweep.rglob("wandb")) == []


def test_a_truncated_mask_file_is_named_and_nothing_is_written(tmp_path):
    cut = truncated_png(tmp_path)
    sweep = tmp_path / "sweep"
    done = run_app(*TINY, "mask=file", f"mask.path={cut}", f"hydra.sweep.dir={sweep}", env=cli_env(tmp_path))
    assert done.returncode == 1
    failure = json.loads(next(sweep.rglob("failure.json")).read_text())
    assert re.search(r"mask(\.|: )path", failure["error"]) and "cut.png" in failure["error"]
    assert failure["error"].startswith("ConfigError: ")
    assert list(sweep.rglob("result.json")) == [] and list(sweep.rglob("seed*.png")) == []


def test_a_single_run_with_a_bad_value_prints_its_error_once_without_a_traceback(tmp_path):
    out = tmp_path / "run"
    done = run_cli(*TINY, "base_sampler.cfg=nan", f"hydra.run.dir={out}", env=cli_env(tmp_path), multirun=False)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert said.count("cfg must be a finite number in [0, 100], got nan") == 1, said[-3000:]
    assert re.search(r"base_sampler(\.|: )cfg must be", said), said[-3000:]
    assert "Traceback" not in said
    assert not (out / "result.json").exists() and not list(out.rglob("*.png"))


def test_an_unreachable_tracker_never_costs_the_finished_job(tmp_path):
    """W&B configured (a key) but no server: the job's result.json is written, records the tracker's status, and
    the run is logged offline within seconds instead of wandb's 90 s init timeout."""
    env = cli_env(tmp_path, WANDB_API_KEY="0" * 40, WANDB_BASE_URL="http://127.0.0.1:9")
    sweep = tmp_path / "sweep"
    done = run_cli(*TINY, "logger=wandb", "logger.mode=auto", "logger.init_timeout=2", "overlap_factor=2",
                   f"hydra.sweep.dir={sweep}", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(sweep.rglob("result.json")).read_text())
    assert result["tracker"]["ok"] is True and result["tracker"]["mode"] == "offline"
    assert result["tracker"]["fallback_from"] == "online" and result["tracker"]["error"]
    assert result["timings"]["log_s"] < 60
    job = next(sweep.rglob("result.json")).parent
    assert all((job / image).is_file() for image in result["images"])


def test_an_old_failure_in_the_folder_does_not_fail_a_relaunch_with_other_values(tmp_path):
    sweep = tmp_path / "sweep"
    first = run_app(*TINY, "overlap_factor=2,-1", f"hydra.sweep.dir={sweep}", env=cli_env(tmp_path))
    assert first.returncode == 1 and "FAILED" in first.stdout + first.stderr
    again = run_app(*TINY, "overlap_factor=2", f"hydra.sweep.dir={sweep}", env=cli_env(tmp_path))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "FAILED" not in again.stdout + again.stderr
    assert len(list(sweep.rglob("failure.json"))) == 1  # the old record stays, only not counted


def test_two_launches_of_one_sweep_compute_each_job_once(tmp_path):
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "dualsampler.run", "-m", *TINY, "overlap_factor=1,2", f"hydra.sweep.dir={sweep}"]
    launches = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env(tmp_path))
                for _ in range(2)]
    said = "".join(launch.communicate(timeout=600)[0] for launch in launches)
    assert [launch.returncode for launch in launches] == [0, 0], said[-3000:]
    assert len(list(sweep.rglob("result.json"))) == 2
    assert len(re.findall(r": done in ", said)) == 2, said[-3000:]  # each job computed by one launch
    assert said.count("matches the config and weights, skipping") == 2  # and returned by the other
    assert list(sweep.rglob(".claim.json")) == []


def test_a_sweep_killed_while_holding_a_claim_resumes_on_relaunch(tmp_path):
    """SIGKILL leaves the job's claim behind; the relaunch takes the dead process's claim over and finishes."""
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "dualsampler.run", "-m", *TINY, "overlap_factor=1,2", f"hydra.sweep.dir={sweep}"]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(tmp_path))
    deadline = time.monotonic() + 300
    while not list(sweep.rglob(".claim.json")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert list(sweep.rglob(".claim.json")), "the launch was killed before it claimed a job"
    again = run_cli(*TINY, "overlap_factor=1,2", f"hydra.sweep.dir={sweep}", env=cli_env(tmp_path))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "taking over the stale claim" in again.stdout + again.stderr
    assert len(list(sweep.rglob("result.json"))) == 2 and list(sweep.rglob(".claim.json")) == []


def test_an_overlap_covering_the_whole_canvas_is_warned_about(tmp_path):
    done = run_app(*TINY, "overlap_factor=1000", f"hydra.sweep.dir={tmp_path / 'sweep'}", env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "overlap_factor: the grown mask covers the whole canvas" in done.stdout + done.stderr

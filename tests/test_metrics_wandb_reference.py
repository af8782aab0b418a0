"""A job that measures fid/inception against a reference set logs the set's statistics file to its W&B run as an
artifact of type `reference-statistics` (offline here): the folder's cached statistics, or the statistics file given.

torchvision does not import in the default venv, so these jobs run with a stand-in for the InceptionV3 network (the
reference set's folder reading, fingerprints, cache, the job and the tracker are the real ones); the same job with
the real network runs in the vision stage (test_metrics_in_jobs.py, `bash .ci/vision`)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from dualsampler.metrics import reference
from dualsampler.metrics.reference import FEATURE_LAYER, IMPLEMENTATION, read_statistics, write_statistics
from dualsampler.runner.images import to_pil
from dualsampler.world import render_texture

SIDE = 64
JOB = textwrap.dedent('''
    import sys

    import torch
    import torch.nn.functional as F
    from torch import nn

    import dualsampler.metrics.reference as reference


    class StandIn(nn.Module):
        """In the InceptionV3 network's place: 2048 fixed random projections of the image pooled to 8x8."""

        num_features = 2048

        def __init__(self, weights_path=None):
            super().__init__()
            self.register_buffer("projection", torch.randn(192, 2048, generator=torch.Generator().manual_seed(0)))

        def forward(self, images):
            return F.adaptive_avg_pool2d(images, 8).flatten(1) @ self.projection


    reference.InceptionFeatures = StandIn
    reference.locate_inception_weights = lambda path=None: path
    from dualsampler.run import main

    sys.argv = ["dualsampler-run", *sys.argv[1:]]
    main()
''')


def run_job(tmp_path, reference_path, weights) -> tuple[dict, dict]:
    """(result.json, env) of a 3-seed world job measuring fid/inception against `reference_path`, logged offline."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, "HOME": str(tmp_path / "home"),
           "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    done = subprocess.run([sys.executable, "-c", JOB, "model=random_world", "metrics=seams",
                           f"metrics.reference={reference_path}", f"metrics.inception_weights={weights}",
                           f"metrics.reference_cache={tmp_path / 'cache'}", "metrics.reference_min_generated=2",
                           f"height={SIDE}", f"width={SIDE}", "seeds=3", "steps=2", "logger=wandb",
                           "logger.mode=offline", f"hydra.run.dir={tmp_path / 'job'}"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "job" / "result.json").read_text()), env


def logged_statistics(tmp_path, env) -> tuple[dict, bytes]:
    """(the `reference-statistics` artifact of the job's offline run, its one file's bytes), by wandb's own
    reader."""
    run_file = next((tmp_path / "job" / "wandb").glob("offline-run-*/run-*.wandb"))
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)],
                         capture_output=True, text=True, check=True, env=env, timeout=120)
    records = [json.loads(line) for line in out.stdout.splitlines()]
    [artifact] = [record["artifact"] for record in records if record.get("type") == "artifact"
                  and record["artifact"]["type"] == "reference-statistics"]
    [entry] = artifact["manifest"]["contents"]
    with open(entry["local_path"], "rb") as logged:
        return artifact, logged.read()


@pytest.fixture
def weights(tmp_path) -> str:
    path = tmp_path / "inception.pth"
    path.write_bytes(b"stand-in weights")  # fingerprinted like real weights; the stand-in network ignores them
    return str(path)


@pytest.mark.slow  # a real `dualsampler-run` process with W&B's service (seconds)
def test_a_job_against_a_reference_folder_logs_the_folders_statistics_as_an_artifact(tmp_path, weights):
    (tmp_path / "real").mkdir()
    for seed in range(4):
        to_pil(render_texture("blue stripes", SIDE, SIDE, seed)).save(tmp_path / "real" / f"{seed}.png")
    result, env = run_job(tmp_path, tmp_path / "real", weights)
    assert result["tracker"]["ok"], result["tracker"]
    assert {"fid/inception", "kid/inception", "kid/inception_std"} <= set(result["metrics"])
    described = result["measured_with"]["reference"]
    statistics = tmp_path / "cache" / f"{described['set_fingerprint']}.safetensors"
    assert described["statistics"] == str(statistics) and described["set_size"] == 4
    artifact, logged = logged_statistics(tmp_path, env)
    assert artifact["name"] == statistics.name and logged == statistics.read_bytes()
    features, metadata = read_statistics(statistics)
    assert features.shape == (4, 2048) and metadata["set_fingerprint"] == described["set_fingerprint"]


@pytest.mark.slow  # a real `dualsampler-run` process with W&B's service (seconds)
def test_a_job_against_a_statistics_file_logs_that_file(tmp_path, weights):
    metadata = {"format": reference.FORMAT, "implementation": IMPLEMENTATION, "feature_layer": FEATURE_LAYER,
                "weights_fingerprint": reference.file_sha256(weights, "weights"), "set_size": "5",
                "set_fingerprint": "cd" * 32, "height": str(SIDE), "width": str(SIDE)}
    given = write_statistics(tmp_path / "my_set.safetensors",
                             torch.randn(5, 2048, generator=torch.Generator().manual_seed(0)), metadata)
    result, env = run_job(tmp_path, given, weights)
    assert result["measured_with"]["reference"]["statistics"] == str(given)
    assert math.isfinite(result["metrics"]["fid/inception"])
    artifact, logged = logged_statistics(tmp_path, env)
    assert artifact["name"] == "my_set.safetensors" and logged == given.read_bytes()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # nothing recomputed


"""Device claims: jobs running side by side on one machine never share a GPU."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from dualsampler.runner.devices import available_cores, busy_cores, check_device, claim_device, job_threads


@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend this machine has two CUDA devices (claims only look at availability and count)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_concurrent_jobs_get_different_gpus_and_free_them(two_gpus, tmp_path):
    with claim_device("cuda", tmp_path) as first, claim_device("cuda", tmp_path) as second:
        assert {first, second} == {torch.device("cuda", 0), torch.device("cuda", 1)}
    with claim_device("cuda", tmp_path) as again:
        assert again == torch.device("cuda", 0)


def test_an_explicit_device_is_used_as_given(two_gpus, tmp_path):
    with claim_device("cuda:1", tmp_path) as device:
        assert device == torch.device("cuda", 1)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cuda:7"])
def test_bad_device_names_the_key(two_gpus, device):
    with pytest.raises(ValueError, match=rf"^device\b.*'{device}'"):
        check_device(device)


def test_a_job_runs_on_one_thread_unless_threads_are_set():
    assert job_threads(None, None) == 1  # alone: images then never depend on the machine's load
    assert job_threads(None, 4, cores=16) == 1  # side by side: nor on the launcher's job count
    assert job_threads(2, None) == 2
    assert job_threads(2, 4, cores=16) == 2


def test_auto_shares_the_cores_among_parallel_jobs():
    assert job_threads("auto", 4, cores=16) == 4
    assert job_threads("auto", 3, cores=16) == 5
    assert job_threads("auto", 32, cores=16) == 1
    assert job_threads("auto", -1, cores=16) == 1  # joblib's default: one job per core


def test_auto_leaves_a_job_running_alone_the_cores_others_do_not_use():
    assert job_threads("auto", None, cores=2, busy=0.2) == 2
    assert job_threads("auto", None, cores=2, busy=1.0) == 1  # one process spinning beside the job
    assert job_threads("auto", None, cores=2, busy=3.6) == 1
    assert job_threads("auto", None, cores=16, busy=2.4) == 14
    assert job_threads("auto", None, cores=16, busy=2.5) == 13


def test_busy_cores_sees_a_process_spinning_beside_this_one():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = busy_cores(window=0.3)
    finally:
        spinner.kill()
        spinner.wait()
    assert 0.5 <= busy <= available_cores()


@pytest.mark.parametrize("kwargs, key", [
    (dict(threads="all"), "threads"), (dict(threads=0), "threads"), (dict(threads="auto", cores=0), "cores"),
    (dict(threads="auto", busy=-1.0), "busy"),
])
def test_bad_thread_settings_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=rf"^{key}\b"):
        job_threads(parallel_jobs=None, **{"cores": 2, **kwargs})

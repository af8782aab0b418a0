"""Device claims: jobs running side by side on one machine never share a GPU."""

from __future__ import annotations

import pytest
import torch

from dualsampler.runner.devices import check_device, claim_device, job_threads


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


def test_parallel_jobs_share_the_cores_unless_threads_are_set():
    assert job_threads(None, 4, cores=16) == 4
    assert job_threads(None, 3, cores=16) == 5
    assert job_threads(None, 32, cores=16) == 1
    assert job_threads(None, -1, cores=16) == 1  # joblib's default: one job per core
    assert job_threads(2, 4, cores=16) == 2
    assert job_threads(None, None, cores=16) is None  # a job running alone keeps torch's default

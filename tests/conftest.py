"""Shared fixtures. Torch runs on one thread in the tests and in every subprocess they start: on a loaded 2-core
machine torch's default threads made the suite about four times slower (issue 11). Shared helpers live in helpers.py.

The suite runs on two pytest-xdist workers (`-n 2 --dist loadgroup` in pyproject's addopts; `-n 0` runs it in one
process): tests are spread one by one, except those of the modules in ONE_WORKER, which share a module fixture that
costs seconds (a sweep's processes, a wheel and its venv, a dual-sampled latent) and so run on one worker."""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # set before torch starts its pools; subprocesses inherit it

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import GaussianData  # noqa: E402
from sd_fixtures import sd_models  # noqa: E402, F401  (tiny Stable Diffusion folders, built once per run)

torch.set_num_threads(1)

ONE_WORKER = {"test_run_sweep", "test_packaging", "test_upscale_end_to_end"}


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in ONE_WORKER:
            item.add_marker(pytest.mark.xdist_group(item.path.stem))


@pytest.fixture
def gaussian() -> GaussianData:
    return GaussianData()

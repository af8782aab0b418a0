"""Shared fixtures. Torch runs on one thread in the tests and in every subprocess they start: on a loaded 2-core
machine torch's default threads made the suite about four times slower (issue 11). Shared helpers live in helpers.py.

The suite runs on two pytest-xdist workers (`-n 2 --dist loadfile` in pyproject's addopts; `-n 0` runs it in one
process). Each test file runs whole on one worker, so a module fixture that costs seconds (a sweep's processes, a
wheel and its venv, a dual-sampled latent) is built once. (`--dist loadgroup` would spread single tests, but
pytest-xdist 3.8 does not group them under pytest 9: its group suffix goes to `item._nodeid`, which pytest 9 no
longer reads.)"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # set before torch starts its pools; subprocesses inherit it

import pytest  # noqa: E402

from helpers import GaussianData  # noqa: E402
from sd_fixtures import sd_models  # noqa: E402, F401  (tiny Stable Diffusion folders, built once per run)
from flux_fixtures import flux_models  # noqa: E402, F401  (tiny Flux.1 dev / schnell folders, built once per run)
from sd3_fixtures import sd3_model  # noqa: E402, F401  (tiny SD3 folder and single-file checkpoint, built once per run)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """torch on one thread where tests run (torch is not imported here: xdist's controller runs no test)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def gaussian() -> GaussianData:
    return GaussianData()

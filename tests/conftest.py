"""Shared fixtures. Torch runs on one thread in the tests and in every subprocess they start: on a loaded 2-core
machine torch's default threads made the suite about four times slower (issue 11). Shared helpers live in helpers.py."""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # set before torch starts its pools; subprocesses inherit it

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import GaussianData  # noqa: E402
from sd_fixtures import sd_models  # noqa: E402, F401  (tiny Stable Diffusion folders, built once per run)

torch.set_num_threads(1)


@pytest.fixture
def gaussian() -> GaussianData:
    return GaussianData()

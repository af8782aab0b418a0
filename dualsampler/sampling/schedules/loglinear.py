"""Log-linear resampling of a published sigma table to another number of points (the Align Your Steps recipe)."""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def loglinear_interp(levels: Sequence[float], count: int) -> np.ndarray:
    """`count` descending levels: log(levels) interpolated linearly over [0, 1] at `count` evenly spaced points.

    The table's points sit at `linspace(0, 1, len(levels))`; the ends are kept, so `count == len(levels)`
    returns the table itself (to rounding)."""
    ascending = np.log(np.asarray(levels, dtype=np.float64)[::-1])
    at = np.linspace(0, 1, count)
    return np.exp(np.interp(at, np.linspace(0, 1, len(levels)), ascending))[::-1].copy()


def table_schedule(levels: Sequence[float], steps: int) -> Tensor:
    """`steps + 1` sigmas from a table of descending levels: the table itself when it has `steps + 1` entries,
    its log-linear resampling otherwise; the last entry is then set to 0."""
    sigmas = np.asarray(levels, dtype=np.float64) if len(levels) == steps + 1 else loglinear_interp(levels, steps + 1)
    sigmas = sigmas.copy()
    sigmas[-1] = 0
    return torch.tensor(sigmas, dtype=torch.float32)

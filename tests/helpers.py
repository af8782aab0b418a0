"""Helpers shared by several test modules: exact Gaussian data, tiny random diffusers UNets, a forward counter.

Test modules import them with `from helpers import ...` (pytest puts tests/ on sys.path); fixtures stay in
conftest.py. torch and diffusers are imported where they are used: conftest imports this module, and pytest-xdist's
controller process, which runs no test, should not pay seconds of imports before it starts the workers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from diffusers import UNet2DConditionModel


class GaussianData:
    """Data ~ N(mu, std^2) per element: `D(x, s) = mu + (x - mu) std^2 / (std^2 + s^2)`; the PF-ODE solution is
    `x(s1) = mu + (x(s0) - mu) sqrt((std^2 + s1^2) / (std^2 + s0^2))`."""

    def __init__(self, mu: float = 0.5, std: float = 0.7) -> None:
        self.mu, self.std = mu, std
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        s2 = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype) ** 2
        return self.mu + (x - self.mu) * self.std**2 / (self.std**2 + s2)

    def flow(self, x: torch.Tensor, s0: float, s1: float) -> torch.Tensor:
        return self.mu + (x - self.mu) * math.sqrt((self.std**2 + s1**2) / (self.std**2 + s0**2))


def tiny_cond_unet() -> UNet2DConditionModel:
    """A seeded random text-conditioned UNet of SD's architecture, 4 latent channels, 8-dim conditioning."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=8, attention_head_dim=2, norm_num_groups=4,
    ).eval()


class ForwardCounter:
    """Counts forwards and records each forward's batch size."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.batches: list[int] = []
        module.register_forward_hook(lambda m, args, kwargs_out: self.batches.append(args[0].shape[0]))


def embeddings(seed: int) -> torch.Tensor:
    """Seeded conditioning [1, 3 tokens, 8] for `tiny_cond_unet`."""
    import torch

    return torch.randn(1, 3, 8, generator=torch.Generator().manual_seed(seed))


def read_offline_run(run_dir, env=None) -> dict:
    """An offline W&B run (`.../offline-run-*/` or its `run-*.wandb` file) read by wandb's own reader
    (`wandb leet inspect --json`, no network): `{"project", "group", "name", "config", "history": [row, ...],
    "summary"}`; history and summary keys of nested values are joined with "." (`grid._type`)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    path = Path(run_dir)
    path = next(path.glob("run-*.wandb")) if path.is_dir() else path
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)],
                         capture_output=True, text=True, check=True, env=env, timeout=120)
    run: dict = {"config": {}, "history": [], "summary": {}}
    for record in map(json.loads, out.stdout.splitlines()):
        kind = record.get("type")
        if kind == "run":
            body = record["run"]
            run.update(project=body.get("project"), group=body.get("run_group"), name=body.get("display_name"))
            run["config"].update(body.get("config", {}).get("update", {}))
        elif kind == "config":
            run["config"].update(record["config"].get("update", {}))
        elif kind == "history":
            run["history"].append(record["history"]["item"])
        elif kind == "summary":
            run["summary"].update(record["summary"].get("update", {}))
    return run


def offline_table(run_file, env=None, key: str = "per_seed") -> tuple[dict, set[str]]:
    """The table `key` of an offline W&B run file (`.../offline-run-*/run-*.wandb`) as W&B stored it, in the run's
    `run-<id>-<key>` table artifact, which holds the images (the run's own media/table file only names their
    type): ({"columns", "data"}, the paths of the artifact's files), read by wandb's own reader."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)],
                         capture_output=True, text=True, check=True, env=env, timeout=120)
    records = [json.loads(line) for line in out.stdout.splitlines()]
    artifact = next(r["artifact"] for r in records if r.get("type") == "artifact"
                    and r["artifact"]["type"] == "run_table" and r["artifact"]["name"].endswith(f"-{key}"))
    files = {entry["path"]: entry["local_path"] for entry in artifact["manifest"]["contents"]}
    with open(files[f"{key}.table.json"]) as table:
        return json.load(table), set(files)

"""The one machinery that measures metrics: the registry's families run on batches (`Batch`), their per-image values
become rows, their means the job's values; set-level FID/KID accumulate features. The runner's Evaluation and
`compute_metrics` both feed it; a key they name that it did not measure is absent, with its reason."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from .background import SSIM_HALF
from .per_image import Batch, Tools
from .registry import describe, measured, requirements

NO_PIXEL_KEPT = "no image kept a pixel (keep was 0 everywhere)"
NO_SSIM_PIXEL = f"no kept pixel lies {SSIM_HALF} px inside keep (the SSIM window's half-size)"
NO_REGION_READ = "no image had a region large enough to read"
TOO_FEW = "FID/KID need at least 2 images"
JUDGE_PATCH = 32  # pixels: the side of the judge's patches (region_accuracy.RegionAccuracy)


def float32(value: float) -> float:
    """`value` rounded to float32, as the metrics report (torchmetrics' `compute` gives float32)."""
    return float(torch.tensor(value, dtype=torch.float32))


class Measurement:
    """Families measured with `tools` on batches: those with a per-image function whose requirements are in
    `available` (plus `input` for a batch with input images); `set_level` FID/KID metrics (`fid/<f>`, `kid/<f>`)
    read each batch's judged images as generated and `add_real`'s as real. `missing` says why a requirement is not
    available, `reasons` why a key is not measured (both for `compute`'s absent keys); `order` is the order of
    keys in rows and results (other keys after, as measured)."""

    def __init__(self, tools: Tools, available: Iterable[str], *, missing: dict[str, str] | None = None,
                 reasons: dict[str, str] | None = None, set_level: dict[str, Metric] | None = None,
                 order: Iterable[str] = ()) -> None:
        self.tools = tools
        self.available = set(available)
        self.missing = dict(missing or {})
        self.reasons = dict(reasons or {})
        self.set_level = dict(set_level or {})
        self.order = {key: index for index, key in enumerate(order)}
        self.totals: dict[str, list[float]] = {}  # key -> [sum, count] of the per-image values read
        self.rows: list[dict[str, Any]] = []
        self.images = 0

    def add(self, batch: Batch, rows: list[dict[str, Any]]) -> None:
        """Measure `batch`; `rows` (one per image: its seed and item) get the image's values (NaN and None left
        out, numbers as float32) and join `self.rows`."""
        available = set(self.available)
        if batch.background is not None:
            available.add("input")
            self.missing.pop("input", None)  # some images had inputs: what else is missing says why
        judge = self.tools.judge
        values: dict[str, Tensor | list] = {}
        with judge.reuse() if judge is not None else nullcontext():
            for info in measured(available):
                values.update(info.per_image(batch, self.tools))
            for metric in self.set_level.values():
                metric.update(batch.judged, real=False)
        keys = sorted(values, key=lambda key: self.order.get(key, len(self.order)))
        for key in keys:
            if isinstance(values[key], Tensor):
                total = self.totals.setdefault(key, [0.0, 0])
                for value in values[key].tolist():  # image by image, as a metric updated per image sums
                    if not math.isnan(value):
                        total[0] += value
                        total[1] += 1
        for index, row in enumerate(rows):
            for key in keys:
                value = values[key][index]
                if isinstance(value, Tensor):
                    if not value.isnan():
                        row[key] = float(value.float())
                elif value is not None:
                    row[key] = value
            self.rows.append(row)
        self.images += batch.size

    def add_real(self, images: Tensor) -> None:
        """Add real images [B,3,H,W] in [0,1] to the set-level metrics."""
        judge = self.tools.judge
        with judge.reuse() if judge is not None else nullcontext():
            for metric in self.set_level.values():
                metric.update(images, real=True)

    def compute(self, named: Iterable[str], band_width: int = 4) -> tuple[dict[str, float], dict[str, str]]:
        """(values, absent): each measured key's mean over the images that gave a value (float32; the family's
        `empty` value when none did, else absent), the set-level values with at least 2 images, and every key of
        `named` not measured with its reason."""
        results: dict[str, float] = {}
        absent: dict[str, str] = {}
        for key, (total, count) in self.totals.items():
            empty = describe(key).empty
            if count:
                results[key] = float32(total / count)
            elif empty is not None:
                results[key] = empty
            else:
                absent[key] = unread(key, band_width)
        for key, metric in self.set_level.items():
            if self.images < 2:
                absent.update(dict.fromkeys([key, f"{key}_std"] if key.startswith("kid/") else [key], TOO_FEW))
                continue
            value = metric.compute()
            results[key] = float(value[0] if isinstance(value, tuple) else value)
            if isinstance(value, tuple):
                results[f"{key}_std"] = float(value[1])
        for key in named:
            if key not in results and key not in absent:
                absent[key] = self.reason(key)
        return self.ordered(results), absent

    def ordered(self, values: dict[str, Any]) -> dict[str, Any]:
        """`values` in `order` (other keys after, as they came)."""
        return dict(sorted(values.items(), key=lambda item: self.order.get(item[0], len(self.order))))

    def reason(self, key: str) -> str:
        """Why `key` was not measured: its own reason, else why its first missing requirement is missing."""
        if key in self.reasons:
            return self.reasons[key]
        for requirement in requirements(key):
            if requirement not in self.available and requirement in self.missing:
                return self.missing[requirement]
        return "not measured by this evaluation"


def unread(key: str, band_width: int) -> str:
    """Why a measured key has no value: no image gave one."""
    if key == "background/ssim":
        return NO_SSIM_PIXEL
    if key.startswith("background/"):
        return NO_PIXEL_KEPT
    region = re.search(r"/region(\d+)$", key)
    if region is None:
        return NO_REGION_READ
    return (f"no image had region {region.group(1)} large enough to read (the part of its mask no other region "
            f"covers holds no whole {JUDGE_PATCH} px patch {band_width} px from its edge)")

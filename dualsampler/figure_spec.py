"""A figure declaration (`figures:` in an experiment): its keys and their checks, shared by the runner (before any
model loads) and `dualsampler-figures` (before anything is drawn)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .metrics.registry import derived_keys, describe

KINDS = ("line", "bar", "heatmap")
KEYS = ("name", "kind", "x", "hue", "y", "metrics")
REQUIRED = ("name", "kind", "x", "metrics")


def _is_key(value: Any) -> bool:
    """A config key (`overlap_factor`, `dual`) or a tuple of them (several keys as one axis)."""
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, Sequence) and bool(value) and all(isinstance(k, str) and k for k in value)


def check_figure(spec: Any, where: str = "figures", metrics: Iterable[str] | None = None) -> None:
    """Raise ValueError naming `where` (e.g. `figures[0]`) unless `spec` is a mapping with exactly the keys of
    KEYS, `name` a file name, `kind` one of KINDS, `x` (and `hue`, `y`: `y` required for heatmaps) config keys,
    `metrics` a non-empty list of numeric metric names declared in dualsampler/metrics/registry.py, each one of
    `metrics` (the keys a job reports) or derived from them when that is given."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be a mapping with the keys {', '.join(REQUIRED)} (and hue or y), got {spec!r}")
    unknown = [key for key in spec if key not in KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; a figure's keys are {', '.join(KEYS)}")
    for key in REQUIRED:
        if key not in spec:
            raise ValueError(f"{where}: each figure needs the key {key!r}; got {spec}")
    name = spec["name"]
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"{where}.name must be a file name (no '/', not starting with '.'), got {name!r}")
    if spec["kind"] not in KINDS:
        raise ValueError(f"{where}.kind must be one of {', '.join(KINDS)}; got {spec['kind']!r}")
    if spec["kind"] == "heatmap" and "y" not in spec:
        raise ValueError(f"{where}: a heatmap needs the key 'y'; got {spec}")
    for key in ("x", "hue", "y"):
        if spec.get(key) is not None and not _is_key(spec[key]):
            raise ValueError(f"{where}.{key} must be a config key (a string) or a list of them, got {spec[key]!r}")
    names = spec["metrics"]
    if isinstance(names, str) or not isinstance(names, Sequence) or not names or not all(
            isinstance(m, str) for m in names):
        raise ValueError(f"{where}.metrics must be a non-empty list of metric names, got {names!r}")
    if metrics is not None:
        known = [*metrics, *derived_keys(metrics)]
        for metric in names:
            if metric not in known:
                raise ValueError(f"{where}.metrics: {metric!r} is not a metric this job reports; it reports "
                                 f"{', '.join(known)}")
    for metric in names:
        try:
            info = describe(metric)
        except ValueError as error:
            raise ValueError(f"{where}.metrics: {metric!r} is not a metric this job reports: {error}") from None
        if info.direction == "none":
            raise ValueError(f"{where}.metrics: {metric!r} is a per-image reading ({info.unit}), not a number to plot")


def check_figures(specs: Any, metrics: Iterable[str] | None = None) -> None:
    """A list of figure declarations (see `check_figure`)."""
    if specs is None:
        return
    if isinstance(specs, (str, dict)) or not isinstance(specs, Sequence):
        raise ValueError(f"figures must be a list of figure declarations, got {specs!r}")
    for k, spec in enumerate(specs):
        check_figure(spec, f"figures[{k}]", metrics)

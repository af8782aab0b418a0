"""`dualsampler-figures SWEEP_DIR`: a sweep's figures, from its jobs' result.json files and saved Hydra configs.

An experiment may declare `figures: [{name, kind, x, hue|y, metrics}]` (kind `line`, `bar` or `heatmap`; x, hue and y
are config keys: a dotted value such as `overlap_factor`, or a config group such as `dual` or
`sampler@base_sampler`, read as the option the job chose). A sweep that declares none (an ad-hoc
`dualsampler-run -m overlap_factor=0,8 seeds=2`) gets one figure named after its folder: one panel per metric
against the keys the sweep varied, read from each job's own `.hydra/overrides.yaml` (the first numeric key on
the x axis, the others as hue). Each point is the mean over the job's per-image rows (its seeds, or its (item,
seed) rows for a data set); error bars are the 95% Student-t interval of that mean, as the experiments' READMEs
report it, drawn clipped to the metric's declared range (the table keeps the whole half-width); set-level metrics
(fid/*, kid/*) have one value per job and no bar. Jobs the figure's keys do not tell apart (an ablation such as
`dual.bootstrap=0` beside its default) are labelled by the config keys whose values differ between them. Each
panel's axis names its metric with its direction and unit (dualsampler/metrics/registry.py), and a metric healthy
at a target value (seam/gradient_ratio: 1) gets a dashed line there; legends sit below the panels. Writes
`<name>.png`, `<name>.pdf` and a Markdown table `<name>.md` per figure.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from scipy import stats  # noqa: E402

from .figure_spec import check_figure, check_figures  # noqa: E402
from .metrics.registry import axis_label, derived, describe  # noqa: E402
from .runner.results import read_results  # noqa: E402

log = logging.getLogger(__name__)
CONFIDENCE = 0.95
HYDRA_DIR = ".hydra"
JOB = "job"  # the key of a figure over jobs: the job's folder name
VARIANT = "variant"  # the key of the config keys that tell apart jobs a figure's own keys would merge
SEEDS = "seeds"
IMAGES = "images (item x seed)"  # what the interval is over when the rows are a data set's (item, seed) pairs
MARKS = {"line": ("points", "error bars"), "bar": ("bars", "whiskers")}


def t_half_width(values: list[float], confidence: float = CONFIDENCE) -> float:
    """Half-width of the Student-t interval of the mean of `values`: t_{(1+c)/2, n-1} * s / sqrt(n), s the sample
    standard deviation (ddof 1); 0 for one value."""
    n = len(values)
    if n < 2:
        return 0.0
    return float(stats.t.ppf((1 + confidence) / 2, n - 1)) * float(np.std(values, ddof=1)) / math.sqrt(n)


@dataclass(frozen=True)
class Summary:
    """One plotted point: the mean of `n` values and its 95% t-interval [low, high]."""

    mean: float
    low: float
    high: float
    n: int

    def label(self) -> str:
        """`mean ± half-width`, or the mean alone for a single value."""
        if self.n <= 1 or math.isnan(self.mean):
            return f"{self.mean:.4g}"
        return f"{self.mean:.4g} ± {self.high - self.mean:.2g}"


def summarize(values: list[float]) -> Summary:
    """Mean of `values` with its 95% t-interval (`t_half_width`); nan when empty."""
    if not values:
        return Summary(math.nan, math.nan, math.nan, 0)
    mean = float(np.mean(values))
    half = t_half_width(values)
    return Summary(mean, mean - half, mean + half, len(values))


def row_value(row: dict[str, Any], metric: str) -> Any:
    """One image's value of `metric`: as the row holds it, else derived from it (registry.derived), else None."""
    return row[metric] if metric in row else derived(row).get(metric)


def metric_values(result: dict[str, Any], metric: str) -> list[float]:
    """The job's per-seed values of `metric` (derived keys from each row's readings), else its one set-level value,
    else none (absent)."""
    values = [v for v in (row_value(row, metric) for row in result["per_seed"]) if v is not None]
    if values:
        return values
    return [result["metrics"][metric]] if metric in result["metrics"] else []


def config_value(result: dict[str, Any], key: str | tuple[str, ...]) -> Any:
    """A job's value of a config key: the chosen option of a config group (`dual`, `sampler@base_sampler`), else
    the dotted key's value in its config (`overlap_factor`, `base_sampler.cfg`), None when its config holds no
    such key (a neutral key, or a setting that did not act on the job: runner/identity.py); a tuple of keys gives a
    tuple."""
    if isinstance(key, tuple):
        return tuple(config_value(result, k) for k in key)
    if key == JOB:
        return result["name"]
    if key == VARIANT:
        return result.get(VARIANT, "")
    choices = result.get("choices", {})
    if key in choices:
        return choices[key]
    node: Any = result["config"]
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def key_label(key: str | tuple[str, ...], value: Any) -> str:
    """A legend entry: `key=value` per key (`no key` for a job whose config lacks it), a variant as its own
    `k=v, ...` text."""
    keys, values = (key, value) if isinstance(key, tuple) else ((key,), (value,))
    parts = [str(v) if k == VARIANT else f"no {k}" if v is None else f"{k}={v}"
             for k, v in zip(keys, values) if k != VARIANT or v]
    return ", ".join(parts)


def level_text(key: str | tuple[str, ...], value: Any) -> str:
    """A tick label: the value, a tuple's values joined by ', ', then a variant's `k=v` entries one a line."""
    keys, values = (key, value) if isinstance(key, tuple) else ((key,), (value,))
    text = ", ".join(str(v) for k, v in zip(keys, values) if k != VARIANT)
    variant = next((v for k, v in zip(keys, values) if k == VARIANT and v), "")
    return "\n".join(part for part in (text, variant.replace(", ", "\n")) if part)


def key_text(key: str | tuple[str, ...]) -> str:
    """An axis title: the key, or a tuple's keys joined by ', '."""
    return ", ".join(key) if isinstance(key, tuple) else str(key)


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys -> leaf values (`{"dual": {"bootstrap": 0}}` -> `{"dual.bootstrap": 0}`)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def variant_keys(results: list[dict[str, Any]], keys: list[str | tuple[str, ...]]) -> list[str]:
    """The dotted keys of the jobs' result.json `config` whose values differ between jobs that agree on every one of
    `keys` (the figure's axes), sorted; [] when those keys tell every job apart. A key one job lacks differs."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        groups.setdefault(repr([config_value(result, k) for k in keys]), []).append(result)
    differing = set()
    for group in (g for g in groups.values() if len(g) > 1):
        flats = [flat_config(r["config"]) for r in group]
        for key in set().union(*flats):
            if len({repr(flat.get(key, "<absent>")) for flat in flats}) > 1:
                differing.add(key)
    return sorted(differing)


def variant_label(result: dict[str, Any], keys: list[str]) -> str:
    """`key=value, ...` for each of `keys` the job's config holds (keys it lacks are left out)."""
    flat = flat_config(result["config"])
    return ", ".join(f"{k}={flat[k]}" for k in keys if k in flat)


def _tupled(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with its list keys (x, hue, y) as tuples."""
    return {key: tuple(value) if isinstance(value, list) and key != "metrics" else value for key, value in spec.items()}


def labelled_jobs(results: list[dict[str, Any]], spec: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(jobs, spec) where the jobs the spec's keys would merge are told apart: with `variant_keys`, each job (a copy)
    gets its `variant_label` and the spec draws it beside its x (bars, heatmaps) or its hue (lines); unchanged
    (list keys as tuples) when the keys tell every job apart."""
    spec = _tupled(spec)
    keys = variant_keys(results, _keys(spec))
    if not keys:
        return results, spec
    axis = "hue" if spec["kind"] == "line" else "x"
    current = spec.get(axis)
    parts = () if current is None else current if isinstance(current, tuple) else (current,)
    jobs = [{**result, VARIANT: variant_label(result, keys)} for result in results]
    return jobs, {**spec, axis: (*parts, VARIANT)}


def over_items(results: list[dict[str, Any]]) -> bool:
    """Whether the jobs' per-image rows are a data set's (a row carries `item`): intervals are then over images."""
    return any("item" in row for result in results for row in result["per_seed"])


def sample_name(results: list[dict[str, Any]]) -> str:
    """What each interval is over: `images (item x seed)` for a data set's rows, else `seeds`."""
    return IMAGES if over_items(results) else SEEDS


def caption(results: list[dict[str, Any]], kind: str) -> str:
    """The figure's caption: what a mark is (the mean over the rows), what its interval is over, that whiskers are
    clipped to the metric's range, and that set-level metrics have none."""
    over = sample_name(results)
    if kind == "heatmap":
        marks = f"cells: mean over {over} ± the half-width of its 95% t-interval over {over}"
    else:
        mark, bar = MARKS[kind]
        marks = (f"{mark}: mean over {over}; {bar}: 95% t-interval over {over}, drawn clipped to the metric's "
                 "range (e.g. [0, 1] for a share)")
    return f"{marks}; fid/kid: one value per job, no interval"


def _levels(results: list[dict[str, Any]], key: str | tuple[str, ...] | None) -> list[Any]:
    if key is None:
        return [None]
    levels = list(dict.fromkeys(config_value(r, key) for r in results))
    try:
        return sorted(levels, key=lambda level: (level is None, level))  # a job without the key last
    except TypeError:
        return levels


def _select(results: list[dict[str, Any]], where: dict[Any, Any]) -> list[dict[str, Any]]:
    return [r for r in results if all(k is None or config_value(r, k) == v for k, v in where.items())]


def cell(results: list[dict[str, Any]], metric: str) -> Summary:
    """The summary of a metric over the seeds of every job in one cell of a figure (normally one job)."""
    return summarize([v for r in results for v in metric_values(r, metric)])


def clipped(point: Summary, low: float, high: float) -> tuple[float, float]:
    """The interval [point.low, point.high] as drawn: clipped to the metric's range [low, high]."""
    return max(point.low, low), min(point.high, high)


def _error_bars(points: list[Summary], metric: str) -> np.ndarray | None:
    """Distances below and above each mean to its interval clipped to the metric's declared range (registry
    `describe`); None when every point has a single value (no bar to draw)."""
    if all(p.n <= 1 for p in points):
        return None
    info = describe(metric)
    ends = [clipped(p, info.low, info.high) for p in points]
    return np.array([[max(p.mean - low, 0.0) for p, (low, _) in zip(points, ends)],
                     [max(high - p.mean, 0.0) for p, (_, high) in zip(points, ends)]])


def _reference(ax, metric: str) -> None:
    """A dashed line at a target metric's healthy value (seam/gradient_ratio: 1), labelled."""
    info = describe(metric)
    if info.direction == "target":
        ax.axhline(info.target, color="0.4", linestyle="--", linewidth=1, label=f"healthy = {info.target:g}")


def _line(ax, results, spec, metric) -> None:
    xs, hues = _levels(results, spec["x"]), _levels(results, spec.get("hue"))
    dodge = 0.015 * (max(xs) - min(xs)) if len(xs) > 1 else 0.0  # keep the error bars of the lines apart
    for j, hue in enumerate(hues):
        points = [cell(_select(results, {spec["x"]: x, spec.get("hue"): hue}), metric) for x in xs]
        shift = (j - (len(hues) - 1) / 2) * dodge
        ax.errorbar([x + shift for x in xs], [p.mean for p in points], yerr=_error_bars(points, metric), marker="o",
                    capsize=3, label=None if spec.get("hue") is None else key_label(spec["hue"], hue))
    _reference(ax, metric)
    ax.set_xlabel(key_text(spec["x"]))
    ax.set_ylabel(axis_label(metric))


def _bar(ax, results, spec, metric) -> None:
    xs, hues = _levels(results, spec["x"]), _levels(results, spec.get("hue"))
    width = 0.8 / len(hues)
    for j, hue in enumerate(hues):
        points = [cell(_select(results, {spec["x"]: x, spec.get("hue"): hue}), metric) for x in xs]
        ax.bar(np.arange(len(xs)) + (j - (len(hues) - 1) / 2) * width, [p.mean for p in points], width,
               yerr=_error_bars(points, metric), capsize=3,
               label=None if spec.get("hue") is None else key_label(spec["hue"], hue))
    _reference(ax, metric)
    _x_ticks(ax, np.arange(len(xs)), [level_text(spec["x"], x) for x in xs])
    ax.set_xlabel(key_text(spec["x"]))
    ax.set_ylabel(axis_label(metric))


def _x_ticks(ax, positions, labels: list[str]) -> None:
    """Category tick labels, slanted; upright and small when a label has several lines (a variant's keys)."""
    if any("\n" in label for label in labels):
        ax.set_xticks(positions, labels, rotation=90, ha="center", fontsize=7)
    else:
        ax.set_xticks(positions, labels, rotation=30, ha="right")


def _heatmap(ax, results, spec, metric) -> None:
    xs, ys = _levels(results, spec["x"]), _levels(results, spec["y"])
    cells = [[cell(_select(results, {spec["x"]: x, spec["y"]: y}), metric) for x in xs] for y in ys]
    image = ax.imshow(np.array([[c.mean for c in row] for row in cells]), cmap="viridis")
    for i, row in enumerate(cells):
        for j, summary in enumerate(row):
            bright = image.norm(summary.mean) > 0.6  # dark text on the bright end of viridis
            ax.text(j, i, summary.label().replace(" ", "\n", 1), ha="center", va="center",
                    fontsize=7, color="k" if bright else "w")
    _x_ticks(ax, range(len(xs)), [level_text(spec["x"], x) for x in xs])
    ax.set_yticks(range(len(ys)), [level_text(spec["y"], y) for y in ys])
    ax.set_xlabel(key_text(spec["x"]))
    ax.set_ylabel(key_text(spec["y"]))
    ax.figure.colorbar(image, ax=ax, fraction=0.046, label=axis_label(metric))


DRAW = {"line": _line, "bar": _bar, "heatmap": _heatmap}


def _keys(spec: dict[str, Any]) -> list[str | tuple[str, ...]]:
    return [k for k in (spec["x"], spec.get("hue"), spec.get("y")) if k]


def _columns(spec: dict[str, Any]) -> list[str]:
    """The table's key columns: each key of x, hue and y (a tuple's keys one by one)."""
    return [k for key in _keys(spec) for k in (key if isinstance(key, tuple) else (key,))]


def _cell_text(result: dict[str, Any], metric: str) -> str:
    """`mean ± half-width` of one job's metric, with `(n=K)` when fewer of its rows than all carry the metric (e.g.
    `region_accuracy/region2` on the items with 3 regions)."""
    rows = result["per_seed"]
    carrying = sum(row_value(row, metric) is not None for row in rows)
    text = cell([result], metric).label()
    return f"{text} (n={carrying})" if 0 < carrying < len(rows) else text


def table_note(results: list[dict[str, Any]], spec: dict[str, Any], partial: bool = False) -> str:
    """The Markdown table's note: the caption, that the table keeps the whole half-width, what `variant` is, and
    (`partial`: some metric is on part of a job's rows) what `(n=K)` is."""
    clip = "" if spec["kind"] == "heatmap" else ", unclipped (the figure clips its whiskers to the metric's range)"
    note = (f"{caption(results, spec['kind'])}. The table gives mean ± the half-width of the 95% t-interval over "
            f"{sample_name(results)}{clip}.")
    keys = variant_keys(results, _keys(_tupled(spec)))
    if keys:
        note += (f" variant: the config keys ({', '.join(keys)}) whose values differ between jobs the figure's keys "
                 "do not tell apart.")
    if partial:
        note += " (n=K): the metric is on K of the job's rows only (e.g. a region the other items do not have)."
    return note


def markdown_table(results: list[dict[str, Any]], spec: dict[str, Any]) -> str:
    """One row per job: its x/hue/y values (and its variant, `labelled_jobs`), the number of per-image rows each
    interval is over (`seeds`, or `images (item x seed)` for a data set) and every metric of the figure as it is
    plotted (mean ± the half-width of its 95% t-interval, unclipped), headed by its axis label; the note below."""
    jobs, labelled = labelled_jobs(results, spec)
    keys = _columns(labelled)
    header = [str(k) for k in keys] + [sample_name(results), *map(axis_label, spec["metrics"])]
    rows = []
    for result in sorted(jobs, key=lambda r: [str(config_value(r, k)) for k in keys]):
        cells = [str(config_value(result, k)) for k in keys] + [str(len(result["per_seed"]))]
        cells += [_cell_text(result, metric) for metric in spec["metrics"]]
        rows.append(cells)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    note = table_note(results, spec, partial=any("(n=" in text for row in rows for text in row))
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + f"\n\n{note}\n"


def _legend(fig: plt.Figure) -> None:
    """One legend for the figure, below its panels (never over a bar): each label once, from every panel."""
    entries: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", fontsize=7,
                   ncol=min(len(entries), 4))


def _sample_size(results: list[dict[str, Any]]) -> str:
    """`4 seeds each`, or for a data set `24 images (12 items x 2 seeds) each` (the counts of the jobs' rows)."""
    counts = "/".join(map(str, sorted({len(r["per_seed"]) for r in results})))
    if not over_items(results):
        return f"{counts} seeds each"
    items = "/".join(map(str, sorted({len({row.get("item") for row in r["per_seed"]}) for r in results})))
    seeds = "/".join(map(str, sorted({len(r["seeds"]) for r in results})))
    return f"{counts} images ({items} items x {seeds} seeds) each"


def figure(results: list[dict[str, Any]], spec: dict[str, Any]) -> plt.Figure:
    """One figure of a checked spec: a panel per metric, its axis labelled from the registry, jobs the spec's keys
    would merge told apart (`labelled_jobs`), one legend below the panels, and the caption."""
    check_figure(spec)
    jobs, labelled = labelled_jobs(results, spec)
    metrics = spec["metrics"]
    columns = min(len(metrics), 3)
    rows = math.ceil(len(metrics) / columns)
    ticks = [level_text(labelled["x"], x) for x in _levels(jobs, labelled["x"])]
    width = max(4.2, 0.5 * len(ticks)) if spec["kind"] != "line" else 4.2  # room for each bar group or cell
    tick_height = 0.08 * max(len(line) for tick in ticks for line in tick.split("\n"))
    height = 3.4 + (max(tick_height, 0.6) if spec["kind"] == "bar" else 0.4)  # room for the rotated tick labels
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows + 0.9), squeeze=False,
                             layout="constrained")
    for ax, metric in zip(axes.flat, metrics):
        DRAW[spec["kind"]](ax, jobs, labelled, metric)
        ax.set_title(metric)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    if spec["kind"] != "heatmap":
        _legend(fig)
    fig.suptitle(f"{spec['name']}: {len(results)} jobs, {_sample_size(results)}\n{caption(results, spec['kind'])}",
                 fontsize=9)
    return fig


def draw_figure(results: list[dict[str, Any]], spec: dict[str, Any], out_dir: Path) -> list[Path]:
    """Draw one figure (`figure`) as PNG and PDF plus its Markdown table; returns the paths."""
    fig = figure(results, spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{spec['name']}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    table = out_dir / f"{spec['name']}.md"
    table.write_text(markdown_table(results, spec))
    return [*paths, table]


def saved_hydra(job_dir: Path, name: str) -> Any:
    """A job's saved Hydra file (`config`, `hydra` or `overrides`) as plain containers; None when absent."""
    path = Path(job_dir) / HYDRA_DIR / f"{name}.yaml"
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else None


def read_sweep(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job of the sweep with a result.json, each with its saved `choices` (config group -> option),
    `overrides` (the keys its command line set) and declared `figures`."""
    results = read_results(sweep_dir)
    for result in results:
        hydra = saved_hydra(result["dir"], "hydra") or {}
        result["choices"] = {k: v for k, v in hydra.get("hydra", {}).get("runtime", {}).get("choices", {}).items()
                             if not k.startswith("hydra/")}
        overrides = saved_hydra(result["dir"], "overrides")
        result["overrides"] = None if overrides is None else [o.lstrip("+~").partition("=")[0] for o in overrides]
        result["figures"] = (saved_hydra(result["dir"], "config") or {}).get("figures") or []
    return results


def swept_keys(results: list[dict[str, Any]]) -> list[str]:
    """The keys the jobs' overrides set to different values (in command-line order), which name a config group
    or a config value; keys every job sets alike, and Hydra's own, are not swept."""
    missing = [r["dir"] for r in results if r["overrides"] is None]
    if missing:
        raise ValueError(f"no {HYDRA_DIR}/overrides.yaml in {missing[0]}: the sweep's swept keys are unknown "
                         "(declare `figures:` in its experiment)")
    keys = list(dict.fromkeys(k for r in results for k in r["overrides"] if not k.startswith("hydra.")))
    swept = []
    for key in keys:
        try:
            values = {repr(config_value(r, key)) for r in results}
        except (KeyError, TypeError):
            continue  # a key that names neither a group nor a config value (a neutral key such as `threads`)
        if len(values) > 1:
            swept.append(key)
    return swept


def _numeric(results: list[dict[str, Any]], key: str) -> bool:
    return all(isinstance(config_value(r, key), Real) and not isinstance(config_value(r, key), bool) for r in results)


def declared(key: str) -> bool:
    """Whether dualsampler/metrics/registry.py declares `key`."""
    try:
        describe(key)
    except ValueError:
        return False
    return True


def plotted_metrics(results: list[dict[str, Any]]) -> list[str]:
    """Every numeric metric the jobs report, per job or per image, with the derived keys of their rows
    (registry.derived), sorted; keys the registry does not declare are left out with a warning naming them."""
    found = {m for r in results for m in r["metrics"]}
    for row in (row for r in results for row in r["per_seed"]):
        found |= {k for k, v in row.items() if isinstance(v, Real) and not isinstance(v, bool)} | set(derived(row))
    found.discard("seed")
    unknown = sorted(k for k in found if not declared(k))
    if unknown:
        log.warning("not plotted, not declared in dualsampler/metrics/registry.py: %s", ", ".join(unknown))
    return sorted(found - set(unknown))


def sweep_figure(results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The figure of a sweep that declares none: every metric against its swept keys (a line over the first
    numeric key, else bars over the first key; the other keys as hue). Without swept keys, one bar per job."""
    metrics = plotted_metrics(results)
    keys = swept_keys(results)
    if not keys:
        return {"name": name, "kind": "bar", "x": JOB, "metrics": metrics}
    numeric = [k for k in keys if _numeric(results, k)]
    x = numeric[0] if numeric else keys[0]
    rest = tuple(k for k in keys if k != x)
    hue = None if not rest else rest[0] if len(rest) == 1 else rest
    return {"name": name, "kind": "line" if numeric else "bar", "x": x, "hue": hue, "metrics": metrics}


def checked_specs(results: list[dict[str, Any]], specs: Any) -> list[dict[str, Any]]:
    """The declared figures, checked (`check_figures`) and with list keys as tuples; ValueError naming the figure's
    key that names no config key (or group) of any job."""
    check_figures(specs)
    checked = []
    for k, spec in enumerate(specs):
        spec = _tupled(spec)
        for axis in ("x", "hue", "y"):
            keys = spec.get(axis)
            for key in () if keys is None else keys if isinstance(keys, tuple) else (keys,):
                if all(config_value(result, key) is None for result in results):
                    raise ValueError(f"figures[{k}].{axis}: {key!r} names no config key or group of any job in the "
                                     "sweep")
        checked.append(spec)
    return checked


def make_figures(sweep_dir: Path, out_dir: Path | None = None) -> list[Path]:
    """Draw the figures the sweep's experiment declares, or its sweep figure, into `out_dir` (SWEEP_DIR/figures).
    Everything is checked before anything is drawn: ValueError naming the sweep folder, a result.json, a figure's
    key or the output folder."""
    out_dir = Path(out_dir) if out_dir is not None else Path(sweep_dir) / "figures"
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {str(out_dir)!r} is a file; it must be a folder (or not exist yet)")
    results = read_sweep(sweep_dir)
    if not results:
        raise ValueError(f"SWEEP_DIR {str(sweep_dir)!r} holds no result.json: run the sweep first")
    specs = next((r["figures"] for r in results if r["figures"]), None)
    if specs is None:
        specs = [sweep_figure(results, Path(sweep_dir).resolve().name)]
        log.info("%s declares no figures: plotting %s against %s", sweep_dir, specs[0]["metrics"], specs[0]["x"])
    paths = []
    for spec in checked_specs(results, specs):
        paths += draw_figure(results, spec, out_dir)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Command line: dualsampler-figures SWEEP_DIR [--out DIR]."""
    parser = argparse.ArgumentParser(prog="dualsampler-figures", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder, e.g. runs/overlap_sweep")
    parser.add_argument("--out", type=Path, default=None, help="where to write the figures (default SWEEP_DIR/figures)")
    args = parser.parse_args(argv)
    try:
        paths = make_figures(args.sweep_dir, args.out)
    except (ValueError, OSError) as error:
        parser.exit(2, f"dualsampler-figures: {error}\n")
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()

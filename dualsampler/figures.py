"""`dualsampler-figures SWEEP_DIR`: the figures a sweep's experiment declares, from its jobs' result.json files.

An experiment declares `figures: [{name, kind, x, hue|y, metrics}]` (kind `line`, `bar` or `heatmap`; x, hue and y
are dotted config keys). Each panel shows one metric as the mean over seeds with the standard deviation over
seeds as error bar; set-level metrics (fid/*, kid/*) have one value per job and no error bar. Writes
`<name>.png`, `<name>.pdf` and a Markdown table `<name>.md` per figure.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .runner.results import read_results  # noqa: E402

log = logging.getLogger(__name__)
KINDS = ("line", "bar", "heatmap")


def config_value(result: dict[str, Any], key: str) -> Any:
    """The value of a dotted config key (`dual.mode`) in a result's config."""
    node: Any = result["config"]
    for part in key.split("."):
        node = node[part]
    return node


def metric_stats(result: dict[str, Any], metric: str) -> tuple[float, float, int]:
    """(mean, std, n) of `metric` over the job's seeds; a set-level metric gives (value, 0, 1); absent gives nan."""
    values = [row[metric] for row in result["per_seed"] if metric in row]
    if values:
        return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, len(values)
    return float(result["metrics"].get(metric, math.nan)), 0.0, 1


def _levels(results: list[dict[str, Any]], key: str | None) -> list[Any]:
    if key is None:
        return [None]
    levels = list(dict.fromkeys(config_value(r, key) for r in results))
    try:
        return sorted(levels)
    except TypeError:
        return levels


def _select(results: list[dict[str, Any]], where: dict[str | None, Any]) -> list[dict[str, Any]]:
    return [r for r in results if all(k is None or config_value(r, k) == v for k, v in where.items())]


def _pooled(results: list[dict[str, Any]], metric: str) -> tuple[float, float]:
    """Mean and std of a metric over the jobs of one cell (normally one job)."""
    stats = [metric_stats(r, metric) for r in results]
    if not stats:
        return math.nan, 0.0
    return float(np.mean([s[0] for s in stats])), float(np.mean([s[1] for s in stats]))


def _line(ax, results, spec, metric) -> None:
    xs, hues = _levels(results, spec["x"]), _levels(results, spec.get("hue"))
    dodge = 0.015 * (max(xs) - min(xs)) if len(xs) > 1 else 0.0  # keep the error bars of the lines apart
    for j, hue in enumerate(hues):
        points = [_pooled(_select(results, {spec["x"]: x, spec.get("hue"): hue}), metric) for x in xs]
        shift = (j - (len(hues) - 1) / 2) * dodge
        ax.errorbar([x + shift for x in xs], [p[0] for p in points], yerr=[p[1] for p in points], marker="o",
                    capsize=3, label=None if hue is None else f"{spec['hue']}={hue}")
    ax.set_xlabel(spec["x"])


def _bar(ax, results, spec, metric) -> None:
    xs, hues = _levels(results, spec["x"]), _levels(results, spec.get("hue"))
    width = 0.8 / len(hues)
    for j, hue in enumerate(hues):
        points = [_pooled(_select(results, {spec["x"]: x, spec.get("hue"): hue}), metric) for x in xs]
        ax.bar(np.arange(len(xs)) + (j - (len(hues) - 1) / 2) * width, [p[0] for p in points], width,
               yerr=[p[1] for p in points], capsize=3, label=None if hue is None else f"{spec['hue']}={hue}")
    ax.set_xticks(np.arange(len(xs)), [str(x) for x in xs], rotation=30, ha="right")
    ax.set_xlabel(spec["x"])


def _heatmap(ax, results, spec, metric) -> None:
    xs, ys = _levels(results, spec["x"]), _levels(results, spec["y"])
    cells = [[_pooled(_select(results, {spec["x"]: x, spec["y"]: y}), metric) for x in xs] for y in ys]
    means = np.array([[c[0] for c in row] for row in cells])
    image = ax.imshow(means, cmap="viridis")
    for i, row in enumerate(cells):
        for j, (mean, std) in enumerate(row):
            bright = image.norm(mean) > 0.6  # dark text on the bright end of viridis
            ax.text(j, i, f"{mean:.3g}\n±{std:.2g}", ha="center", va="center", fontsize=7, color="k" if bright else "w")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=30, ha="right")
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(spec["x"])
    ax.set_ylabel(spec["y"])
    ax.figure.colorbar(image, ax=ax, fraction=0.046)


DRAW = {"line": _line, "bar": _bar, "heatmap": _heatmap}


def check_figure(spec: dict[str, Any]) -> None:
    """Raise ValueError unless a figure declaration has a name, a known kind, x, metrics (and y for heatmaps)."""
    for key in ("name", "kind", "x", "metrics"):
        if key not in spec:
            raise ValueError(f"figures: each figure needs the key {key!r}; got {spec}")
    if spec["kind"] not in KINDS:
        raise ValueError(f"figures.kind must be one of {', '.join(KINDS)}; got {spec['kind']!r}")
    if spec["kind"] == "heatmap" and "y" not in spec:
        raise ValueError(f"figures: a heatmap needs the key 'y'; got {spec}")


def markdown_table(results: list[dict[str, Any]], spec: dict[str, Any]) -> str:
    """One row per job: its x/hue/y values and `mean ± std` of every metric of the figure."""
    keys = [k for k in (spec["x"], spec.get("hue"), spec.get("y")) if k]
    header = [*keys, "seeds", *spec["metrics"]]
    rows = []
    for result in sorted(results, key=lambda r: [str(config_value(r, k)) for k in keys]):
        cells = [str(config_value(result, k)) for k in keys] + [str(len(result["seeds"]))]
        for metric in spec["metrics"]:
            mean, std, n = metric_stats(result, metric)
            cells.append(f"{mean:.4g} ± {std:.2g}" if n > 1 else f"{mean:.4g}")
        rows.append(cells)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def draw_figure(results: list[dict[str, Any]], spec: dict[str, Any], out_dir: Path) -> list[Path]:
    """Draw one declared figure (one panel per metric) as PNG and PDF plus its Markdown table; returns the paths."""
    check_figure(spec)
    metrics = spec["metrics"]
    columns = min(len(metrics), 3)
    rows = math.ceil(len(metrics) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        DRAW[spec["kind"]](ax, results, spec, metric)
        ax.set_title(metric)
        if spec["kind"] != "heatmap" and spec.get("hue"):
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    seeds = sorted({len(r["seeds"]) for r in results})
    fig.suptitle(f"{spec['name']}: mean ± std over {'/'.join(map(str, seeds))} seeds, {len(results)} jobs")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{spec['name']}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    table = out_dir / f"{spec['name']}.md"
    table.write_text(markdown_table(results, spec))
    return [*paths, table]


def make_figures(sweep_dir: Path, out_dir: Path | None = None) -> list[Path]:
    """Draw every figure declared by the sweep's experiment into `out_dir` (default SWEEP_DIR/figures)."""
    results = read_results(sweep_dir)
    if not results:
        raise ValueError(f"SWEEP_DIR {str(sweep_dir)!r} holds no result.json: run the sweep first")
    specs = next((r["figures"] for r in results if r.get("figures")), [])
    if not specs:
        raise ValueError(f"the experiment of {str(sweep_dir)!r} declares no figures (set `figures:` in its config)")
    paths = []
    for spec in specs:
        paths += draw_figure(results, spec, out_dir or Path(sweep_dir) / "figures")
    return paths


def main(argv: list[str] | None = None) -> None:
    """Command line: dualsampler-figures SWEEP_DIR [--out DIR]."""
    parser = argparse.ArgumentParser(prog="dualsampler-figures", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder, e.g. runs/overlap_sweep")
    parser.add_argument("--out", type=Path, default=None, help="where to write the figures (default SWEEP_DIR/figures)")
    args = parser.parse_args(argv)
    try:
        paths = make_figures(args.sweep_dir, args.out)
    except ValueError as error:
        parser.exit(2, f"dualsampler-figures: {error}\n")
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()

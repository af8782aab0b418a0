"""Table and figure of the blending-methods sweep:
`python experiments/blending_methods/report.py [runs/blending_methods]`.

Reads every job's result.json, labels each job by its algorithm and the options that differ from the defaults
(`multidiffusion (bootstrap 0)`, `mixture_of_diffusers (flat)`,
`mixture_of_diffusers (sigma_scale 0.3)`), and writes next to this file
`blending_methods.md` (mean and 95% t-interval over seeds per metric; FID/KID are one value per job) and
`blending_methods.png`, each metric labelled with its direction and unit from `dualsampler/metrics/registry.py`,
whiskers clipped to the metric's declared range (the table keeps the whole half-width), a dashed line at a target
metric's healthy value and the legend below the panels, as `dualsampler-figures` draws them. The model calls per
image come from the job's trace (result.json), or, for a result without one, from a `Trace` of the job's algorithm
on its samplers and steps over an analytic Gaussian denoiser (the count depends on the algorithm and the samplers,
not on the model)."""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from scipy import stats  # noqa: E402

from dualsampler.metrics.registry import axis_label, describe  # noqa: E402
from dualsampler.runner.results import read_results  # noqa: E402
from dualsampler.sampling import KSampler  # noqa: E402
from dualsampler.trace import Trace  # noqa: E402

HERE = Path(__file__).parent
METRICS = ["seam/gradient_ratio", "seam/color_jump", "seam/perceptual", "region_accuracy/inside",
           "region_accuracy/outside", "fid/judge"]
ORDER = ["whole_run", "alternate", "regional", "fused", "multidiffusion", "multidiffusion (bootstrap 0)",
         "mixture_of_diffusers", "mixture_of_diffusers (sigma_scale 0.3)", "mixture_of_diffusers (flat)",
         "soft_inpainting", "differential_diffusion"]


class Gaussian:
    """`D(x, s) = mu + (x - mu) std^2 / (std^2 + s^2)`: a stand-in denoiser to count model calls."""

    def __init__(self, mu: float) -> None:
        self.mu = mu

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s2 = sigma.reshape(-1, 1, 1, 1) ** 2
        return self.mu + (x - self.mu) * 0.01 / (0.01 + s2)


def label(dual: dict[str, Any]) -> str:
    """The algorithm's name, with the ablated option when it differs from the default."""
    name = dual["algorithm"]
    if name == "multidiffusion" and dual.get("bootstrap") == 0:
        return "multidiffusion (bootstrap 0)"
    if name == "mixture_of_diffusers" and dual.get("weights") == "flat":
        return "mixture_of_diffusers (flat)"
    if name == "mixture_of_diffusers" and dual.get("sigma_scale") != 0.1:
        return f"mixture_of_diffusers (sigma_scale {dual['sigma_scale']:g})"
    return name


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def model_calls(result: dict[str, Any]) -> int:
    """Model calls per image: the job's own trace, or a Trace of the job's algorithm with its samplers and steps."""
    if "trace" in result:
        return result["trace"]["evals_total"]
    config = result["config"]
    algorithm = instantiate(config["dual"])
    size = (config["height"] // 4, config["width"] // 4)
    trace = Trace()
    algorithm(torch.zeros(1, 4, *size), base_sampler=KSampler(Gaussian(-1.0), config["base_sampler"]["sampler"]),
              mask_sampler=KSampler(Gaussian(1.0), config["mask_sampler"].get("sampler", "euler")),  # absent: unused
              mask=instantiate(config["mask"]), seed=0, steps=config["steps"], callback=trace)
    return trace.summary()["evals_total"]


def summarise(results: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """One row per (label, overlap); a job whose algorithm does not consume the overlap (`whole_run`: its config
    records none) is one job for every overlap, so it fills the row of each overlap the sweep ran."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    swept = sorted({r["config"]["overlap_factor"] for r in results if "overlap_factor" in r["config"]}) or [0]
    for result in results:
        overlaps = [result["config"]["overlap_factor"]] if "overlap_factor" in result["config"] else swept
        per_seed = defaultdict(list)
        for row in result["per_seed"]:
            for metric, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    per_seed[metric].append(float(value))
        values = {m: interval(per_seed[m]) if per_seed.get(m) else (result["metrics"].get(m, float("nan")), 0.0)
                  for m in METRICS}
        images = len(result["seeds"])
        row = {"values": values, "sample_s": result["timings"]["sample_s"] / images, "calls": model_calls(result)}
        rows.update({(label(result["dual"]), int(overlap)): row for overlap in overlaps})
    return rows


def table(rows: dict[tuple[str, int], dict[str, Any]]) -> str:
    """The markdown table: one line per (label, overlap), `mean ± half-width` per metric."""
    head = ("| method | overlap | " + " | ".join(map(axis_label, METRICS))
            + " | model calls / image | sampling s / image |")
    lines = [head, "|" + "---|" * (len(METRICS) + 4)]
    for name in ORDER:
        for overlap in sorted({o for n, o in rows if n == name}):
            row = rows[(name, overlap)]
            cells = [f"{m:.3g} ± {h:.2g}" if h else f"{m:.3g}" for m, h in (row["values"][k] for k in METRICS)]
            lines.append(f"| {name} | {overlap} | " + " | ".join(cells)
                         + f" | {row['calls']:g} | {row['sample_s']:.2f} |")
    return "\n".join(lines) + "\n"


def whiskers(metric: str, values: list[tuple[float, float]]) -> list[list[float]] | None:
    """Distances below and above each mean to its 95% t-interval clipped to the metric's declared range (registry
    `describe`); None when no value has an interval (a set-level metric)."""
    if not any(h for _, h in values):
        return None
    info = describe(metric)
    return [[m - max(m - h, info.low) for m, h in values], [min(m + h, info.high) - m for m, h in values]]


def figure(rows: dict[tuple[str, int], dict[str, Any]], path: Path) -> None:
    """Bars per metric: one group per label, one bar per overlap, whiskers the 95% t-interval clipped to the
    metric's range; one legend below the panels."""
    names = [n for n in ORDER if any(k[0] == n for k in rows)]
    overlaps = sorted({o for _, o in rows})
    fig, axes = plt.subplots(2, 3, figsize=(16, 9), layout="constrained")
    width = 0.8 / len(overlaps)
    for ax, metric in zip(axes.flat, METRICS):
        for j, overlap in enumerate(overlaps):
            xs, values = [], []
            for i, name in enumerate(names):
                if (name, overlap) in rows:
                    xs.append(i + (j - (len(overlaps) - 1) / 2) * width)
                    values.append(rows[(name, overlap)]["values"][metric])
            ax.bar(xs, [m for m, _ in values], width, yerr=whiskers(metric, values), capsize=2,
                   label=f"overlap {overlap}")
        info = describe(metric)
        if info.direction == "target":
            ax.axhline(info.target, color="0.4", linestyle="--", linewidth=1, label=f"healthy = {info.target:g}")
        ax.set_title(metric, fontsize=10)
        ax.set_ylabel(axis_label(metric), fontsize=8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(overlaps) + 1,
               fontsize=8)
    fig.suptitle("Blending methods on the world (8 seeds, 20 steps, 128 px; bars: mean over seeds, whiskers: 95% "
                 "t-interval over seeds, clipped to the metric's range; fid/judge: one value per job, no whisker)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    sweep = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/blending_methods")
    rows = summarise(read_results(sweep))
    (HERE / "blending_methods.md").write_text(table(rows))
    figure(rows, HERE / "blending_methods.png")
    print(table(rows))


if __name__ == "__main__":
    main()

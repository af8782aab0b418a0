"""dualsampler-figures: declared figures, a figure for any sweep from its saved Hydra config, axes that say each
metric's direction and unit (dualsampler/metrics/registry.py), and one kind of error bar: the 95% t-interval of
the mean over seeds (or over a data set's (item, seed) images), as the experiments' READMEs report it, drawn
within the metric's range; jobs the figure's keys would merge labelled by the config keys that differ; legends
outside the panels."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import yaml
from matplotlib.container import ErrorbarContainer

from dualsampler.figures import (
    JOB,
    caption,
    figure,
    main,
    make_figures,
    markdown_table,
    read_sweep,
    summarize,
    sweep_figure,
    swept_keys,
    variant_keys,
)
from run_app import run_app

T_975 = {1: 12.706205, 2: 4.302653, 3: 3.182446, 5: 2.570582}  # Student-t 97.5% quantiles by degrees of freedom


def write_job(sweep: Path, overrides: list[str], config: dict, choices: dict, per_seed: list[dict],
              figures: list | None = None, result: bool = True) -> Path:
    """A job folder as `dualsampler-run -m` leaves it: .hydra/{config,hydra,overrides}.yaml and result.json."""
    folder = sweep / (",".join(overrides) or "base")
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump({**config, "figures": figures or []}))
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
        {"hydra": {"runtime": {"choices": {**choices, "hydra/launcher": "basic"}}}}))
    if result:
        numbers = {k for row in per_seed for k, v in row.items() if k != "seed" and isinstance(v, float)}
        metrics = {k: sum(row[k] for row in per_seed if k in row) / sum(k in row for row in per_seed) for k in numbers}
        (folder / "result.json").write_text(json.dumps({
            "name": folder.name, "config": config, "seeds": list(dict.fromkeys(row["seed"] for row in per_seed)),
            "per_seed": per_seed, "metrics": {**metrics, "fid/judge": 10.0 + config["overlap_factor"]}}))
    else:
        (folder / "failure.json").write_text(json.dumps({"error": "ValueError: boom"}))
    return folder


def rows(overlap: int, dual: str) -> list[dict]:
    """Two seeds: seam ratio grows with the overlap, region accuracy 1 then 0.5 (fused) or 1 and 1."""
    return [{"seed": s, "seam/gradient_ratio": 1.0 + overlap / 10 + s / 100,
             "region_accuracy/inside": 1.0 if s == 0 or dual == "alternate" else 0.5} for s in (0, 1)]


@pytest.fixture
def adhoc_sweep(tmp_path) -> Path:
    """`dualsampler-run -m overlap_factor=0,4,8 dual=alternate,fused seeds=2 threads=1` (no figure declared),
    plus one job of the sweep that failed (no result.json)."""
    sweep = tmp_path / "default"
    for overlap in (0, 4, 8):
        for dual in ("alternate", "fused"):
            config = {"seeds": 2, "overlap_factor": overlap, "dual": {"_target_": f"dualsampler.dual.{dual}"}}
            choices = {"dual": dual, "model": "world", "sampler@base_sampler": "euler"}
            write_job(sweep, [f"overlap_factor={overlap}", f"dual={dual}", "seeds=2", "threads=1"], config, choices,
                      rows(overlap, dual))
    write_job(sweep, ["overlap_factor=-1", "dual=fused", "seeds=2", "threads=1"], {"overlap_factor": -1}, {}, [],
              result=False)
    return sweep


def test_the_interval_is_the_95_percent_t_interval_of_the_mean():
    # 0.9, 0.95, 1.0: mean 0.95, sample std 0.05, half-width t(0.975, 2) * 0.05 / sqrt(3)
    point = summarize([0.9, 0.95, 1.0])
    half = T_975[2] * 0.05 / math.sqrt(3)
    assert point.mean == pytest.approx(0.95) and point.n == 3
    assert (point.low, point.high) == pytest.approx((0.95 - half, 0.95 + half), abs=1e-6)
    assert point.label() == f"0.95 ± {half:.2g}" == "0.95 ± 0.12"
    one = summarize([18.0])  # a set-level metric: one value, no interval
    assert (one.low, one.high, one.label()) == (18.0, 18.0, "18")
    assert math.isnan(summarize([]).mean)


@pytest.fixture
def three_seeds(tmp_path) -> list[dict]:
    """Two jobs (overlap 0 and 4) of three seeds: gradient ratios 0.9, 0.95, 1.0 and 1.2, 1.3, 1.4."""
    sweep = tmp_path / "three"
    for overlap, ratios in ((0, (0.9, 0.95, 1.0)), (4, (1.2, 1.3, 1.4))):
        per_seed = [{"seed": s, "seam/gradient_ratio": g, "region_accuracy/inside": 1.0, "judge/inside": "red dots"}
                    for s, g in enumerate(ratios)]
        write_job(sweep, [f"overlap_factor={overlap}"], {"overlap_factor": overlap}, {}, per_seed)
    return read_sweep(sweep)


def test_each_panel_names_its_metrics_direction_and_unit_and_a_target_gets_its_healthy_line(three_seeds):
    spec = {"name": "f", "kind": "line", "x": "overlap_factor",
            "metrics": ["seam/gradient_ratio", "seam/gradient_ratio_error", "region_accuracy/inside", "fid/judge"]}
    fig = figure(three_seeds, spec)
    ratio, error, accuracy, fid = fig.axes[:4]
    assert ratio.get_ylabel() == "seam/gradient_ratio (healthy = 1)"
    assert error.get_ylabel() == "seam/gradient_ratio_error ↓"
    assert accuracy.get_ylabel() == "region_accuracy/inside ↑ (share)"
    assert fid.get_ylabel() == "fid/judge ↓ (judge-feature FID)"
    healthy = [line for line in ratio.lines if line.get_label() == "healthy = 1"]
    assert len(healthy) == 1 and list(healthy[0].get_ydata()) == [1, 1]
    assert not any(line.get_label().startswith("healthy") for ax in (error, accuracy, fid) for line in ax.lines)
    assert "error bars: 95% t-interval over seeds" in fig._suptitle.get_text()
    assert caption(three_seeds, "line") in fig._suptitle.get_text()
    plt.close(fig)


def test_the_error_bars_are_the_hand_computed_t_interval(three_seeds):
    spec = {"name": "f", "kind": "line", "x": "overlap_factor", "metrics": ["seam/gradient_ratio", "fid/judge"]}
    fig = figure(three_seeds, spec)
    ratio, fid = fig.axes[:2]
    (bars,) = ratio.containers[0].lines[2]
    (x0, low0), (_, high0) = bars.get_segments()[0]
    half = T_975[2] * 0.05 / math.sqrt(3)  # overlap 0: 0.9, 0.95, 1.0 (sample std 0.05)
    assert x0 == 0 and (low0, high0) == pytest.approx((0.95 - half, 0.95 + half), abs=1e-6)
    (_, low4), (_, high4) = bars.get_segments()[1]
    assert (low4, high4) == pytest.approx((1.3 - 2 * half, 1.3 + 2 * half), abs=1e-6)  # 1.2, 1.3, 1.4: std 0.1
    assert fid.containers[0].has_yerr is False  # set-level: one value per job, no bar
    plt.close(fig)


def test_a_heatmap_labels_its_colour_bar_and_bars_get_the_healthy_line(three_seeds):
    heat = figure(three_seeds, {"name": "h", "kind": "heatmap", "x": "overlap_factor", "y": "overlap_factor",
                                "metrics": ["region_accuracy/inside"]})
    assert heat.axes[-1].get_ylabel() == "region_accuracy/inside ↑ (share)"
    plt.close(heat)
    bar = figure(three_seeds, {"name": "b", "kind": "bar", "x": "overlap_factor", "metrics": ["seam/gradient_ratio"]})
    labelled = [line for line in bar.axes[0].lines if not line.get_label().startswith("_")]  # not the bars' caps
    assert [(line.get_label(), list(line.get_ydata())) for line in labelled] == [("healthy = 1", [1, 1])]
    plt.close(bar)


def test_a_declared_figure_must_name_a_declared_number(three_seeds):
    with pytest.raises(ValueError, match=r"figures\.metrics: 'seam/smoothness' is not a metric this job reports: "
                                         r"metric 'seam/smoothness' is not declared in dualsampler/metrics/registry"):
        figure(three_seeds, {"name": "f", "kind": "line", "x": "overlap_factor", "metrics": ["seam/smoothness"]})
    with pytest.raises(ValueError, match=r"'judge/inside' is a per-image reading \(prompt\), not a number to plot"):
        figure(three_seeds, {"name": "f", "kind": "line", "x": "overlap_factor", "metrics": ["judge/inside"]})


def test_the_swept_keys_come_from_the_jobs_saved_overrides(adhoc_sweep):
    results = read_sweep(adhoc_sweep)
    assert len(results) == 6  # the failed job has no result.json
    # seeds=2 is set alike in every job; threads names no config value (a neutral key)
    assert swept_keys(results) == ["overlap_factor", "dual"]
    spec = sweep_figure(results, "default")
    assert (spec["kind"], spec["x"], spec["hue"]) == ("line", "overlap_factor", "dual")
    # the derived seam/gradient_ratio_error comes from each image's ratio (registry.derived)
    assert spec["metrics"] == ["fid/judge", "region_accuracy/inside", "seam/gradient_ratio", "seam/gradient_ratio_error"]


def test_a_sweep_without_declared_figures_gets_one_panel_per_metric_against_its_swept_keys(adhoc_sweep, tmp_path):
    out = tmp_path / "figures"
    paths = make_figures(adhoc_sweep, out)
    assert [p.name for p in paths] == ["default.png", "default.pdf", "default.md"]
    assert all(p.stat().st_size > 0 for p in paths)
    table = (out / "default.md").read_text().splitlines()
    assert table[0] == ("| overlap_factor | dual | seeds | fid/judge ↓ (judge-feature FID) | region_accuracy/inside ↑ "
                        "(share) | seam/gradient_ratio (healthy = 1) | seam/gradient_ratio_error ↓ |")
    assert len(table) == 2 + 6 + 2 and table[-1].startswith(caption(read_sweep(adhoc_sweep), "line") + ". ")
    assert "unclipped" in table[-1]
    fused_8 = next(line for line in table if line.startswith("| 8 | fused |"))
    assert f"| 0.75 ± {T_975[1] * 0.25:.2g} |" in fused_8  # accuracy 1 and 0.5: t(0.975, 1) * 0.3536 / sqrt(2)
    assert "| 1.805 ± 0.064 |" in fused_8  # ratios 1.80 and 1.81: t(0.975, 1) * 0.00707 / sqrt(2) = 0.0635
    assert "| 0.805 ± 0.064 |" in fused_8  # the ratio's error |G - 1| per image: 0.80 and 0.81
    assert "| 18 |" in fused_8  # a set-level metric: its one value


def test_categorical_keys_give_bars_and_a_second_key_the_hue(tmp_path):
    sweep = tmp_path / "pairs"
    for base in ("euler", "heun"):
        for cfg in (3.0, 5.0):
            config = {"overlap_factor": 2, "base_sampler": {"cfg": cfg}}
            write_job(sweep, [f"sampler@base_sampler={base}", f"base_sampler.cfg={cfg}"], config,
                      {"sampler@base_sampler": base}, rows(2, "alternate"))
    results = read_sweep(sweep)
    spec = sweep_figure(results, "pairs")
    assert (spec["kind"], spec["x"], spec["hue"]) == ("line", "base_sampler.cfg", "sampler@base_sampler")
    only_samplers = [r for r in results if r["config"]["base_sampler"]["cfg"] == 3.0]
    spec = sweep_figure(only_samplers, "pairs")
    assert (spec["kind"], spec["x"], spec["hue"]) == ("bar", "sampler@base_sampler", None)
    assert make_figures(sweep, tmp_path / "out")[0].name == "pairs.png"


def test_a_single_job_gets_one_bar_per_metric(tmp_path):
    sweep = tmp_path / "one"
    write_job(sweep, ["seeds=2"], {"seeds": 2, "overlap_factor": 2}, {}, rows(2, "fused"))
    results = read_sweep(sweep)
    assert sweep_figure(results, "one")["x"] == JOB
    make_figures(sweep, tmp_path / "out")
    assert "| seeds=2 | 2 |" in (tmp_path / "out" / "one.md").read_text()


def test_declared_figures_are_read_from_the_saved_config(tmp_path):
    sweep = tmp_path / "overlap"
    figure = {"name": "declared", "kind": "line", "x": "overlap_factor", "hue": "dual",
              "metrics": ["region_accuracy/inside"]}
    for overlap in (0, 2):
        for dual in ("alternate", "fused"):
            write_job(sweep, [f"overlap_factor={overlap}", f"dual={dual}"], {"overlap_factor": overlap},
                      {"dual": dual}, rows(overlap, dual), figures=[figure])
    paths = make_figures(sweep, tmp_path / "out")
    assert [p.name for p in paths] == ["declared.png", "declared.pdf", "declared.md"]
    assert "| 2 | alternate | 2 | 1 ± 0 |" in (tmp_path / "out" / "declared.md").read_text()


def test_a_sweep_without_saved_overrides_is_refused_with_the_reason(tmp_path, capsys):
    sweep = tmp_path / "bare"
    folder = write_job(sweep, ["overlap_factor=2"], {"overlap_factor": 2}, {}, rows(2, "fused"))
    write_job(sweep, ["overlap_factor=4"], {"overlap_factor": 4}, {}, rows(4, "fused"))
    (folder / ".hydra" / "overrides.yaml").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main([str(sweep)])
    assert exit_info.value.code == 2
    assert "overrides.yaml" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "empty")])
    assert "holds no result.json" in capsys.readouterr().err


def coin_flips(tmp_path) -> list[dict]:
    """Two jobs of four seeds whose inside accuracy is 0 or 1 per image (one 32 px patch): 0, 1, 0, 1 and 1, 1, 1, 0,
    so the t-interval of the means (0.5 ± 0.92, 0.75 ± 0.8) runs past both ends of [0, 1]."""
    sweep = tmp_path / "flips"
    for overlap, hits in ((0, (0.0, 1.0, 0.0, 1.0)), (4, (1.0, 1.0, 1.0, 0.0))):
        per_seed = [{"seed": s, "region_accuracy/inside": hit} for s, hit in enumerate(hits)]
        write_job(sweep, [f"overlap_factor={overlap}"], {"overlap_factor": overlap}, {}, per_seed)
    return read_sweep(sweep)


@pytest.mark.parametrize("kind", ["line", "bar"])
def test_whiskers_are_drawn_within_the_metrics_range_and_the_table_keeps_the_whole_interval(tmp_path, kind):
    results = coin_flips(tmp_path)
    spec = {"name": "flips", "kind": kind, "x": "overlap_factor", "metrics": ["region_accuracy/inside"]}
    fig = figure(results, spec)
    (bars,) = next(c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)).lines[2]
    ends = [y for (_, low), (_, high) in bars.get_segments() for y in (low, high)]
    assert ends == pytest.approx([0.0, 1.0, 0.0, 1.0])  # computed: 0.5 ± 0.92 and 0.75 ± 0.80
    assert "clipped to the metric's range" in fig._suptitle.get_text()
    plt.close(fig)
    half = T_975[3] * math.sqrt(1 / 3) / 2  # 0, 1, 0, 1: sample std sqrt(1/3)
    table = markdown_table(results, spec)
    assert f"| 0 | 4 | 0.5 ± {half:.2g} |" in table and half == pytest.approx(0.9187, abs=1e-4)
    assert "unclipped" in table


def test_a_data_sets_interval_is_over_its_item_x_seed_images(tmp_path):
    sweep = tmp_path / "region_sets"
    for dual in ("alternate", "fused"):  # 3 items x 2 seeds = 6 rows per job
        per_seed = [{"seed": s, "item": item, "region_accuracy/inside": float(s), "seam/gradient_ratio": 1.0 + s / 10}
                    for item in ("w01", "w02", "w03") for s in (0, 1)]
        per_seed[0]["region_accuracy/region2"] = 1.0  # a key only one item (with 3 regions) has
        write_job(sweep, [f"dual={dual}"], {"overlap_factor": 2, "seeds": 2}, {"dual": dual}, per_seed)
    results = read_sweep(sweep)
    spec = {"name": "region_sets", "kind": "bar", "x": "dual",
            "metrics": ["region_accuracy/inside", "region_accuracy/region2"]}
    fig = figure(results, spec)
    title = fig._suptitle.get_text()
    assert "2 jobs, 6 images (3 items x 2 seeds) each" in title
    assert "95% t-interval over images (item x seed)" in title and "over seeds" not in title
    plt.close(fig)
    table = markdown_table(results, spec).splitlines()
    assert table[0].startswith("| dual | images (item x seed) | region_accuracy/inside ↑ (share) |")
    half = T_975[5] * math.sqrt(0.3) / math.sqrt(6)  # 0, 1, 0, 1, 0, 1: sample std sqrt(0.3), 6 images
    assert table[2] == f"| alternate | 6 | 0.5 ± {half:.2g} | 1 (n=1) |"
    assert "over images (item x seed)" in table[-1] and "over seeds" not in table[-1]
    assert "(n=K): the metric is on K of the job's rows only" in table[-1]


@pytest.fixture
def ablation(tmp_path) -> Path:
    """`dual=multidiffusion overlap_factor=0,4` and the same with `dual.bootstrap=0` (an override outside the
    figure's keys): two jobs per (dual, overlap) that differ only by `dual.bootstrap`."""
    sweep = tmp_path / "blending"
    figure_ = {"name": "blending", "kind": "bar", "x": "dual", "hue": "overlap_factor",
               "metrics": ["seam/gradient_ratio", "region_accuracy/inside"]}
    for bootstrap, extra in ((0.2, []), (0, ["dual.bootstrap=0"])):
        for overlap in (0, 4):
            config = {"overlap_factor": overlap, "dual": {"_target_": "dualsampler.dual.MultiDiffusion",
                                                          "bootstrap": bootstrap, "overlap_factor": overlap}}
            write_job(sweep, [*extra, "dual=multidiffusion", f"overlap_factor={overlap}"], config,
                      {"dual": "multidiffusion"}, rows(overlap + 10 * bootstrap, "fused"), figures=[figure_])
    return sweep


def test_jobs_differing_only_by_an_override_outside_the_figures_keys_are_labelled_apart(ablation, tmp_path):
    results = read_sweep(ablation)
    assert variant_keys(results, ["dual", "overlap_factor"]) == ["dual.bootstrap"]
    assert variant_keys(results, ["dual", "overlap_factor", "dual.bootstrap"]) == []
    spec = results[0]["figures"][0]
    fig = figure(results, spec)
    ratio = fig.axes[0]
    assert [t.get_text() for t in ratio.get_xticklabels()] == ["multidiffusion\ndual.bootstrap=0",
                                                                "multidiffusion\ndual.bootstrap=0.2"]
    heights = [bar.get_height() for container in ratio.containers if hasattr(container, "patches") for bar in container]
    assert heights == pytest.approx([1.005, 1.205, 1.405, 1.605])  # overlap 0, then 4: bootstrap 0 and 0.2, not pooled
    plt.close(fig)
    make_figures(ablation, tmp_path / "out")
    table = (tmp_path / "out" / "blending.md").read_text()
    assert table.splitlines()[0].startswith("| dual | variant | overlap_factor | seeds |")
    assert "| multidiffusion | dual.bootstrap=0 | 4 | 2 |" in table
    assert "| multidiffusion | dual.bootstrap=0.2 | 4 | 2 |" in table
    assert "variant: the config keys (dual.bootstrap) whose values differ" in table


def test_the_legend_sits_below_the_panels_and_covers_no_bar(ablation):
    results = read_sweep(ablation)
    fig = figure(results, results[0]["figures"][0])
    fig.canvas.draw()
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["healthy = 1", "overlap_factor=0", "overlap_factor=4"]
    box = legend.get_window_extent()
    assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)
    assert all(box.y1 < ax.get_window_extent().y0 for ax in fig.axes)
    plt.close(fig)


@pytest.mark.slow
def test_the_cli_draws_an_adhoc_sweep(tmp_path, capsys):
    """A sweep by `dualsampler-run -m` (the Hydra app in this process), drawn by `dualsampler-figures`' main; the
    installed commands run as processes in tests/test_packaging.py."""
    sweep = tmp_path / "adhoc"
    done = run_app("overlap_factor=0,8", "seeds=2", "steps=2", "model=random_world", "metrics=seams", "logger=none",
                   f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    main([str(sweep)])
    assert str(sweep / "figures" / "adhoc.md") in capsys.readouterr().out.splitlines()
    table = (sweep / "figures" / "adhoc.md").read_text().splitlines()
    assert table[0] == ("| overlap_factor | seeds | seam/color_jump ↓ (colour spreads) | seam/gradient_ratio "
                        "(healthy = 1) | seam/gradient_ratio_error ↓ |")
    assert [line.split(" | ")[0] for line in table[2:4]] == ["| 0", "| 8"]

"""dualsampler-figures: declared figures, a figure for any sweep from its saved Hydra config, and intervals that
suit each metric (Wilson for region accuracy, a proportion)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from dualsampler.figures import (
    JOB,
    main,
    make_figures,
    read_sweep,
    summarize,
    sweep_figure,
    swept_keys,
    wilson_interval,
)
from run_app import run_app

Z = 1.959964


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
        metrics = {k: sum(row[k] for row in per_seed) / len(per_seed) for k in per_seed[0] if k != "seed"}
        (folder / "result.json").write_text(json.dumps({
            "name": folder.name, "config": config, "seeds": [row["seed"] for row in per_seed],
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


def test_wilson_interval_matches_its_closed_form_at_the_edges():
    # p = 0: (0, z^2/n / (1 + z^2/n)); p = 1 mirrors it
    n = 10
    assert wilson_interval(0.0, n) == pytest.approx((0.0, (Z**2 / n) / (1 + Z**2 / n)))
    assert wilson_interval(1.0, n) == pytest.approx((1 / (1 + Z**2 / n), 1.0))
    low, high = wilson_interval(0.5, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert all(math.isnan(v) for v in wilson_interval(0.5, 0))
    with pytest.raises(ValueError, match="p must be a proportion"):
        wilson_interval(1.5, 4)


def test_a_proportion_keeps_its_interval_inside_0_1_where_mean_plus_std_would_not():
    values = [1.0, 1.0, 1.0, 0.0]  # mean 0.75, std 0.5: mean + std = 1.25
    wilson = summarize(values, proportion=True)
    plain = summarize(values, proportion=False)
    assert plain.high == pytest.approx(1.25) and plain.low == pytest.approx(0.25)
    assert 0 <= wilson.low < wilson.mean == 0.75 < wilson.high <= 1
    assert (wilson.low, wilson.high) == pytest.approx(wilson_interval(0.75, 4))
    assert wilson.label(True).startswith("0.75 [") and plain.label(False) == "0.75 ± 0.5"


def test_the_swept_keys_come_from_the_jobs_saved_overrides(adhoc_sweep):
    results = read_sweep(adhoc_sweep)
    assert len(results) == 6  # the failed job has no result.json
    # seeds=2 is set alike in every job; threads names no config value (a neutral key)
    assert swept_keys(results) == ["overlap_factor", "dual"]
    spec = sweep_figure(results, "default")
    assert (spec["kind"], spec["x"], spec["hue"]) == ("line", "overlap_factor", "dual")
    assert spec["metrics"] == ["fid/judge", "region_accuracy/inside", "seam/gradient_ratio"]


def test_a_sweep_without_declared_figures_gets_one_panel_per_metric_against_its_swept_keys(adhoc_sweep, tmp_path):
    out = tmp_path / "figures"
    paths = make_figures(adhoc_sweep, out)
    assert [p.name for p in paths] == ["default.png", "default.pdf", "default.md"]
    assert all(p.stat().st_size > 0 for p in paths)
    table = (out / "default.md").read_text().splitlines()
    assert table[0] == "| overlap_factor | dual | seeds | fid/judge | region_accuracy/inside | seam/gradient_ratio |"
    assert len(table) == 2 + 6
    fused_8 = next(line for line in table if line.startswith("| 8 | fused |"))
    low, high = wilson_interval(0.75, 2)
    assert f"0.75 [{low:.3g}, {high:.3g}]" in fused_8  # region accuracy: mean and Wilson interval
    assert "1.805 ± 0.0071" in fused_8  # seam ratio: mean ± std of 1.80 and 1.81
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
    assert "| 2 | alternate | 2 | 1 [" in (tmp_path / "out" / "declared.md").read_text()


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
    assert table[0] == "| overlap_factor | seeds | seam/color_jump | seam/gradient_ratio |"
    assert [line.split(" | ")[0] for line in table[2:]] == ["| 0", "| 8"]

"""`dualsampler-figures` on broken input (issue 19): each case exits with status 2 and one line naming what is wrong
(the file, the figure's key or the output folder), never a traceback, and draws nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dualsampler.figures import main
from test_figures import rows, write_job

FIGURE = {"name": "f", "kind": "line", "x": "overlap_factor", "metrics": ["seam/gradient_ratio"]}


def sweep_of(tmp_path: Path, figures: list | None = None) -> Path:
    """Two finished jobs of `-m overlap_factor=0,4`, declaring `figures`."""
    sweep = tmp_path / "sweep"
    for overlap in (0, 4):
        write_job(sweep, [f"overlap_factor={overlap}"], {"seeds": 2, "overlap_factor": overlap}, {"dual": "alternate"},
                  rows(overlap, "alternate"), figures)
    return sweep


def truncated(sweep: Path) -> list[str]:
    path = next(sweep.rglob("result.json"))
    path.write_text(path.read_text()[:40])
    return [str(sweep)]


def holding(sweep: Path, payload: object) -> list[str]:
    next(sweep.rglob("result.json")).write_text(json.dumps(payload))
    return [str(sweep)]


def out_file(sweep: Path) -> list[str]:
    (sweep / "figures.png").write_text("not a folder")
    return [str(sweep), "--out", str(sweep / "figures.png")]


# (id, declared figures, how the sweep is broken -> the command line, regex of the one-line error)
CASES = [
    ("truncated result.json", None, truncated, r"result\.json' is not a readable result\.json \(truncated\?\)"),
    ("result.json holding []", None, lambda s: holding(s, []), r"result\.json' is not a job's result"),
    ("result.json without metrics", None, lambda s: holding(s, {"seeds": [0], "per_seed": []}),
     r"result\.json' is not a job's result \(an object with metrics, seeds and per_seed\)"),
    ("--out is a file", None, out_file, r"--out '.*figures\.png' is a file; it must be a folder"),
    ("unknown figure key", [{**FIGURE, "hues": "dual"}], lambda s: [str(s)], r"figures\[0\]: unknown key 'hues'"),
    ("figure kind", [{**FIGURE, "kind": "pie"}], lambda s: [str(s)], r"figures\[0\]\.kind must be one of line, bar, heatmap"),
    ("figure without metrics", [{k: v for k, v in FIGURE.items() if k != "metrics"}], lambda s: [str(s)],
     r"figures\[0\]: each figure needs the key 'metrics'"),
    ("figure x names nothing", [{**FIGURE, "x": "overlap"}], lambda s: [str(s)],
     r"figures\[0\]\.x: 'overlap' names no config key or group"),
    ("figure name a path", [{**FIGURE, "name": "../f"}], lambda s: [str(s)], r"figures\[0\]\.name must be a file name"),
    ("figure metrics a string", [{**FIGURE, "metrics": "seam/gradient_ratio"}], lambda s: [str(s)],
     r"figures\[0\]\.metrics must be a non-empty list of metric names"),
    ("heatmap without y", [{**FIGURE, "kind": "heatmap"}], lambda s: [str(s)], r"figures\[0\]: a heatmap needs the key 'y'"),
    ("figures not a list", "overlap", lambda s: [str(s)], r"figures must be a list of figure declarations"),
]


@pytest.mark.parametrize("figures, broken, message", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_broken_input_exits_2_with_one_line_naming_it(tmp_path, capsys, figures, broken, message):
    sweep = sweep_of(tmp_path, figures)
    with pytest.raises(SystemExit) as exit_:
        main(broken(sweep))
    said = capsys.readouterr()
    assert exit_.value.code == 2
    assert re.search(message, said.err), said.err
    assert said.err.startswith("dualsampler-figures: ") and said.err.count("\n") == 1 and "Traceback" not in said.err
    assert not list(sweep.rglob("*.pdf"))


def test_a_declared_figure_with_a_key_list_draws(tmp_path, capsys):
    sweep = sweep_of(tmp_path, [{**FIGURE, "kind": "bar", "x": ["overlap_factor", "seeds"]}])
    main([str(sweep)])
    assert (sweep / "figures" / "f.png").is_file()

"""A resume over a job folder whose result.json holds no result (issue 19): `[]`, `{}` or a truncated file is not
a finished job and not another configuration's result; the relaunch recomputes the job and leaves a whole result."""

from __future__ import annotations

import json

import pytest

from run_app import run_app
from test_faults_cli import TINY, cli_env

pytestmark = pytest.mark.slow  # each case runs the Hydra app twice


@pytest.mark.parametrize("held", ["[]", "{}", '{"config": {"ste'], ids=["a list", "an empty object", "truncated"])
def test_a_result_json_holding_no_result_is_recomputed_on_resume(tmp_path, held):
    sweep = tmp_path / "sweep"
    args = [*TINY, "overlap_factor=2", f"hydra.sweep.dir={sweep}"]
    assert run_app(*args, env=cli_env(tmp_path)).returncode == 0
    path = next(sweep.rglob("result.json"))
    path.write_text(held)
    again = run_app(*args, env=cli_env(tmp_path))
    assert again.returncode == 0, again.stderr[-3000:]
    result = json.loads(path.read_text())
    assert result["seeds"] == [0] and "seam/gradient_ratio" in result["metrics"]
    assert all((path.parent / image).is_file() for image in result["images"])

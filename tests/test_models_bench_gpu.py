"""scripts/bench_gpu.py's code path on the CPU with a tiny UNet (`--tiny`); its timings are not checked here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_gpu_tiny_runs_every_mode_and_fused_batches_both_prompts_in_one_forward(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_gpu.py"), "--tiny", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "x floor" in done.stdout and "fused" in done.stdout
    result = json.loads(out.read_text())
    runs, steps = result["runs"], result["steps"]
    assert set(runs) == {"single", "seed", "regional", "fused"}
    assert runs["single"]["batches"] == {"2": steps}  # cond + uncond in one forward per step
    assert runs["seed"]["batches"] == {"2": 2 * steps}  # each sampler its own forward per step
    assert runs["fused"]["batches"] == {"3": steps}  # two prompts + the shared negative, one forward per step
    assert all(r["seconds"] > 0 and r["floor_seconds"] > 0 and r["peak_gib"] is None for r in runs.values())

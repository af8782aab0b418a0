"""scripts/bench_gpu.py's code path on the CPU with a tiny UNet (`--tiny`); its timings are not checked here. The
script runs in the test process (its command line parsed from sys.argv), one thread as everywhere in the tests."""

import json
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_gpu_tiny_runs_every_mode_and_fused_batches_both_prompts_in_one_forward(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench.json"
    script = ROOT / "scripts" / "bench_gpu.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--tiny", "--json", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    printed = capsys.readouterr().out
    assert "x floor" in printed and "fused" in printed
    result = json.loads(out.read_text())
    runs, steps = result["runs"], result["steps"]
    assert set(runs) == {"single", "seed", "regional", "fused"}
    assert runs["single"]["batches"] == {"2": steps}  # cond + uncond in one forward per step
    assert runs["seed"]["batches"] == {"2": 2 * steps}  # each sampler its own forward per step
    assert runs["fused"]["batches"] == {"3": steps}  # two prompts + the shared negative, one forward per step
    assert all(r["seconds"] > 0 and r["floor_seconds"] > 0 and r["peak_gib"] is None for r in runs.values())

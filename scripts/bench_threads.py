"""Wall time of the main job against its `threads` setting, on an idle machine and beside a CPU-bound process.

    python scripts/bench_threads.py [--quick] [--repeats 2] [--candidates torch,1,2,default]

Each run is `python -m dualsampler.run experiment=overlap_sweep logger=none name=bench hydra.sweep.dir=<tmp>
threads=<t>` as a subprocess (`--quick`: `overlap_factor=4`, the 2-job subset of the 10-job sweep), once with the
machine as it is ("idle") and once with `python -c "while True: pass"` spinning beside it ("busy"). Candidates:
`torch` (torch's own default thread count, passed explicitly), an integer, `auto`, or `default` (no `threads`
override: whatever the runner does with `threads: null`). Candidates that resolve to the same override run once.

Printed per candidate and condition: the wall time of each repeat, the sum of the jobs' own `timings.total_s`
(without Python's start-up and imports), the 1-minute load average when the run started, and the ratios of the
medians to threads=1 in the same condition. Last, the runs grouped by byte-identical images.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

QUICK = ("overlap_factor=4",)


def overrides(candidate: str) -> tuple[str, ...]:
    """The command-line override of one candidate: none for `default`, torch's own count for `torch`."""
    if candidate == "default":
        return ()
    if candidate == "torch":
        return (f"threads={torch.get_num_threads()}",)
    if candidate != "auto" and (not candidate.isdigit() or int(candidate) < 1):
        raise ValueError(f"candidates: torch, default, auto or a positive integer; got {candidate!r}")
    return (f"threads={candidate}",)


def run(sweep_dir: Path, extra: tuple[str, ...]) -> tuple[float, float]:
    """Run the job into `sweep_dir`; its wall time and the sum of its jobs' `timings.total_s`."""
    command = [sys.executable, "-m", "dualsampler.run", "experiment=overlap_sweep", "logger=none", "name=bench",
               f"hydra.sweep.dir={sweep_dir}", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    results = sorted(sweep_dir.glob("*/result.json"))
    if done.returncode or not results:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return wall, sum(json.loads(path.read_text())["timings"]["total_s"] for path in results)


def image_hashes(sweep_dir: Path) -> dict[str, str]:
    """sha256 of every saved image of a sweep, by its path relative to the sweep folder."""
    return {str(path.relative_to(sweep_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(sweep_dir.glob("*/images/**/*.png"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the 2-job subset (overlap_factor=4)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--candidates", default="torch,1,2,default")
    parser.add_argument("--conditions", default="idle,busy")
    args = parser.parse_args()
    labels: dict[tuple[str, ...], list[str]] = {}
    for candidate in args.candidates.split(","):
        labels.setdefault(overrides(candidate), []).append(candidate)
    if ("threads=1",) not in labels:
        raise ValueError("candidates: include 1, the reference of the ratios")
    conditions = args.conditions.split(",")
    if not set(conditions) <= {"idle", "busy"} or args.repeats < 1:
        raise ValueError(f"conditions: idle and/or busy; repeats >= 1; got {args.conditions!r}, {args.repeats}")
    extra = QUICK if args.quick else ()
    print(f"command: {sys.executable} -m dualsampler.run experiment=overlap_sweep logger=none name=bench "
          f"hydra.sweep.dir=<tmp> {' '.join(extra)} [threads=<t>]; cores {os.cpu_count()}", flush=True)
    walls: dict[tuple, list[float]] = {}
    jobs: dict[tuple, list[float]] = {}
    loads: dict[tuple, list[float]] = {}
    hashes: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for condition in conditions:
                spinner = (subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition == "busy"
                           else None)
                try:
                    for override, names in labels.items():
                        key = (override, condition)
                        folder = Path(tmp) / f"{'-'.join(names)}-{condition}-{repeat}"
                        loads.setdefault(key, []).append(os.getloadavg()[0])
                        wall, total = run(folder, extra + override)
                        walls.setdefault(key, []).append(wall)
                        jobs.setdefault(key, []).append(total)
                        hashes[folder.name] = image_hashes(folder)
                        print(f"  {'/'.join(names):>12} {condition:>4} repeat {repeat}: {wall:6.1f} s wall, "
                              f"{total:6.1f} s in jobs, load {loads[key][-1]:.2f}", flush=True)
                finally:
                    if spinner is not None:
                        spinner.kill()
                        spinner.wait()
    print(f"\n{'threads':>14} {'cond':>4} {'wall s (each)':>22} {'jobs s (each)':>22} {'load (each)':>14} "
          f"{'wall/1':>7} {'jobs/1':>7}")
    for condition in conditions:
        reference = ("threads=1",), condition
        for override, names in labels.items():
            key = (override, condition)
            wall_ratio = statistics.median(walls[key]) / statistics.median(walls[reference])
            job_ratio = statistics.median(jobs[key]) / statistics.median(jobs[reference])
            print(f"{'/'.join(names):>14} {condition:>4} {' '.join(f'{w:6.1f}' for w in walls[key]):>22} "
                  f"{' '.join(f'{t:6.1f}' for t in jobs[key]):>22} "
                  f"{' '.join(f'{x:.2f}' for x in loads[key]):>14} {wall_ratio:7.2f} {job_ratio:7.2f}")
    groups: dict[tuple, list[str]] = {}
    for name, found in hashes.items():
        groups.setdefault(tuple(sorted(found.items())), []).append(name)
    print(f"\n{len(hashes)} runs of {len(next(iter(hashes.values())))} images each, in {len(groups)} group(s) of "
          f"byte-identical images:")
    for names in groups.values():
        print("  " + ", ".join(names))


if __name__ == "__main__":
    main()

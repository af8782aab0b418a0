"""A job's files on disk: `result.json` (written atomically, last) marks a finished job, `failure.json` a failed one."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
FAILURE_FILE = "failure.json"


def recorded_config(out_dir: Path) -> dict[str, Any] | None:
    """The config recorded in the job folder's result.json (a finished job's identity); None when there is no
    result.json, or it does not parse as a result."""
    try:
        result = json.loads((out_dir / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    config = result.get("config") if isinstance(result, dict) else None
    return config if isinstance(config, dict) else None


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON to a temporary file beside `path`, fsync it, then rename: readers see all of it or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finished_result(out_dir: Path, config: dict[str, Any], weights: str | None,
                    inputs: str | None = None) -> dict[str, Any] | None:
    """The job's result.json when it exists, parses and was computed from exactly `config`, the weights
    fingerprinted `weights` (the model source's fingerprint) and the input files fingerprinted `inputs` (its
    items' images and masks, None when it reads none); else None."""
    path = out_dir / RESULT_FILE
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict):  # e.g. `[]`: not a result this job wrote
        return None
    same_config = result.get("config") == json.loads(json.dumps(config, default=str))
    same_files = result.get("weights") == weights and result.get("inputs") == inputs
    return result if same_config and same_files else None


def read_results(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every result.json under `sweep_dir`, with `dir` set to its job folder; sorted by folder. Raises ValueError
    naming a result.json that does not parse (truncated) or holds no result object with its `metrics`, `seeds`
    and `per_seed`."""
    results = []
    for path in sorted(Path(sweep_dir).rglob(RESULT_FILE)):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{str(path)!r} is not a readable result.json (truncated?): {error}") from None
        if not isinstance(result, dict) or not all(isinstance(result.get(key), kind) for key, kind in
                                                   (("metrics", dict), ("seeds", list), ("per_seed", list))):
            raise ValueError(f"{str(path)!r} is not a job's result (an object with metrics, seeds and per_seed)")
        result["dir"] = str(path.parent)
        results.append(result)
    return results


def git_commit() -> str:
    """The commit of the checkout the package runs from (weights included), `+dirty` with local changes."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
    """Versions of python, the packages that shape a result, and the git commit."""
    found = {"python": platform.python_version(), "git": git_commit()}
    for package in ("dualsampler", "torch", "diffusers", "hydra-core", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found

"""`dualsampler-run`: the Hydra app. One job per config; `-m` sweeps; a relaunched sweep skips finished jobs.

    dualsampler-run experiment=overlap_sweep               # runs/overlap_sweep/<overrides>/result.json
    dualsampler-figures runs/overlap_sweep                 # the experiment's figures
"""

from __future__ import annotations

import logging
import traceback
from importlib.resources import files
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .runner.job import run_job
from .runner.results import FAILURE_FILE, write_json_atomic
from .runner.settings import ConfigError, Objective

log = logging.getLogger("dualsampler.run")
BASE_JOB_DIR = "base"  # the folder of a job with no overrides
CONF_DIR = Path(str(files("dualsampler.conf")))  # conf/ of the checkout, or of the installed wheel


def job_dir(override_dirname: str) -> str:
    """A job's folder name: its overrides (`a=1,b=x`), or BASE_JOB_DIR when it has none."""
    return override_dirname or BASE_JOB_DIR


OmegaConf.register_new_resolver("job_dir", job_dir, replace=True)


@hydra.main(version_base="1.3", config_path="pkg://dualsampler.conf", config_name="config")
def main(config: DictConfig) -> float:
    """Run the job of `config` and return its objective (a float, for sweepers such as Optuna; the worst value for
    a failed job). A failure is logged and recorded in failure.json, and ends only this job of a sweep."""
    hydra_config = HydraConfig.get()
    out_dir = Path(hydra_config.runtime.output_dir)
    multirun = hydra_config.mode == RunMode.MULTIRUN
    name = job_dir(hydra_config.job.override_dirname)
    lock_dir = Path(hydra_config.sweep.dir if multirun else out_dir.parent) / ".locks"
    parallel_jobs = hydra_config.launcher.get("n_jobs") if multirun else None
    neutral = tuple(hydra_config.job.config.override_dirname.exclude_keys)
    objective = Objective()
    try:
        objective = Objective(**OmegaConf.to_container(config.objective, resolve=True))
        result = run_job(config, out_dir, name, lock_dir, parallel_jobs, neutral)
    except Exception as error:
        if isinstance(error, ConfigError):
            log.error("%s: invalid config: %s", name, error)
        else:
            log.exception("%s failed", name)
        write_json_atomic(
            out_dir / FAILURE_FILE,
            {"name": name, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()},
        )
        if multirun:
            return objective.worst
        raise SystemExit(1) from None
    return objective.value(result["metrics"])


if __name__ == "__main__":
    main()

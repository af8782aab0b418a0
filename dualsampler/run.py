"""`dualsampler-run`: the Hydra app. One job per config; `-m` sweeps; a relaunched sweep skips finished jobs.

    dualsampler-run experiment=overlap_sweep               # runs/overlap_sweep/<overrides>/result.json
    dualsampler-figures runs/overlap_sweep                 # the experiment's figures
"""

from __future__ import annotations

import logging
import traceback
from importlib.resources import files
from pathlib import Path
from typing import Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from .runner.identity import job_name
from .runner.job import run_job
from .runner.results import FAILURE_FILE, write_json_atomic
from .runner.settings import ConfigError, Objective

log = logging.getLogger("dualsampler.run")
CONF_DIR = Path(str(files("dualsampler.conf")))  # conf/ of the checkout, or of the installed wheel


def job_dir(overrides: Sequence[str], _root_: DictConfig) -> str:
    """A job's folder name: its overrides that act on it (`a=1,b=x`; `runner.identity.job_name`)."""
    return job_name(list(overrides), _root_)[0]


def data_file(relative: str) -> str:
    """The absolute path of a file shipped in the package's data sets (`dualsampler/data/`), for configs."""
    return str(Path(str(files("dualsampler.data"))) / relative)


OmegaConf.register_new_resolver("job_dir", job_dir, replace=True)
OmegaConf.register_new_resolver("data_file", data_file, replace=True)


@hydra.main(version_base="1.3", config_path="pkg://dualsampler.conf", config_name="config")
def main(config: DictConfig) -> float:
    """Run the job of `config` and return its objective (a float, for sweepers such as Optuna; the worst value for
    a failed job). A failure is logged and recorded in failure.json, and ends only this job of a sweep."""
    hydra_config = HydraConfig.get()
    out_dir = Path(hydra_config.runtime.output_dir)
    multirun = hydra_config.mode == RunMode.MULTIRUN
    name = out_dir.name
    unused = job_name(list(hydra_config.overrides.task), config)[1]
    if unused:
        log.info("%s: %s does not act on dual=%s: one job for every value (the folder and result.json leave it out)",
                 name, ", ".join(unused), hydra_config.runtime.choices.get("dual"))
    lock_dir = Path(hydra_config.sweep.dir if multirun else out_dir.parent) / ".locks"
    parallel_jobs = hydra_config.launcher.get("n_jobs") if multirun else None
    experiment = hydra_config.runtime.choices.get("experiment")
    objective = Objective()
    try:
        objective = Objective.from_config(OmegaConf.to_container(config.objective, resolve=True))
        result = run_job(config, out_dir, name, lock_dir, parallel_jobs, experiment)
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
    return objective.value(result["metrics"], result["per_seed"])


if __name__ == "__main__":
    main()

"""`dualsampler-run` inside the test process: the same Hydra app (`dualsampler.run.main` parsing a command line:
composition, multirun, the basic launcher, the sweep callback, failure.json, the exit code) without a fresh Python
paying seconds of torch/diffusers/Hydra imports per launch.

Tests of configuration logic use `run_app`; tests of what only a process shows (signals, two launches side by
side, the installed wheel, W&B's service) start real `dualsampler-run` processes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import torch


@dataclass
class Done:
    """What a launch left: the exit code and everything it printed (as `subprocess.CompletedProcess`)."""

    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _process_state(env: Mapping[str, str] | None, cwd: str | Path | None) -> Iterator[None]:
    """Environment, working folder, logging, torch threads and argv as they were, after the launch."""
    environ, folder, argv, threads = dict(os.environ), os.getcwd(), sys.argv, torch.get_num_threads()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        for handler in root.handlers:  # Hydra's console and job-log file handlers
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        sys.argv = argv
        os.chdir(folder)
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)


def run_app(*args: str, multirun: bool = True, env: Mapping[str, str] | None = None,
            cwd: str | Path | None = None) -> Done:
    """`dualsampler-run [-m] <args>` in this process: its exit code (0, or SystemExit's) and its output, Python
    warnings included (printed to stderr once per place, as a process does). `env` replaces the environment for
    the launch (as `subprocess.run(env=...)`), `cwd` the working folder."""
    from dualsampler.run import main

    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with _process_state(env, cwd), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        sys.argv = ["dualsampler-run", *(["-m"] if multirun else []), *args]
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    said = stderr.getvalue() + "".join(
        warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught)
    return Done(code, stdout.getvalue(), said)

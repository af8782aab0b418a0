"""The package installs like any other: the wheel holds the code, `conf/` (as `dualsampler.conf`) and the world's
weights, and a non-editable install runs a job from a folder outside the checkout, offline."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from run_app import run_app

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def package_folder(package: str) -> Path:
    """The checkout's folder of a package, after pyproject's package-dir mapping."""
    mapped = SETUPTOOLS.get("package-dir", {})
    return REPO / mapped[package] if package in mapped else REPO.joinpath(*package.split("."))


def source_files(folder: Path, pattern: str) -> list[Path]:
    return [p for p in folder.rglob(pattern) if "__pycache__" not in p.parts]


def test_every_package_of_the_checkout_is_listed_in_pyproject():
    folders = {p.parent for p in source_files(REPO / "dualsampler", "__init__.py")}
    found = {".".join(f.relative_to(REPO).parts) for f in folders}
    listed = set(SETUPTOOLS["packages"])
    assert found - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert all(package_folder(p).is_dir() for p in listed)


def test_conf_ships_as_a_package_hydra_finds():
    assert package_folder("dualsampler.conf") == REPO / "conf"
    assert (REPO / "conf" / "__init__.py").is_file()
    from dualsampler.run import CONF_DIR

    assert CONF_DIR.resolve() == (REPO / "conf").resolve()  # the editable install maps the package to conf/


def test_the_declared_dependencies_hold_in_this_environment():
    from importlib.metadata import version

    from packaging.requirements import Requirement

    requirements = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    unmet = [str(r) for r in requirements if not r.specifier.contains(version(r.name), prereleases=True)]
    assert unmet == []
    names = {r.name for r in requirements}
    assert {"torch", "torchsde", "transformers"} <= names
    (torch,) = [r for r in requirements if r.name == "torch"]
    assert all(torch.specifier.contains(v) for v in ("2.9.1", "2.13.0", "2.14.1"))  # a range, not a pin


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built offline from a copy of the working tree (no build isolation: setuptools of this venv)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("dualsampler", "conf"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "--wheel-dir", str(root / "dist"), str(source)], check=True)
    (path,) = (root / "dist").glob("dualsampler-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_holds_the_code_the_configs_and_the_weights(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    code = {"/".join(p.relative_to(REPO).parts) for p in source_files(REPO / "dualsampler", "*.py")}
    configs = {"dualsampler/conf/" + "/".join(p.relative_to(REPO / "conf").parts)
               for p in source_files(REPO / "conf", "*.yaml")}
    weights = {"/".join(p.relative_to(REPO).parts) for p in (REPO / "dualsampler/models/weights").rglob("*.*")}
    data = {"/".join(p.relative_to(REPO).parts) for suffix in ("json", "safetensors", "yaml", "txt")
            for p in source_files(REPO / "dualsampler", f"*.{suffix}")}
    assert code - names == set()
    assert data - names == set()
    assert configs - names == set()
    assert "dualsampler/conf/config.yaml" in configs and "dualsampler/conf/experiment/overlap_sweep.yaml" in configs
    assert weights and weights - names == set()


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel (not editable); its other dependencies come from this test's environment."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (purelib,) = venv.glob("lib/python*/site-packages")
    (purelib / "test_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
                    "--no-index", "--quiet", str(wheel)], check=True)
    return venv


def run_in(folder: Path, *command: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_installed_package_is_imported_from_the_venv_not_the_checkout(installed, tmp_path):
    done = run_in(tmp_path, str(installed / "bin" / "python"), "-c",
                  "import importlib.resources as r, dualsampler; print(dualsampler.__file__, r.files('dualsampler.conf'))")
    assert done.returncode == 0, done.stderr
    package, conf_dir = map(Path, done.stdout.split())
    assert package.is_relative_to(installed) and conf_dir.is_relative_to(installed)
    assert (conf_dir / "config.yaml").is_file() and (conf_dir / "experiment" / "overlap_sweep.yaml").is_file()


@pytest.mark.slow
def test_the_installed_cli_finds_the_shipped_experiments(installed, tmp_path):
    done = run_in(tmp_path, str(installed / "bin" / "dualsampler-run"), "experiment=overlap_sweep", "--cfg", "job")
    assert done.returncode == 0, done.stderr
    assert "name: overlap_sweep" in done.stdout.splitlines()


@pytest.mark.slow
def test_the_installed_cli_runs_a_job_from_a_folder_outside_the_checkout(installed, tmp_path):
    experiment = tmp_path / "my_conf" / "experiment" / "tiny.yaml"
    experiment.parent.mkdir(parents=True)
    experiment.write_text("# @package _global_\nname: tiny\nseeds: 1\nsteps: 2\n")
    done = run_in(tmp_path, str(installed / "bin" / "dualsampler-run"), "--config-dir", "my_conf",
                  "experiment=tiny", "model=random_world", "logger=none")
    assert done.returncode == 0, done.stderr[-3000:]
    (result_file,) = (tmp_path / "runs" / "tiny").glob("*/result.json")
    result = json.loads(result_file.read_text())
    assert result["seeds"] == [0] and result["config"]["steps"] == 2
    assert {"seam/gradient_ratio", "seam/color_jump"} <= set(result["metrics"])
    figures = run_in(tmp_path, str(installed / "bin" / "dualsampler-figures"), "runs/tiny")
    assert figures.returncode == 0, figures.stderr[-3000:]
    assert (tmp_path / "runs" / "tiny" / "figures" / "tiny.png").stat().st_size > 0


def test_the_checkout_install_takes_a_config_dir_of_ones_own_too(tmp_path):
    """The Hydra app of the checkout in this process (run_app), in a folder outside the checkout."""
    experiment = tmp_path / "my_conf" / "experiment" / "tiny.yaml"
    experiment.parent.mkdir(parents=True)
    experiment.write_text("# @package _global_\nname: tiny\nsteps: 3\n")
    done = run_app("--config-dir", "my_conf", "experiment=tiny", "--cfg", "job", multirun=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "name: tiny" in lines and "steps: 3" in lines

"""Set-up stays consistent: environment.yml names what pyproject.toml needs; torch is never swapped."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
# conda-forge names of PyPI packages that differ
CONDA_NAME = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower()


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {CONDA_NAME.get(_name(r), _name(r)) for r in project["dependencies"]}
    wanted |= {_name(r) for r in project["optional-dependencies"]["cluster"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    pip = {_name(d) for d in next(d["pip"] for d in env["dependencies"] if isinstance(d, dict)) if not d.startswith("-")}
    missing = wanted - conda - pip
    assert not missing, f"environment.yml lacks {sorted(missing)}"
    assert {"python", "ffmpeg"} <= conda


def test_no_dependency_that_pulls_another_torch():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        names |= {_name(r) for r in extra}
    assert not names & {"torchvision", "open_clip_torch", "open-clip-torch", "timm"}
    assert "torch==2.13.0" in (REPO / "Makefile").read_text()


def test_slurm_plugin_is_only_an_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any("slurm" in r for r in project["dependencies"])
    assert any("snakemake-executor-plugin-slurm" in r for r in project["optional-dependencies"]["cluster"])

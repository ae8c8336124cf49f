"""Set-up stays consistent: the [workflow] extra covers what the pipeline imports, environment.yml
installs what pyproject.toml declares, and torch is never swapped.

That the bare install (no extras) holds the model core and nothing else is tested by
test_model_core_install.py (a real install into a fresh venv) and test_architecture.py (imports).
"""

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
# conda-forge names of PyPI packages that differ
CONDA_NAME = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower())


def _names(requirements: list[str]) -> set[str]:
    """Distribution names, without the package's own name (extras that include other extras)."""
    return {_name(r) for r in requirements} - {_name(PROJECT["name"])}


def _top_level_imports(source: str) -> set[str]:
    """Top-level module names of every absolute import, at any depth (functions, TYPE_CHECKING)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a Snakefile / .smk: Python plus rule syntax; read the import lines
        found = set()
        for m in re.finditer(r"^\s*(?:from\s+([\w.]+)\s+import\b|import\s+([\w., ]+?)\s*(?:#.*)?$)", source, re.M):
            mods = [m.group(1)] if m.group(1) else [part.split()[0] for part in m.group(2).split(",") if part.strip()]
            found |= {mod.split(".")[0] for mod in mods}
        return found
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def _pipeline_sources() -> list[Path]:
    """Everything the [workflow] extra serves: the package outside its model core, the rules, the
    workflow scripts and the Snakefile."""
    package = REPO / "centerclip"
    files = [p for p in package.rglob("*.py") if p.relative_to(package).parts[0] != "model"]
    files += sorted((REPO / "workflow_scripts").glob("*.py")) + sorted((REPO / "rules").glob("*.py"))
    files += sorted((REPO / "rules").glob("*.smk")) + [REPO / "Snakefile"]
    return files


def test_workflow_extra_covers_every_third_party_import_of_the_pipeline():
    local = {"centerclip"} | {p.stem for d in ("workflow_scripts", "rules") for p in (REPO / d).glob("*.py")}
    declared = _names(PROJECT["dependencies"]) | _names(EXTRAS["workflow"])
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for path in _pipeline_sources():
        for mod in _top_level_imports(path.read_text()):
            if mod in sys.stdlib_module_names or mod in local:
                continue
            dists = {_name(d) for d in providers.get(mod, [])}
            assert dists, f"{path.relative_to(REPO)} imports {mod!r}, which no installed distribution provides"
            if not dists & declared:
                missing.setdefault(mod, []).append(str(path.relative_to(REPO)))
    assert not missing, f"imported by the pipeline but in neither the dependencies nor the [workflow] extra: {missing}"


def test_extras_are_layered():
    core = _names(PROJECT["dependencies"])
    workflow = _names(EXTRAS["workflow"])
    assert core == {"torch", "numpy", "ftfy", "regex"}
    assert not core & workflow
    assert "snakemake" in workflow
    # [cluster] = the plugin + [workflow]; it must not need [workflow] named beside it
    assert "centerclip[workflow]" in [r.replace(" ", "") for r in EXTRAS["cluster"]]


def test_environment_yml_installs_what_pyproject_declares():
    wanted = {CONDA_NAME.get(n, n) for n in _names(PROJECT["dependencies"])}
    wanted |= _names(EXTRAS["workflow"]) | _names(EXTRAS["cluster"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip = {_name(d) for d in pip_lines if not d.startswith("-")}
    missing = wanted - conda - pip
    assert not missing, f"environment.yml lacks {sorted(missing)}"
    assert {"python", "ffmpeg"} <= conda
    # the package itself, with the pipeline's extra (pip fills in whatever conda did not install)
    own = [d for d in pip_lines if d.startswith("-e")]
    assert len(own) == 1 and re.fullmatch(r"-e\s+\.\[[\w,]*workflow[\w,]*\]", own[0].split("#")[0].strip()), own


def test_makefile_venvs_get_the_pipeline_extra():
    installs = [line for line in (REPO / "Makefile").read_text().splitlines() if re.search(r"pip install .*-e ", line)]
    assert installs
    for line in installs:
        extras = set(re.search(r'-e "?\.\[([\w,]+)\]', line).group(1).split(","))
        assert extras & {"workflow", "cluster"}, line


def test_no_dependency_that_pulls_another_torch():
    names = _names(PROJECT["dependencies"])
    for extra in EXTRAS.values():
        names |= _names(extra)
    assert not names & {"torchvision", "open-clip-torch", "timm"}
    assert "torch==2.13.0" in (REPO / "Makefile").read_text()


def test_slurm_plugin_is_only_an_extra():
    assert not any("slurm" in r for r in PROJECT["dependencies"] + EXTRAS["workflow"])
    assert "snakemake-executor-plugin-slurm" in _names(EXTRAS["cluster"])

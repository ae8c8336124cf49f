"""Structure of the package, read from its source with ``ast`` (nothing is imported):

* the model core (``centerclip/model/``, plus ``centerclip/__init__.py``, which every import of it
  runs) imports only the standard library, torch, numpy, ftfy, regex and ``centerclip.model``, so that
  ``pip install centerclip`` without extras is enough for it and it can be lifted out whole;
* no import cycle among centerclip's modules.

Every import counts: inside functions, under ``if TYPE_CHECKING:``, in ``try`` blocks. The checkers
are tested on small generated trees with planted faults, so that the real-tree tests cannot pass
because the checker sees nothing.
"""

from __future__ import annotations

import ast
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "centerclip"
CORE_THIRD_PARTY = {"torch", "numpy", "ftfy", "regex"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # absolute dotted name imported (a submodule where ``from X import sub`` names one)
    where: str  # file:line


def _module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for the package directory ``root`` (a package's __init__ is its node)."""
    mods = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = path
    return mods


_CACHE: dict[tuple, list[Import]] = {}


def imports(root: Path) -> list[Import]:
    """Every import statement of every module under ``root``, at any depth, resolved to absolute names."""
    mods = _module_files(root)
    stats = {name: path.stat() for name, path in mods.items()}
    key = (str(root.resolve()), *((name, st.st_mtime_ns, st.st_size) for name, st in stats.items()))
    if key not in _CACHE:  # parsed once per state of the tree
        _CACHE[key] = _parse_imports(mods, root.parent)
    return _CACHE[key]


def _parse_imports(mods: dict[str, Path], base_dir: Path) -> list[Import]:
    found = []
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(base_dir)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import):
                found += [Import(name, alias.name, where) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name if is_package else name.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        base = base.rpartition(".")[0]
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.append(Import(name, sub if sub in mods else base, where))
    return found


def forbidden_core_imports(root: Path) -> list[Import]:
    """Imports of ``<root>/model/**`` and ``<root>/__init__.py`` outside stdlib, torch, numpy, ftfy,
    regex and ``<pkg>.model``."""
    pkg = root.name
    core = f"{pkg}.model"
    bad = []
    for imp in imports(root):
        if not (imp.module == pkg or imp.module == core or imp.module.startswith(core + ".")):
            continue
        top = imp.target.split(".")[0]
        if top == pkg:
            ok = imp.target == core or imp.target.startswith(core + ".")
        else:
            ok = top in sys.stdlib_module_names or top in CORE_THIRD_PARTY
        if not ok:
            bad.append(imp)
    return bad


def import_graph(root: Path) -> dict[str, dict[str, str]]:
    """module -> {imported module of the package: where}; an import of a name that is no module of the
    package counts as one of its longest enclosing module."""
    mods = _module_files(root)
    graph: dict[str, dict[str, str]] = {m: {} for m in mods}
    for imp in imports(root):
        target = imp.target
        while target and target not in mods:
            target = target.rpartition(".")[0]
        if target and target != imp.module:
            graph[imp.module].setdefault(target, imp.where)
    return graph


def import_cycles(root: Path) -> list[list[str]]:
    """One cycle [a, b, ..., a] per strongly connected component of more than one module."""
    graph = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    sccs: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; the package is small, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in sccs:  # a concrete cycle through the component's first module (BFS back to it)
        members, start = set(comp), comp[0]
        prev: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in prev:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w in members and w not in prev:
                        prev[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [start]
        while path[-1] != start or len(path) == 1:
            path.append(prev[path[-1]])
        cycles.append(path[::-1])
    return cycles


def describe(cycle: list[str], root: Path) -> str:
    graph = import_graph(root)
    steps = "; ".join(f"{a} imports {b} at {graph[a][b]}" for a, b in zip(cycle, cycle[1:]))
    return f"{' -> '.join(cycle)}  ({steps})"


# -- the real tree ---------------------------------------------------------------------------------


def test_the_checker_reads_the_real_tree():
    graph = import_graph(PACKAGE)
    assert {"centerclip", "centerclip.model", "centerclip.model.clip", "centerclip.model.tokenizer"} <= set(graph)
    assert "centerclip.model.clip" in graph["centerclip.model"]
    assert any(imp.target == "torch" for imp in imports(PACKAGE) if imp.module == "centerclip.model.clip")


def test_model_core_imports_only_stdlib_torch_numpy_ftfy_regex():
    bad = forbidden_core_imports(PACKAGE)
    assert not bad, "the model core imports beyond stdlib/torch/numpy/ftfy/regex/centerclip.model:\n" + "\n".join(
        f"  {imp.where}: {imp.module} imports {imp.target}" for imp in bad)


def test_no_import_cycle_in_centerclip():
    cycles = import_cycles(PACKAGE)
    assert not cycles, "import cycles among centerclip's modules:\n" + "\n".join(
        "  " + describe(c, PACKAGE) for c in cycles)


# -- the checkers find planted faults ----------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cycle_checker_finds_a_planted_cycle(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "from pkg.a.x import f\n",  # package -> its submodule: no cycle by itself
        "pkg/a/x.py": "def f():\n    from pkg.b import y  # y is a submodule\n    return y\n",
        "pkg/b/__init__.py": "",
        "pkg/b/y.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..c import z\n",
        "pkg/c.py": "def z():\n    import pkg.a.x\n",
        "pkg/d.py": "import pkg.a\nfrom pkg import c\n",  # reaches the cycle, is not on it
    })
    cycles = import_cycles(tmp_path / "pkg")
    assert len(cycles) == 1
    assert set(cycles[0]) == {"pkg.a.x", "pkg.b.y", "pkg.c"} and cycles[0][0] == cycles[0][-1]
    assert "pkg/b/y.py:3" in describe(cycles[0], tmp_path / "pkg")

    (tmp_path / "pkg/c.py").write_text("def z():\n    import os\n")  # break it: no cycle left
    assert import_cycles(tmp_path / "pkg") == []

    (tmp_path / "pkg/b/y.py").write_text("from pkg.b import *\nimport pkg.b\n")  # a package's own __init__
    (tmp_path / "pkg/b/__init__.py").write_text("from .y import *\n")
    assert [set(c) for c in import_cycles(tmp_path / "pkg")] == [{"pkg.b", "pkg.b.y"}]


def test_cycle_checker_finds_a_cycle_planted_in_a_copy_of_the_real_tree(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "centerclip", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    clustering = tmp_path / "centerclip/model/clustering.py"
    planted = "\n\ndef _planted():\n    from centerclip.model import video_encoder\n"
    clustering.write_text(clustering.read_text() + planted)
    cycles = import_cycles(tmp_path / "centerclip")
    assert any({"centerclip.model.clustering", "centerclip.model.video_encoder"} <= set(c) for c in cycles), cycles


def test_core_checker_finds_planted_imports(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "centerclip", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    root = tmp_path / "centerclip"
    baseline = {(i.where, i.target) for i in forbidden_core_imports(root)}
    _write(root, {
        "model/planted.py": (
            "import os, torch.nn\n"
            "from typing import TYPE_CHECKING\n"
            "from . import clip\n"
            "from centerclip.model.clip import load\n"
            "if TYPE_CHECKING:\n"
            "    from centerclip.training import train\n"
            "def f():\n"
            "    import h5py\n"
            "    from ..data import frame_cache\n"
            "    from .. import util\n"
        ),
    })
    init = root / "__init__.py"
    init.write_text(init.read_text() + "import yaml\n")
    found = {(i.where, i.target) for i in forbidden_core_imports(root)} - baseline
    assert found == {
        ("centerclip/model/planted.py:6", "centerclip.training.train"),
        ("centerclip/model/planted.py:8", "h5py"),
        ("centerclip/model/planted.py:9", "centerclip.data.frame_cache"),
        ("centerclip/model/planted.py:10", "centerclip.util"),
        (f"centerclip/__init__.py:{len(init.read_text().splitlines())}", "yaml"),
    }, found

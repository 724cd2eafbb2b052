"""The package's architecture holds: imports run one way along the data flow, with no cycles.

Every import statement counts, also those inside functions and under ``TYPE_CHECKING``: a lazy
import is still a dependency. ``foundation_encoders`` is a leaf (imagery -> vectors) and imports
nothing from ``masksdm``. Notebooks, the app and the benchmarks use documented names only.
"""

from __future__ import annotations

import ast
import importlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layers of ``masksdm``, lowest first. A module may import modules of a lower layer, and modules
#: of its own unit (package or module); never a higher layer or another unit of its own layer.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("masksdm._version", "masksdm.errors"),
    ("masksdm._io", "masksdm.locks", "masksdm.metrics"),
    ("masksdm.data", "masksdm.scoring"),
    ("masksdm.workspace", "masksdm.sim"),
    ("masksdm.model",),
    ("masksdm.evaluation", "masksdm.maps", "masksdm.satellite", "masksdm.plots"),
    ("masksdm.explain",),
    ("masksdm.demo", "masksdm.estimator", "masksdm.dashboard"),
    ("masksdm.cli", "masksdm"),
    ("masksdm.__main__",),
)


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` under ``root``."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The modules among ``known`` that module ``name`` (file ``path``) imports, anywhere in it."""
    known = set(known)
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:  # masksdm.data.grid.RasterStack -> masksdm.data.grid
            target = target.rpartition(".")[0]
        if target:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}".rstrip(".")
            for alias in node.names:  # `from pkg import module` imports that module
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    found.discard(name)
    return found


def import_graph(root: Path, packages: Sequence[str]) -> dict[str, set[str]]:
    files = {k: v for p in packages for k, v in module_files(root, p).items()}
    return {name: imports_of(name, path, files) for name, path in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def unit_of(module: str, layers: Sequence[Sequence[str]]) -> tuple[int, str] | None:
    """(layer, unit) of a module: the longest unit name that is the module or a package above it."""
    best = None
    for rank, units in enumerate(layers):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best[1])):
                best = (rank, unit)
    return best


def layer_violations(graph: dict[str, set[str]], layers: Sequence[Sequence[str]]) -> list[str]:
    problems = []
    for source, targets in sorted(graph.items()):
        here = unit_of(source, layers)
        if here is None:
            problems.append(f"{source} is in no layer: add it to LAYERS")
            continue
        for target in sorted(targets):
            there = unit_of(target, layers)
            if there is None or there[1] == here[1]:
                continue
            if there[0] >= here[0]:
                kind = "upward" if there[0] > here[0] else "sideways"
                problems.append(f"{source} (layer {here[0]}) imports {target} (layer {there[0]}): {kind}")
    return problems


# --- the rules, on the package as it is ------------------------------------------------------------

@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(ROOT, ["masksdm", "foundation_encoders"])


def test_no_import_cycles(graph):
    assert find_cycles(graph) == []


def test_imports_run_down_the_layers(graph):
    masksdm_only = {k: {t for t in v if t.startswith("masksdm")} for k, v in graph.items() if k.startswith("masksdm")}
    assert layer_violations(masksdm_only, LAYERS) == []


def test_foundation_encoders_is_a_leaf(graph):
    upward = {k: sorted(t for t in v if t.startswith("masksdm")) for k, v in graph.items()
              if k.startswith("foundation_encoders")}
    assert {k: v for k, v in upward.items() if v} == {}


def test_no_private_names_across_modules():
    files = {k: v for p in ("masksdm", "foundation_encoders") for k, v in module_files(ROOT, p).items()}
    crossing = []
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (
                "masksdm", "foundation_encoders"
            ):
                private = [a.name for a in node.names if a.name.startswith("_") and a.name != "__version__"]
                if private:
                    crossing.append(f"{name}: from {node.module} import {', '.join(private)}")
    assert crossing == []


def test_modules_stay_small():
    files = {k: v for p in ("masksdm", "foundation_encoders") for k, v in module_files(ROOT, p).items()}
    large = {k: n for k, v in files.items() if (n := len(v.read_text().splitlines())) > 560}
    assert large == {}


def _client_imports() -> list[tuple[str, ast.ImportFrom]]:
    """Imports of masksdm / foundation_encoders in the notebooks' code cells, the app and the benchmarks."""
    sources: list[tuple[str, str]] = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        sources.append((path.name, "\n".join(line for line in code.splitlines() if not line.startswith(("%", "!")))))
    for folder in ("app", "benchmarks"):
        sources += [(f"{folder}/{p.name}", p.read_text()) for p in sorted((ROOT / folder).glob("*.py"))]
    out = []
    for where, text in sources:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("masksdm", "foundation_encoders"):
                out.append((where, node))
    return out


def _documented(module: str) -> set[str] | None:
    """The names in a module's ``__all__``, read from its source (nothing is imported), or None
    when ``module`` is no module of the project."""
    parts = module.split(".")
    for path in (ROOT.joinpath(*parts) / "__init__.py", ROOT.joinpath(*parts).with_suffix(".py")):
        if path.is_file():
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                    try:
                        return set(ast.literal_eval(node.value))
                    except ValueError:  # computed (the package's lazy API): the module says
                        return set(importlib.import_module(module).__all__)
            return set()
    return None


def test_clients_use_documented_names():
    """Every name the notebooks, the app and the benchmarks import is in its module's ``__all__``
    (or is a submodule of a package)."""
    imports = _client_imports()
    assert len(imports) > 20, "too few client imports found: the scan is broken"
    undocumented = []
    for where, node in imports:
        documented = _documented(node.module)
        assert documented is not None, f"{where}: {node.module} is no module of the project"
        for alias in node.names:
            if alias.name not in documented and _documented(f"{node.module}.{alias.name}") is None:
                undocumented.append(f"{where}: from {node.module} import {alias.name}")
    assert undocumented == []


# --- the checker itself finds what it must ----------------------------------------------------------

def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_planted_cycle_and_upward_import_are_found(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "def f():\n    from pkg.high import g  # lazy, still an upward import\n",
        "pkg/high.py": "from pkg.low import f\n",
        "pkg/sub/__init__.py": "from .a import x\n",
        "pkg/sub/a.py": "x = 1\nfrom pkg.sub import b\n",
        "pkg/sub/b.py": "import pkg.sub.a\n",
        "pkg/side.py": "from pkg import sub\n",
    })
    graph = import_graph(tmp_path, ["pkg"])
    assert graph["pkg.low"] == {"pkg.high"}
    assert graph["pkg.side"] == {"pkg.sub"}
    assert find_cycles(graph) == [["pkg.high", "pkg.low"], ["pkg.sub.a", "pkg.sub.b"]]
    layers = (("pkg.low",), ("pkg.high", "pkg.side"), ("pkg.sub",), ("pkg",))
    problems = layer_violations(graph, layers)
    assert "pkg.low (layer 0) imports pkg.high (layer 1): upward" in problems
    assert "pkg.side (layer 1) imports pkg.sub (layer 2): upward" in problems
    assert not any(p.startswith("pkg.high ") for p in problems)  # downward is fine
    sideways = layer_violations({"pkg.high": {"pkg.side"}}, layers)
    assert sideways == ["pkg.high (layer 1) imports pkg.side (layer 1): sideways"]


def test_every_module_has_a_layer(graph):
    missing = sorted(m for m in graph if m.startswith("masksdm") and unit_of(m, LAYERS) is None)
    assert missing == []

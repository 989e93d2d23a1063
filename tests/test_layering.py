"""The package's import rules (docs/architecture.md), read from the source with `ast`, so they stay true.

Every ``import`` counts, including those inside functions. The rules:

- nothing outside ``training/`` imports ``training``;
- imports point only down the layer order below (a subpackage may import its own modules);
- no import cycles between modules;
- the deprecated import shims at the old module paths are for users only: no module imports one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "facelandmarks_smt"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

#: Bottom to top; a module may import only from tiers below its own (or within its own group).
#: A group is a top-level module or a subpackage (``runtime``, ``datasets``, ...).
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"config", "fileio"}),
    ("data types and pure maths", {"schemes", "geometry", "codec", "result"}),
    ("image input", {"images"}),
    ("face detector network runtimes", {"yunet_openvino"}),
    ("models, readers, face boxes, drawing, registry", {"models", "datasets", "face_detection", "drawing", "hub"}),
    ("weights files", {"weights_io"}),
    ("runtime and video", {"runtime", "video"}),
    ("API", {"detector"}),
    ("package facade", {"__init__"}),
    ("command line", {"cli"}),
    ("python -m entry point", {"__main__"}),
    ("training", {"training"}),
]
#: Old module paths kept for one release; they re-export and nothing inside the package uses them.
SHIMS = {"preprocess", "decode", "backends", "export", "quantize", "tracking", "one_euro", "training.datasets"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


MODULES = _modules()


def _resolve(current: str, is_package: bool, node: ast.AST) -> list[str]:
    """The package modules an import statement loads (names that are not modules resolve to their module)."""
    out = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                out.append(alias.name)
        return out
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = current.split(".") if is_package else current.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
        if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
            return out
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        out.append(sub if sub in MODULES else target)
    return out


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        deps = set()
        for node in ast.walk(tree):  # every import, at module level or inside functions
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps.update(d for d in _resolve(name, path.name == "__init__.py", node) if d != name)
        unknown = deps - set(MODULES)
        assert not unknown, f"{name} imports modules that do not exist: {sorted(unknown)}"
        graph[name] = deps
    return graph


def _key(module: str) -> str:
    """``facelandmarks_smt.runtime.export`` -> ``runtime``; shims keep their full relative path."""
    rel = module[len(PACKAGE) + 1:] if module != PACKAGE else "__init__"
    return rel if rel in SHIMS else rel.split(".")[0]


def _tier(module: str) -> int:
    key = _key(module)
    if key in SHIMS:
        return len(LAYERS)
    for i, (_, groups) in enumerate(LAYERS):
        if key in groups:
            return i
    raise AssertionError(f"module {module} is in no layer: add its group to LAYERS in tests/test_layering.py "
                         "and to docs/architecture.md")


GRAPH = import_graph()


def test_every_module_has_a_layer():
    for module in GRAPH:
        _tier(module)


def test_nothing_outside_training_imports_training():
    bad = [f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps
           if _key(d).startswith("training") and not _key(m).startswith("training")]
    assert not bad, "inference code must not need the training package:\n" + "\n".join(bad)


def test_imports_point_down_the_layers():
    bad = []
    for m, deps in GRAPH.items():
        for d in deps:
            if _key(m) == _key(d) or _key(m).split(".")[0] == _key(d).split(".")[0] and _key(d) not in SHIMS:
                continue  # within one group (a subpackage's own modules)
            if _tier(d) >= _tier(m):
                bad.append(f"{m} ({LAYERS[_tier(m)][0] if _tier(m) < len(LAYERS) else 'shim'}) -> {d} "
                           f"({LAYERS[_tier(d)][0] if _tier(d) < len(LAYERS) else 'shim'})")
    assert not bad, "imports that run up (or across) the layers:\n" + "\n".join(sorted(bad))


def test_no_module_imports_a_shim():
    bad = [f"{m} -> {d}" for m, deps in GRAPH.items() if _key(m) not in SHIMS
           for d in deps if _key(d) in SHIMS]
    assert not bad, "use the new module paths inside the package:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
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
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles (counting imports inside functions):\n" + "\n".join(map(str, cycles))


@pytest.mark.parametrize("old, new", [
    ("preprocess", "geometry"), ("decode", "codec"), ("backends", "runtime.backends"), ("export", "runtime.export"),
    ("quantize", "runtime.quantize"), ("tracking", "video.tracking"), ("one_euro", "video.one_euro"),
    ("training.datasets", "datasets"),
])
def test_old_import_paths_still_work(old, new):
    import importlib

    shim = importlib.import_module(f"{PACKAGE}.{old}")
    target = importlib.import_module(f"{PACKAGE}.{new}")
    public = [n for n in vars(shim) if not n.startswith("_") and callable(getattr(shim, n))
              and getattr(getattr(shim, n), "__module__", "").startswith(PACKAGE)]
    assert public, f"{old} re-exports nothing"
    shared = [n for n in public if hasattr(target, n)]
    assert shared and all(getattr(shim, n) is getattr(target, n) for n in shared)


def test_the_graph_reads_function_level_imports():
    # a sanity check of the reader itself: the detector's face detector is imported inside a function
    assert f"{PACKAGE}.face_detection" in GRAPH[f"{PACKAGE}.detector"]
    assert f"{PACKAGE}.runtime.graphs" in GRAPH[f"{PACKAGE}.runtime.backends"]

"""The package's import graph: no circles, and no import that points up the declared layers.

Read with :mod:`ast` (nothing is imported), so a new circle or upward import fails here with
the offending import named (file, line, target), including imports inside functions and under
``TYPE_CHECKING``. ``docs/architecture.md`` draws the same layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dask_classify"

#: Lowest first. A module may import modules of its own layer or lower ones; the most specific
#: prefix decides a module's layer.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "weights", "bundled", "atomic"),
    ("backend", "checkpoint", "tokenize", "options", "outputs", "hashing"),
    ("engine.spec",),
    ("engine.run", "engine.onnx_runtime"),
    ("engine.model", "engine.fast_attention"),
    ("engine.loading", "engine.onnx_export"),
    ("engine.cache", "engine"),
    ("hooks",),
    ("pipeline",),
    ("fold",),
    ("apply",),
    ("classifier",),
    ("classifiers",),
    ("cluster", "readers"),
    ("jobs",),
    ("train",),
    ("testing",),
    # the command line, the package's lazy namespace, and the aliases of moved modules
    ("cli", "__main__", "", "predict", "model", "onnx", "fast_attention",
     "manifest", "writers", "discovery"),
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _layer(module: str) -> int:
    best, best_len = None, -1
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".") or name == "") and \
                    len(name) > best_len:
                best, best_len = i, len(name)
    assert best is not None, f"dask_classify.{module} is in no layer of LAYERS: add it"
    return best


def _imports(modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every import of a dask_classify module."""
    edges = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ["dask_classify", *name.split(".")] if name else ["dask_classify"]
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}".removeprefix(
                    "dask_classify.") in modules else source for a in node.names]
            for target in targets:
                if target == "dask_classify" or target.startswith("dask_classify."):
                    short = target.removeprefix("dask_classify").removeprefix(".")
                    if short in modules and short != name:
                        edges.append((name, short, node.lineno))
    return edges


def _circles(edges: list[tuple[str, str, int]]) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for a, b, _ in edges:
        graph.setdefault(a, set()).add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    modules = _modules()
    edges = _imports(modules)
    # a sample of what the walker must see (absolute, relative, in-function imports)
    assert ("pipeline", "engine.cache") in {(a, b) for a, b, _ in edges}
    assert ("classifier", "pipeline") in {(a, b) for a, b, _ in edges}
    assert len(modules) > 40


def test_no_import_circles():
    edges = _imports(_modules())
    circles = _circles(edges)
    detail = [sorted({f"dask_classify.{a} -> dask_classify.{b} (line {line})"
               for a, b, line in edges if a in c and b in c}) for c in circles]
    assert not circles, f"import circles: {detail}"


def test_no_upward_imports():
    modules = _modules()
    upward = sorted({f"dask_classify/{modules[a].relative_to(PACKAGE)}:{line} imports "
              f"dask_classify.{b} (layer {_layer(b)} > {_layer(a)})"
              for a, b, line in _imports(modules) if _layer(b) > _layer(a)})
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_the_walker_names_a_circle():
    edges = [("a", "b", 1), ("b", "c", 2), ("c", "a", 3), ("c", "d", 4)]
    assert _circles(edges) == [["a", "b", "c"]]

"""The package's layers: each module imports only its own layer and those below, and no import cycle.

Every module of ``fastcavi`` is read with :mod:`ast`: every import statement counts, those inside
functions (imports made on first use) and under ``if TYPE_CHECKING:`` included. :data:`LAYERS`
declares the layer of each module or package; a module that it does not cover fails the test, so
that a new module is placed on purpose.
"""
import ast
import pathlib

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "fastcavi"

#: The layer of each module or package (a package's entry covers every module in it), lowest first.
#: The entry "fastcavi" is the package's ``__init__`` alone.
LAYERS = {
    # 0 declarations: nothing of fastcavi imported
    "fastcavi._config": 0,  # compile policy and tunables
    "fastcavi.exceptions": 0,  # the public warnings and errors
    "fastcavi._version": 0,  # the release version
    # 1 compiled kernels (@njit only), and their ahead-of-time compilation
    "fastcavi._kernels": 1,
    "fastcavi._compile": 1,
    # 2 model mathematics; the data: sources, file readers, the checks, the declared parameters
    "fastcavi._models": 2,
    "fastcavi._progress": 2,  # the progress hook of the passes, the CLI reporter (reads the kernels' compile clock)
    "fastcavi._io": 2,
    "fastcavi._validation": 2,
    "fastcavi.options": 2,
    # 3 the engine (the public contract) over the streaming passes
    "fastcavi._passes": 3,
    "fastcavi.engine": 3,
    # 4 starts: initial means (k-means++, k-means||, Lloyd, random) and initial states
    "fastcavi._init": 4,
    # 5 the CAVI loop and its checkpoints (Model, State, Stats; no FitResult); Dask arrays as row blocks, with
    #   the lazy predictions that FitResult hands them to
    "fastcavi._driver": 5,
    "fastcavi._dask_blocks": 5,
    # 6 fit: fastcavi.fit, the Dask fit, FitResult and its model file and summary
    "fastcavi.api": 6,
    "fastcavi.dask": 6,
    "fastcavi.result": 6,
    "fastcavi._components": 6,
    # 7 adapters: the estimator, streaming, the report, the command line, the package itself
    "fastcavi.estimator": 7,
    "fastcavi.stream": 7,
    "fastcavi.report": 7,
    "fastcavi.cli": 7,
    "fastcavi._demo": 7,
    "fastcavi.__main__": 7,
    "fastcavi": 7,
}


def modules(root):
    """``{dotted name: (path, is_package)}`` of every module under the package directory ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _known(name, known):
    """``name``, or the longest module above it in ``known`` (``fastcavi.engine.Model`` -> ``fastcavi.engine``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(name, path, is_package, known, top):
    """The modules of the package ``top`` that module ``name`` imports, each with the line of the import."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            # ``from package import module`` imports the module; ``from module import name``, the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            if target == top or target.startswith(top + "."):
                found.append((_known(target, known) or target, node.lineno))
    return found


def layer_of(name, table, top):
    """The layer of the longest entry of ``table`` that is ``name`` or a package above it (None: not covered)."""
    if name == top:
        return table.get(top)
    entry = _known(name, {e for e in table if e != top})
    return None if entry is None else table[entry]


def graph(root):
    """``{module: [(imported module, line), ...]}`` of the package at ``root``, its own modules only."""
    known = modules(root)
    return {name: imports(name, path, is_package, known, root.name) for name, (path, is_package) in known.items()}


def cycles(edges):
    """The import cycles of ``edges`` (its strongly connected components of more than one module, or a self-import)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _ in edges.get(v, ()):
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
            if len(component) > 1 or any(w == v for w, _ in edges.get(v, ())):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def problems(root, table):
    """Every breach of the layering of the package at ``root``: unlisted modules, cycles, upward imports."""
    top = root.name
    edges = graph(root)
    found = [f"{m} is in no layer: add it to LAYERS" for m in sorted(edges) if layer_of(m, table, top) is None]
    found += [f"import cycle: {' <-> '.join(c)}" for c in cycles(edges)]
    for importer, targets in sorted(edges.items()):
        low = layer_of(importer, table, top)
        for target, line in targets:
            high = layer_of(target, table, top)
            if low is not None and high is not None and high > low:
                found.append(f"{importer} (layer {low}, line {line}) imports {target} (layer {high})")
    return found


def test_every_module_imports_only_its_layer_and_below_without_cycles():
    found = problems(PACKAGE_DIR, LAYERS)
    assert not found, "\n".join(found)


def test_every_layer_entry_names_a_module_or_package():
    known = modules(PACKAGE_DIR)
    stale = [e for e in LAYERS if not any(m == e or m.startswith(e + ".") for m in known)]
    assert stale == []


# -- the checker itself, on a small package -------------------------------------------------------
def _package(tmp_path, files):
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


TABLE = {"pkg": 2, "pkg.low": 0, "pkg.sub": 1, "pkg.high": 2}


@pytest.mark.parametrize("files, expected", [
    ({"__init__.py": "from . import high\n", "low.py": "import os\n", "sub/__init__.py": "",
      "sub/a.py": "from ..low import x\nfrom . import b\n", "sub/b.py": "", "high.py": "from .sub import a\n"}, []),
    # an upward import inside a function counts
    ({"__init__.py": "", "low.py": "def f():\n    from .sub.a import g\n", "sub/__init__.py": "", "sub/a.py": "",
      "high.py": ""}, ["pkg.low (layer 0, line 2) imports pkg.sub.a (layer 1)"]),
    # so does an absolute one, and one of the package's __init__
    ({"__init__.py": "", "low.py": "import pkg\n", "sub/__init__.py": "import pkg.high as h\n", "high.py": ""},
     ["pkg.low (layer 0, line 1) imports pkg (layer 2)", "pkg.sub (layer 1, line 1) imports pkg.high (layer 2)"]),
    # a cycle within one layer
    ({"__init__.py": "", "low.py": "", "sub/__init__.py": "", "sub/a.py": "from .b import y\n",
      "sub/b.py": "def f():\n    from . import a\n", "high.py": ""}, ["import cycle: pkg.sub.a <-> pkg.sub.b"]),
    # a module in no layer
    ({"__init__.py": "", "low.py": "", "sub/__init__.py": "", "high.py": "", "other.py": ""},
     ["pkg.other is in no layer: add it to LAYERS"]),
])
def test_the_checker_finds_unlisted_modules_cycles_and_upward_imports(tmp_path, files, expected):
    assert problems(_package(tmp_path, files), TABLE) == expected

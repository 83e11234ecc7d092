"""The library's import layering, read from the source: each layer imports only itself and the
layers below it, imports form no circle (those inside functions included), and ``msd_core`` never
imports streamlit, ``app``, ``experiments`` or ``benchmarks``.

    foundation (errors, registries, paths, fileio, config, cpu, device, provenance)
      < data < models < method < runs < engine < analysis < interface (options, flags, cli)
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "msd_core"
LAYERS = ["foundation", "data", "models", "method", "runs", "engine", "analysis", "interface"]
INTERFACE = {"options", "flags", "cli"}
FORBIDDEN = ("streamlit", "app", "experiments", "benchmarks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if parts[1] in INTERFACE:
        return LAYERS.index("interface")
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else 0


def imports(path: Path) -> list[tuple[str, bool]]:
    """``(imported module, at module level)`` for every import in the file, relative ones resolved."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            out.append((target, id(node) in top))
            if node.module is None or node.level:  # "from . import x" may name submodules
                out += [(f"{target}.{a.name}", id(node) in top) for a in node.names]
    return out


def known_modules() -> set[str]:
    return {module_name(p) for p in PACKAGE.rglob("*.py")}


def test_each_layer_imports_only_itself_and_the_layers_below():
    known = known_modules()
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        me = module_name(path)
        for target, _ in imports(path):
            if target in known and layer(target) > layer(me):
                wrong.append(f"{me} ({LAYERS[layer(me)]}) imports {target} ({LAYERS[layer(target)]})")
    assert not wrong, "\n".join(wrong)


def test_the_library_never_imports_the_dashboard_the_experiments_or_the_benchmarks():
    bad = [f"{module_name(p)} imports {t}" for p in PACKAGE.rglob("*.py") for t, _ in imports(p)
           if t.split(".")[0] in FORBIDDEN]
    assert not bad, bad


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (module -> the modules it imports) as a trail, or None. A package's
    __init__ importing its own submodules is not a cycle of the design."""
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(m, trail):
        state[m] = 1
        for t in graph.get(m, ()):
            if state.get(t) == 1:
                return trail + [m, t]
            if t not in state:
                found = visit(t, trail + [m])
                if found:
                    return found
        state[m] = 2
        return None

    for m in graph:
        if m not in state:
            found = visit(m, [])
            if found:
                return found
    return None


def import_graph(package: Path, *, function_level: bool) -> dict[str, set[str]]:
    known = {module_name(p) for p in package.rglob("*.py")}
    return {module_name(p): {t for t, top in imports(p) if (top or function_level) and t in known
                             and t != module_name(p)} for p in package.rglob("*.py")}


def test_module_level_imports_have_no_cycle():
    cycle = import_cycle(import_graph(PACKAGE, function_level=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_circle_even_through_imports_inside_functions():
    """An import inside a function that dodges a module-level cycle is still a circle: none in the
    library."""
    cycle = import_cycle(import_graph(PACKAGE, function_level=True))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_import_circle_among_the_experiments():
    """The research drivers share tables and predictions through modules of their own, never through
    each other in a circle (imports inside functions included)."""
    graph = {module_name(p): {t for t, _ in imports(p)} for p in (ROOT / "experiments").glob("*.py")}
    known = set(graph)
    cycle = import_cycle({m: {t for t in ts if t in known and t != m} for m, ts in graph.items()})
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "msd_core"
    (pkg / "analysis").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "analysis" / "__init__.py").write_text("")
    (pkg / "analysis" / "a.py").write_text("from .b import x\n")
    (pkg / "analysis" / "b.py").write_text("def x():\n    from .a import y\n")
    graph = {module_name_in(tmp_path, p): {t for t, _ in imports_in(tmp_path, p)} for p in pkg.rglob("*.py")}
    assert import_cycle(graph) in (["msd_core.analysis.a", "msd_core.analysis.b", "msd_core.analysis.a"],
                                   ["msd_core.analysis.b", "msd_core.analysis.a", "msd_core.analysis.b"])


def module_name_in(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(root: Path, path: Path) -> list[tuple[str, bool]]:
    global ROOT
    saved, ROOT = ROOT, root
    try:
        return imports(path)
    finally:
        ROOT = saved


def test_the_layer_map_is_not_vacuous():
    assert layer("msd_core.config") == 0 and layer("msd_core.engine.trainer") == 5 and layer("msd_core.cli") == 7
    found = {t for t, _ in imports(PACKAGE / "engine" / "distill.py")}
    assert {"msd_core.method.objectives", "msd_core.runs.recorder", "msd_core.engine.trainer"} <= found

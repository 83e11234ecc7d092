"""The library's import layering, read from the source: each layer imports only itself and the
layers below it, module-level imports form no cycle, and ``msd_core`` never imports streamlit,
``app``, ``experiments`` or ``benchmarks``.

    foundation (errors, registries, paths, fileio, config, device, provenance)
      < data < models < method < runs < engine < analysis < interface (options, cli)
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "msd_core"
LAYERS = ["foundation", "data", "models", "method", "runs", "engine", "analysis", "interface"]
INTERFACE = {"options", "cli"}
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


def test_module_level_imports_have_no_cycle():
    known = known_modules()
    graph = {module_name(p): {t for t, top in imports(p) if top and t in known and t != module_name(p)}
             for p in PACKAGE.rglob("*.py")}
    # a package's __init__ importing its own submodules is not a cycle of the design
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(m, trail):
        state[m] = 1
        for t in graph.get(m, ()):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail + [m, t]))
            if t not in state:
                visit(t, trail + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


def test_the_layer_map_is_not_vacuous():
    assert layer("msd_core.config") == 0 and layer("msd_core.engine.trainer") == 5 and layer("msd_core.cli") == 7
    found = {t for t, _ in imports(PACKAGE / "engine" / "distill.py")}
    assert {"msd_core.method.objectives", "msd_core.runs.recorder", "msd_core.engine.trainer"} <= found

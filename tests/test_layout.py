"""The code's layout (docs/architecture.md): no import cycle between the package's parts (a
subpackage or a top-level module each, imports inside functions included), and no source file
over 300 lines."""
import ast
import pathlib

import inference_engine

PACKAGE = pathlib.Path(inference_engine.__file__).parent
MAX_LINES = 300


def part_of(module: str) -> str | None:
    """inference_engine.engine.step_input -> engine; None for the package itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == "inference_engine" and len(parts) > 1 else None


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        source = part_of(module.removesuffix(".__init__"))
        if source is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                target = part_of(name)
                if target is not None and target != source:
                    graph.setdefault(source, set()).add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of `graph` as its nodes in order, or None (depth-first, with colours)."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_cycle_between_packages():
    graph = import_graph()
    assert "sample" in graph and "engine" in graph  # the walk found the package
    assert find_cycle(graph) is None


def test_the_lower_layers_never_import_the_upper_ones():
    graph = import_graph()
    for lower in ("core", "sample", "model_executor", "worker", "ops"):
        assert not graph.get(lower, set()) & {"engine", "entrypoints", "executor"}, lower


def test_no_source_file_over_300_lines():
    long = {str(path.relative_to(PACKAGE)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long

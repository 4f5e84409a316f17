"""Imports run one way: each module of textgen/ imports only from its own layer or the ones
below, never in a cycle; stage scripts sit on top, and the library never imports them."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top (docs/architecture.md draws the same picture).
LAYERS = [
    ("foundation", {"errors", "backend", "config", "seeding"}),
    (
        "data",
        {
            "vocab",
            "corpus",
            "artifacts",
            "datasets",
            "metrics",
            "checkpoints",
            "distribute",
            "figures",
            "sources",
            "tracking",
        },
    ),
    ("model", {"model"}),
    ("generation and scoring", {"sampling", "scoring"}),
    ("training", {"training"}),
    (
        "GAN and evaluation",
        {"discriminator", "gan", "evaluation", "comparison", "oracle", "report", "study"},
    ),
    ("shipping", {"export", "model_card"}),
    ("entry points", {"cli", "__main__"}),
]
LAYER_OF = {module: i for i, (_, modules) in enumerate(LAYERS) for module in modules}


def project_imports(path: Path) -> set[str]:
    """The textgen modules a file imports, anywhere in it (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "textgen":
                names = [f"textgen.{alias.name}" for alias in node.names]
        found |= {n.split(".")[1] for n in names if n.startswith("textgen.")}
    return found


def library_graph() -> dict[str, set[str]]:
    return {
        path.stem: project_imports(path)
        for path in sorted((ROOT / "textgen").glob("*.py"))
        if path.stem != "__init__"
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> modules it imports), or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return [*path[path.index(dep) :], dep] if dep in path else [node, dep]
            if dep not in state and (cycle := visit(dep, [*path, dep])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_every_module_has_a_layer():
    unplaced = set(library_graph()) - set(LAYER_OF)
    assert not unplaced, f"place {sorted(unplaced)} in LAYERS (and in docs/architecture.md)"


def test_imports_never_point_up():
    upward = [
        f"{module} ({LAYERS[LAYER_OF[module]][0]}) imports {dep} ({LAYERS[LAYER_OF[dep]][0]})"
        for module, deps in library_graph().items()
        for dep in sorted(deps)
        if LAYER_OF[dep] > LAYER_OF[module]
    ]
    assert not upward, upward


def test_the_model_knows_nothing_of_files_devices_or_training():
    """What only needs the model (sampling, the page) is never re-run by a training change."""
    assert library_graph()["model"] == {"backend"}
    assert not {"checkpoints", "distribute", "training"} & library_graph()["sampling"]


def test_the_library_has_no_import_cycle():
    assert find_cycle(library_graph()) is None


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"x": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ],
)
def test_the_cycle_check_finds_cycles(graph, expected):
    assert find_cycle(graph) == expected


def test_the_library_never_imports_a_stage():
    for path in (ROOT / "textgen").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names]
                assert not any(n and n.split(".")[0] in {"_common", "stages"} for n in names), path

"""Imports run one way: a lower layer never imports a higher one, and no packages or modules form a cycle.

Layers (highest first), as written in docs/design.md:
cli, demo > inference, training, selftrain > models, losses, data, post, metrics, tasks, report, formats
> geo, config > errors, progress, registry, openmp, stopping.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "eoseg"

LAYERS: dict[str, int] = {
    "errors": 0, "progress": 0, "registry": 0, "openmp": 0, "stopping": 0,
    "geo": 1, "config": 1,
    "models": 2, "losses": 2, "data": 2, "post": 2, "metrics": 2, "tasks": 2, "report": 2, "formats": 2,
    "inference": 3, "training": 3, "selftrain": 3,
    "cli": 4, "demo": 4, "__main__": 4,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``eoseg`` module ``path`` imports (module level, inside functions and under TYPE_CHECKING)."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "eoseg")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] == "eoseg":
                # ``from eoseg.pkg import mod`` imports the submodule when one exists
                for alias in node.names:
                    sub = SRC.parent.joinpath(*target.split("."), alias.name)
                    found.add(f"{target}.{alias.name}" if sub.with_suffix(".py").is_file() or sub.is_dir()
                              else target)
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(SRC.rglob("*.py"))}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``edges`` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_every_package_has_a_layer():
    packages = {_package(m) for m in _graph()} - {""}
    assert packages <= set(LAYERS), f"put {sorted(packages - set(LAYERS))} in LAYERS and docs/design.md"


def test_no_lower_layer_imports_a_higher_one():
    wrong = [
        f"{module} ({_package(module)}, layer {LAYERS[_package(module)]}) imports {target} "
        f"({_package(target)}, layer {LAYERS[_package(target)]})"
        for module, targets in _graph().items() if _package(module)
        for target in targets if _package(target) and LAYERS[_package(target)] > LAYERS[_package(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_packages_form_no_cycle():
    edges: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        edges.setdefault(_package(module), set()).update(
            _package(t) for t in targets if _package(t) != _package(module))
    assert _cycle(edges) is None, f"package import cycle: {' -> '.join(_cycle(edges) or [])}"


def test_modules_form_no_cycle():
    graph = _graph()
    edges = {m: {t for t in ts if t in graph and t != m and not m.startswith(t + ".")} for m, ts in graph.items()}
    # a package's __init__ re-exporting its own modules is not a cycle
    edges = {m: {t for t in ts if not (t == m.rsplit(".", 1)[0])} for m, ts in edges.items()}
    assert _cycle(edges) is None, f"module import cycle: {' -> '.join(_cycle(edges) or [])}"


@pytest.mark.parametrize("path", sorted((SRC / "geo").rglob("*.py")), ids=lambda p: p.name)
def test_geo_never_imports_torch(path: Path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    assert not names & {"torch", "lightning", "timm", "segmentation_models_pytorch"}


def test_predicting_does_not_load_lightning():
    code = ("import sys, eoseg.inference.predictor, eoseg.models.checkpoint; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in {'lightning', 'pytorch_lightning'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""The API's routers share helpers through modules of their own: no router imports another."""

import ast
from pathlib import Path

import service.api

API = Path(service.api.__file__).parent


def module_name(path: Path) -> str:
    return ".".join(("service", "api", *path.relative_to(API).with_suffix("").parts))


def is_router(tree: ast.Module) -> bool:
    """A module defining `router = APIRouter(...)` at its top level."""
    return any(isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
               and isinstance(node.value.func, ast.Name) and node.value.func.id == "APIRouter"
               and any(isinstance(t, ast.Name) and t.id == "router" for t in node.targets)
               for node in tree.body)


def imported(tree: ast.Module) -> set[str]:
    """Every module an import names: `from a.b import c` names a.b and a.b.c."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text(), str(path))
            for path in sorted(API.rglob("*.py"))}


def test_routers_are_found() -> None:
    routers = {name for name, tree in modules().items() if is_router(tree)}
    assert {"service.api.runs", "service.api.batch", "service.api.judge", "service.api.health",
            "service.api.ops", "service.api.tools", "service.api.compat.e2b",
            "service.api.compat.nemo_skills"} <= routers
    assert "service.api.batching" not in routers


def test_no_router_imports_a_router() -> None:
    trees = modules()
    routers = {name for name, tree in trees.items() if is_router(tree)}
    crossings = {name: sorted(imported(trees[name]) & (routers - {name})) for name in routers}
    assert {name: found for name, found in crossings.items() if found} == {}

"""Only the store package talks to Redis: no other module of the service imports redis."""

import ast
from pathlib import Path

import service

PACKAGE = Path(service.__file__).parent
STORE = PACKAGE / "store"


def redis_imports(path: Path) -> list[str]:
    """The redis modules a source file imports (`import redis…`, `from redis… import`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return [name for name in found if name == "redis" or name.startswith("redis.")]


def test_no_module_outside_the_store_imports_redis() -> None:
    outside = {str(path.relative_to(PACKAGE.parent)): names
               for path in PACKAGE.rglob("*.py") if STORE not in path.parents
               for names in [redis_imports(path)] if names}
    assert outside == {}


def test_the_check_sees_an_import_of_redis() -> None:
    assert redis_imports(STORE / "errors.py") == ["redis.exceptions"]
    assert redis_imports(STORE / "jobs.py") == ["redis", "redis.commands.core", "redis.exceptions"]

"""The house rule: resolvers -> services -> engine and models, never backwards."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def _offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path}: {name}"
        for path, names in _imports(ROOT / folder).items()
        for name in names
        if name.split(".")[0] in forbidden
        or any(name.startswith(f + ".") or name == f for f in forbidden)
    ]


def test_the_engine_is_pure():
    forbidden = (
        "tortoise",
        "strawberry",
        "redis",
        "broadcaster",
        "starlette",
        "asyncpg",
        "models",
        "schema",
        "resolvers",
        "app.services",
        "app.db",
        "httpx",
        "random",
        "secrets",
        "time",
        "uvicorn",
    )
    assert _offenders("app/engine", forbidden) == []


def test_the_engine_reads_no_clock():
    source = "\n".join(p.read_text() for p in (ROOT / "app/engine").rglob("*.py"))
    for call in ("datetime.now(", "datetime.utcnow(", "date.today(", "time.time("):
        assert call not in source


def test_resolvers_do_not_touch_the_orm():
    assert _offenders("resolvers", ("tortoise", "models")) == []


def test_services_and_models_do_not_import_the_api_layer():
    assert _offenders("app/services", ("strawberry", "schema", "resolvers")) == []
    assert _offenders("models", ("strawberry", "schema", "resolvers", "app.services")) == []

"""The metrics library stays at the edges: the domain and commands only see the port."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bot

ROOT = Path(bot.__file__).parent


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["domain", "commands", "adapters"])
def test_only_the_observability_edge_imports_prometheus_client(package: str):
    for path in (ROOT / package).rglob("*.py"):
        modules = imported_modules(path)
        assert not any(m.startswith("prometheus_client") for m in modules), path
        assert "bot.observability.prometheus" not in modules, path


def test_the_domain_does_not_even_import_the_port():
    for path in (ROOT / "domain").rglob("*.py"):
        assert not any(m.startswith("bot.observability") for m in imported_modules(path)), path

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


# --- the layers point one way: transports -> commands -> domain -> adapters (issue 11) ---

# What each inner package may not import. Adapters implement the domain's ports, so
# they import its values; neither imports commands (but for messages.py) or transports.
FORBIDDEN = {
    "domain": ("bot.commands", "bot.transports", "bot.adapters", "bot.services"),
    "adapters": ("bot.commands", "bot.transports", "bot.services"),
    "commands": ("bot.transports", "bot.services"),
}
WORDING = {"bot.commands.messages", "bot.commands"}  # `from bot.commands import messages`


def bot_imports(path: Path) -> set[str]:
    return {m for m in imported_modules(path) if m.startswith("bot.") or m == "bot"}


def test_messages_is_a_leaf():
    """Every sentence lives in messages.py, so any layer may word with it: it imports
    nothing of the bot's."""
    assert bot_imports(ROOT / "commands" / "messages.py") == set()


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_nothing_climbs_upward(layer: str):
    for path in (ROOT / layer).rglob("*.py"):
        for module in bot_imports(path) - WORDING:
            assert not module.startswith(FORBIDDEN[layer]), (path, module)


def test_the_app_factory_starts_no_thread():
    """create_app registers listeners; the process entry points start the upkeep."""
    source = (ROOT / "transports" / "slack" / "app.py").read_text()
    factory = source[source.index("def create_app(") : source.index("def post_ack_work(")]
    assert "Thread" not in factory
    assert ".start()" not in factory

"""The deployment files: what a platform or a container runtime reads.

No Docker daemon runs in tests; these check the files' contents. The image's
steps are exercised by installing from the lock (tests/test_lock.py) and by
running the same commands as processes (tests/transports/test_processes.py).
"""

from __future__ import annotations

import json
import pathlib
import re

import yaml
from dotenv import dotenv_values

from bot.config import load_settings

ROOT = pathlib.Path(__file__).parents[1]


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every `NAME …` instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", dockerfile())
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]


def test_env_example_names_every_setting_and_loads():
    config = (ROOT / "bot" / "config.py").read_text()
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', config))
    example = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^#?\s?([A-Z][A-Z_]+)=", example, re.MULTILINE))
    assert read - named == set(), "settings missing from .env.example"
    values = {k: v for k, v in dotenv_values(ROOT / ".env.example").items() if v}
    settings = load_settings(values)  # no ConfigError: the placeholders are well formed
    assert settings.sendgrid_api_version == "v3"  # v3 first


def test_the_image_runs_as_a_non_root_user_from_the_hashed_lock():
    [user] = instructions("USER")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user  # numeric, not root
    runs = " ".join(instructions("RUN"))
    assert "--require-hashes" in runs
    assert "-r requirements.txt" in runs
    assert all(base.split()[0].endswith("-slim") for base in instructions("FROM"))
    version = (ROOT / ".python-version").read_text().strip()
    assert f"ARG PYTHON_VERSION={version}" in dockerfile()
    assert json.loads(instructions("ENTRYPOINT")[0]) == ["credits-bot"]
    assert json.loads(instructions("CMD")[-1]) == ["serve"]


def test_the_image_checks_its_health_on_healthz():
    [check] = instructions("HEALTHCHECK")
    command = json.loads(check.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2]
    assert "PORT" in command[2]


def test_the_build_context_leaves_out_secrets_and_local_state():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # everything out, then only what the image needs back in
    assert sorted(r for r in rules if r.startswith("!")) == [
        "!README.md",
        "!bot/",
        "!pyproject.toml",
        "!requirements.txt",
    ]


def test_compose_runs_web_and_clock_from_one_image_next_to_postgresql():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "web", "clock"}
    web, clock = services["web"], services["clock"]
    assert web["command"] == ["serve"]
    assert clock["command"] == ["clock"]
    assert web["image"] == clock["image"]
    assert web["build"] == clock["build"] == "."
    assert web["env_file"] == clock["env_file"] == ".env"
    for service in (web, clock):
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://credits:")
        assert "@db:5432/credits" in service["environment"]["DATABASE_URL"]
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
    assert clock["healthcheck"] == {"disable": True}  # the clock serves no HTTP
    assert services["db"]["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])


def test_readme_set_up_is_v3_first_and_self_contained():
    readme = (ROOT / "README.md").read_text()
    set_up = readme[readme.index("## Setting up") : readme.index("## Measured")]
    for needed in (
        ".env.example",
        "SENDGRID_API_KEY",
        "subusers.read",
        "CREDITS_ALERT_CHANNEL",
        "credits-bot clock",
        "credits-bot doctor",
        "docker compose up",
        "requirements.txt",
    ):
        assert needed in set_up, needed
    assert "v2" not in set_up.split("SENDGRID_API_KEY", 1)[0]  # v3 comes first
    for outside in ("design §", "§", "issue notes", "the issue"):
        assert outside not in readme, outside

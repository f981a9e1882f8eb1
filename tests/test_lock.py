"""`requirements.txt` is the pinned, hashed lock of `pyproject.toml` (its source of truth).

Hosting platforms' Python buildpacks detect and install the app from it, and the
Dockerfile installs it with `--require-hashes`. It is generated, never edited:

    pip-compile --generate-hashes --strip-extras --no-emit-index-url \
        --no-emit-find-links --output-file=requirements.txt pyproject.toml

These tests fail when `pyproject.toml`'s dependencies change and the lock was
not regenerated. They read files and installed metadata only (no network).
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import tomllib
from dataclasses import dataclass, field

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).parents[1]
PYPROJECT = "credits-bot (pyproject.toml)"


@dataclass
class Pin:
    version: str
    hashes: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)


def read_lock() -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for raw in (ROOT / "requirements.txt").read_text().splitlines():
        line = raw.strip().rstrip("\\").strip()
        pinned = re.match(r"^([A-Za-z0-9._-]+)==(\S+)$", line)
        if pinned and not raw.startswith(" "):
            current = pins[canonicalize_name(pinned.group(1))] = Pin(pinned.group(2))
        elif line.startswith("--hash=") and current is not None:
            current.hashes.append(line.removeprefix("--hash="))
        elif line.startswith("# via") and current is not None:
            parent = line.removeprefix("# via").strip()
            if parent:
                current.via.add(parent)
        elif line.startswith("#   ") and current is not None:
            current.via.add(line.removeprefix("#").strip())
        elif line and not line.startswith("#"):
            raise AssertionError(f"unexpected line in requirements.txt: {raw!r}")
    return pins


def project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def direct_requirements() -> list[Requirement]:
    return [Requirement(text) for text in project()["dependencies"]]  # type: ignore[union-attr]


def requirements_of(name: str, extras: set[str]) -> list[Requirement]:
    """What an installed distribution requires here (this platform, these extras)."""
    found = []
    for text in importlib.metadata.requires(name) or []:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(
            marker.evaluate({**default_environment(), "extra": extra}) for extra in extras | {""}
        ):
            found.append(requirement)
    return found


def test_every_dependency_is_pinned_within_its_range():
    pins = read_lock()
    for requirement in direct_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.txt: regenerate the lock"
        assert requirement.specifier.contains(pins[name].version, prereleases=True), (
            f"requirements.txt pins {name}=={pins[name].version}, outside {requirement}: "
            "regenerate the lock"
        )
        assert PYPROJECT in pins[name].via


def test_nothing_is_pinned_for_the_project_that_it_no_longer_asks_for():
    wanted = {canonicalize_name(r.name) for r in direct_requirements()}
    pinned_for_project = {name for name, pin in read_lock().items() if PYPROJECT in pin.via}
    assert pinned_for_project == wanted


def test_what_the_extras_bring_is_locked():
    pins = read_lock()
    for requirement in direct_requirements():
        for extra in requirement.extras:  # psycopg[binary] → psycopg-binary
            for needed in requirements_of(requirement.name, {extra}):
                if needed.marker is None or "extra" not in str(needed.marker):
                    continue
                name = canonicalize_name(needed.name)
                assert name in pins, f"{requirement} needs {needed}, which is not locked"
                assert canonicalize_name(requirement.name) in {
                    canonicalize_name(p) for p in pins[name].via
                }


def test_every_pin_is_needed_by_another_and_hashed():
    pins = read_lock()
    for name, pin in pins.items():
        assert pin.hashes, f"{name} has no --hash: generate with --generate-hashes"
        assert all(h.startswith("sha256:") for h in pin.hashes)
        parents = {canonicalize_name(p) for p in pin.via if p != PYPROJECT}
        assert pin.via, f"{name} is pinned but nothing needs it"
        assert parents <= set(pins), f"{name} is needed by {parents - set(pins)}, not locked"


def test_what_each_locked_package_needs_is_locked_too():
    pins = read_lock()
    checked = 0
    for name, pin in pins.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if installed != pin.version:
            continue  # its metadata here is another version's
        for requirement in requirements_of(name, set()):
            if requirement.marker is not None and "extra" in str(requirement.marker):
                continue
            needed = canonicalize_name(requirement.name)
            assert needed in pins, f"{name} needs {requirement}, which is not locked"
            assert requirement.specifier.contains(pins[needed].version, prereleases=True)
        checked += 1
    assert checked >= len(pins) // 2, "too few locked versions installed to check the lock"


def test_the_python_version_is_the_one_the_lock_was_made_for():
    version = (ROOT / ".python-version").read_text().strip()
    header = (ROOT / "requirements.txt").read_text()
    assert re.fullmatch(r"3\.\d+", version)
    assert f"autogenerated by pip-compile with Python {version}" in header
    requires = project()["requires-python"]
    assert Requirement(f"python{requires}").specifier.contains(f"{version}.0")


@pytest.mark.parametrize("path", ["requirements.txt", "Dockerfile"])
def test_no_local_index_or_path_leaks_into_the_build_files(path):
    text = (ROOT / path).read_text()
    assert "file://" not in text
    assert "--find-links" not in text
    assert "--extra-index-url" not in text

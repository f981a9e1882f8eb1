"""`credits-bot serve` as a real process (gunicorn), for multi-instance and kill tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import requests

from tests.helpers import wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any of the bot's settings, plus `extra`."""
    prefixes = ("SENDGRID_", "SLACK_", "CREDITS_", "DATABASE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return {**env, **extra}


class ServeProcess:
    """One `python -m bot serve` in its own process group (so a kill takes its workers too).

    `command` replaces it (e.g. the Procfile's gunicorn line); `{port}` is filled in.
    With `log`, its stderr (the log) is written to that file; with `stderr`, to that
    stream; otherwise it is discarded.
    """

    def __init__(
        self,
        env: dict[str, str],
        command: list[str] | None = None,
        log: Path | None = None,
        *,
        stderr: IO[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        default = [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "{port}"]
        log_file = log.open("wb") if log is not None else None
        self.process = subprocess.Popen(
            [part.replace("{port}", str(self.port)) for part in command or default],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file or stderr or subprocess.DEVNULL,
            start_new_session=True,
        )
        if log_file is not None:
            log_file.close()  # the child has its own copy

    def wait_healthy(self, timeout: float = 30) -> ServeProcess:
        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}")
            try:
                return requests.get(self.url + "/healthz", timeout=1).ok
            except (requests.ConnectionError, requests.Timeout):  # still booting
                return False

        wait_until(healthy, timeout=timeout)
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean-up of any kind runs."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def serving(
    env: dict[str, str],
    command: list[str] | None = None,
    log: Path | None = None,
    *,
    stderr: IO[str] | None = None,
) -> Iterator[ServeProcess]:
    server = ServeProcess(env, command, log, stderr=stderr)
    try:
        yield server.wait_healthy()
    finally:
        server.stop()

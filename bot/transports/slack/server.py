"""`credits-bot serve`: the WSGI app under gunicorn, as in production."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from bot.config import Settings
from bot.transports.slack.wsgi import build_wsgi_app

# One process, many threads: the Bolt listener executor does the slow work, so
# gunicorn's threads only hold a request until its ack.
GUNICORN_OPTIONS = {
    "workers": 1,
    "worker_class": "gthread",
    "threads": 32,
    "timeout": 60,
    "graceful_timeout": 20,
    "keepalive": 5,
}


def worker_exit(server: Any, worker: Any) -> None:
    """Gunicorn hook, in the worker, after it stopped taking requests (SIGTERM):
    let the bot finish or record its work in flight before the process ends."""
    shutdown = getattr(worker.wsgi, "shutdown", None)
    if callable(shutdown):
        shutdown()


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self._settings = settings
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        self.cfg.set("worker_exit", worker_exit)

    def load(self) -> Any:
        # Built in the worker, after the fork: no threads or sockets cross it.
        return build_wsgi_app(self._settings).start_heartbeat()


def serve_with_gunicorn(settings: Settings, *, host: str, port: int) -> None:
    """Run until stopped (SIGTERM / Ctrl-C)."""
    options = {**GUNICORN_OPTIONS, "bind": f"{host}:{port}", "loglevel": settings.log_level.lower()}
    _Gunicorn(settings, options).run()

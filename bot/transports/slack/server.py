"""`credits-bot serve`: the WSGI app under gunicorn, as in production."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from bot.config import Settings
from bot.observability.multiprocess import use_multiprocess_dir

# Many threads per process: the post-ack pool does the slow work, so gunicorn's
# threads only hold a request until its ack. One process per CPU (at most 4): every
# request costs CPU under its process's GIL; with two on two CPUs a burst of 50
# commands was acknowledged sooner (ack p99 1.84 → 1.13 × bare Bolt, one run;
# docs/reliability.md, issue 16).
MAX_DEFAULT_WORKERS = 4
GUNICORN_OPTIONS = {
    "worker_class": "gthread",
    "threads": 32,
    "timeout": 60,
    "graceful_timeout": 20,
    "keepalive": 5,
}


def serve_workers(settings: Settings) -> int:
    """`WEB_CONCURRENCY`, else one worker per CPU this process may run on (at most 4)."""
    if settings.web_concurrency is not None:
        return settings.web_concurrency
    return max(1, min(MAX_DEFAULT_WORKERS, len(os.sched_getaffinity(0))))


def worker_exit(server: Any, worker: Any) -> None:
    """Gunicorn hook, in the worker, after it stopped taking requests (SIGTERM):
    let the bot finish or record its work in flight before the process ends."""
    shutdown = getattr(worker.wsgi, "shutdown", None)
    if callable(shutdown):
        shutdown()


class RootHandlersLogger(GunicornLogger):  # type: ignore[misc]
    """Gunicorn's own lines go through the bot's handlers (LOG_FORMAT, redaction)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.handlers[:] = []
            log.propagate = True


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
        # Imported here: prometheus_client must not be imported before its directory is set.
        from bot.transports.slack.wsgi import build_wsgi_app  # noqa: PLC0415

        return build_wsgi_app(self._settings)


def serve_with_gunicorn(settings: Settings, *, host: str, port: int) -> None:
    """Run until stopped (SIGTERM / Ctrl-C).

    Metrics add up across workers in PROMETHEUS_MULTIPROC_DIR, or in a fresh
    temporary directory when it is unset; stale files are removed first.
    """
    directory = use_multiprocess_dir(settings.metrics_dir)
    settings = dataclasses.replace(settings, metrics_dir=directory)

    def child_exit(server: Any, worker: Any) -> None:
        from bot.observability.prometheus import worker_exited  # noqa: PLC0415

        worker_exited(worker.pid, directory)

    options = {
        **GUNICORN_OPTIONS,
        "workers": serve_workers(settings),
        "bind": f"{host}:{port}",
        "loglevel": settings.log_level.lower(),
        "logger_class": RootHandlersLogger,
        "child_exit": child_exit,
    }
    logging.getLogger("bot").info(
        "%d worker process(es); the metrics of every worker are kept in %s",
        options["workers"],
        directory,
    )
    _Gunicorn(settings, options).run()

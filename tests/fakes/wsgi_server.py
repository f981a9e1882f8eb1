"""A threaded WSGI server on 127.0.0.1:0 for the app under test (stdlib wsgiref)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False


@contextmanager
def serving(app: WSGIApplication) -> Iterator[str]:
    """Serve `app`; yields its base URL, e.g. http://127.0.0.1:PORT."""
    server = make_server(
        "127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=_QuietHandler
    )
    server.request_queue_size = 128
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        close = getattr(app, "close", None)
        if callable(close):
            close()  # the process's own timer (the instance's upkeep) and its database

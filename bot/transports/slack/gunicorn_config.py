"""Gunicorn settings for the Procfile's `web:` line.

`gunicorn --config python:bot.transports.slack.gunicorn_config …`

Only what the bot needs from gunicorn beyond the command line: the hook that lets a
stopping worker finish or record its credit changes in flight.
"""

from bot.transports.slack.server import worker_exit

graceful_timeout = 20

__all__ = ["graceful_timeout", "worker_exit"]

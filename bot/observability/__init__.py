"""Seeing what the bot is doing: the metrics port, Prometheus, readiness, request context.

Cross-cutting like `bot/errors.py` and `bot/logs.py`: every layer may import
`metrics` (the port) and `context`; only `prometheus` imports prometheus_client,
and only the transports build it.
"""

"""Transports: Slack (HTTP, Socket Mode), the console, and the command line."""

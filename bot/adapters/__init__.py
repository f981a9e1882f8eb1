"""Adapters to the outside world: SendGrid, the database, Slack's directory."""

"""Slack's Web API as the bot uses it: the client (`web`) and the user-group directory
(`directory`). The approval notifier and the digest poster render Block Kit, so they
stay with the Slack transport (`bot/transports/slack/approvals.py`, `alerts.py`)."""

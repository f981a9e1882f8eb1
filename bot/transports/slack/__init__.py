"""The Slack transport: Bolt app factory, routing table, Block Kit, WSGI and Socket Mode."""

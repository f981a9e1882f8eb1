"""Commands: parse text → Command, authorize → Decision, execute → Reply.

No Slack and no HTTP here: transports convert their payloads into a call to
`CommandService.handle` and render the `Reply` they get back.
"""

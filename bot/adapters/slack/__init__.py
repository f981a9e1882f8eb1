"""All outgoing Slack: the Web API client (`web`), the user-group directory
(`directory`), the approval notifier (`notifier`) and the digest poster (`poster`).

The notifier and the poster send what the Slack transport renders (Block Kit, built on
`commands/formatting.py`), given to them as `ApprovalMessages` and a `render` function,
so nothing here imports the layers above."""

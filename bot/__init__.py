"""credits-bot: look after SendGrid customers' email credits from Slack."""

__version__ = "0.1.0"

"""The domain: credits model, policy, approvals and alert decisions. No I/O here."""

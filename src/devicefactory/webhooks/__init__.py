"""Signed webhooks: an OEM's receivers, the outbox of events, and the sender (SPEC §13)."""

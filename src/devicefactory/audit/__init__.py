"""The audit log (SPEC §13): recording every change and download, reading it back (API, CSV)."""

"""``devicefactory-client``: the factory-floor command line, for this service or Ayla's regions.

profiles.py   environments, profiles on disk (0600 files in a 0700 directory)
api.py        HTTP: tokens and their refresh, Idempotency-Keys, errors with hints
journal.py    the offline journal (append-only, fsync'd)
progress.py   rich bars on a terminal, plain lines elsewhere
group.py      the command group and the profile commands
devices.py    reserve, verify, factory-reset, device, search
offline.py    record, sync, journal
actions.py    upload, action
"""

from devicefactory.client import actions, devices, offline  # noqa: F401 - they add their commands
from devicefactory.client.group import main
from devicefactory.client.profiles import DEFAULT_BASE_URL, ENVIRONMENTS, base_url_for

__all__ = ["DEFAULT_BASE_URL", "ENVIRONMENTS", "base_url_for", "main"]

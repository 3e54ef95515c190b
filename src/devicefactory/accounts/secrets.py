"""Password hashing and opaque tokens (stored only as hashes)."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs as much as a hit.
_DUMMY_HASH = _hasher.hash("not a real password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


# Hashes being checked at once in a process: each takes argon2's 64 MiB and a core, so a
# storm of sign-ins may not take the memory, nor more than half the cores.
_CHECKING = threading.BoundedSemaphore(max(1, (os.cpu_count() or 2) // 2))


def verify_password(password_hash: str | None, password: str) -> bool:
    with _CHECKING:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def new_token() -> str:
    return secrets.token_hex(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()

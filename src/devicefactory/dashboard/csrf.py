"""CSRF tokens for every dashboard form: HMAC-SHA256 of what the browser's cookie holds.

A signed-in form carries HMAC(secret, "session:" + access token); the sign-in form,
before any session exists, carries HMAC(secret, "sign-in:" + a random nonce) that is
kept in its own HttpOnly cookie. The secret is derived from the master key, so every
web process of one deployment computes the same tokens, and nothing is stored.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from devicefactory.errors import Forbidden
from devicefactory.keys.access import keyring_source

FIELD = "csrf_token"
_LABEL = b"devicefactory dashboard csrf v1"


class CsrfRejected(Forbidden):
    def __init__(self) -> None:
        super().__init__(
            "Forbidden: the form's security token is missing or out of date. Reload the page and try again."
        )


def _secret(request: Request) -> bytes:
    secret: bytes | None = getattr(request.app.state, "dashboard_csrf_secret", None)
    if secret is None:
        # The configured key, not a rotation's new one: every process computes the same.
        master = keyring_source(request).keyring.configured.secret_bytes()
        secret = hmac.new(master, _LABEL, hashlib.sha256).digest()
        request.app.state.dashboard_csrf_secret = secret
    return secret


def token(request: Request, binding: str, *, purpose: str = "session") -> str:
    """The token for forms of the browser whose cookie holds ``binding``."""
    message = f"{purpose}:{binding}".encode()
    return hmac.new(_secret(request), message, hashlib.sha256).hexdigest()


def check(request: Request, submitted: object, binding: str | None, *, purpose: str = "session") -> None:
    """Raise CsrfRejected (403) unless ``submitted`` is the token for ``binding``."""
    if not binding or not isinstance(submitted, str) or not submitted:
        raise CsrfRejected()
    expected = token(request, binding, purpose=purpose)
    if not hmac.compare_digest(submitted.encode("utf-8", "surrogatepass"), expected.encode()):
        raise CsrfRejected()

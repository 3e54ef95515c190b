"""The service over HTTP: tokens (refreshed when they run out), Idempotency-Keys, and errors
turned into messages that say what to do next.

Exceptions (each exits the command with its code)::

    click.ClickException        exit 1
    ├── Refused                 exit 1  the service said no (4xx, an AFS error)
    └── Unreachable             exit 3  no answer, a timeout, or a 5xx: worth trying later
"""

from __future__ import annotations

import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import click
import httpx

from devicefactory.client.profiles import DEFAULT_PROFILE, Profile, config_dir, write_private

PROG = "devicefactory-client"
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3
# Refresh a little before the stored expiry, so a token does not run out in flight.
EXPIRY_MARGIN_S = 30


def new_idempotency_key() -> str:
    """A fresh key for one change; the same change sent again carries the same key."""
    return str(uuid.uuid4())


class Refused(click.ClickException):
    """The service refused the request (a 4xx with its AFS codes)."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, response: httpx.Response) -> None:
        super().__init__(message)
        self.response = response
        self.codes = afs_codes(response)


class Unreachable(click.ClickException):
    """No answer from the service (connection, timeout) or a server error (5xx)."""

    exit_code = EXIT_UNREACHABLE


def afs_codes(response: httpx.Response) -> list[str]:
    try:
        return [str(e["code"]) for e in response.json()["error"]]
    except (ValueError, KeyError, TypeError):
        return []


def error_text(response: httpx.Response) -> str:
    """``AFS-606: Device is already manufactured`` (every error of the body), or the status."""
    try:
        errors = response.json()["error"]
        return "; ".join(f"{e['code']}: {e['message']}" for e in errors)
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def tls_context(client_cert: tuple[str, str] | None, ca_cert: str | None) -> ssl.SSLContext | bool:
    """The TLS settings: the system's trust (or ``ca_cert``), plus a client certificate."""
    if client_cert is None and ca_cert is None:
        return True
    context = ssl.create_default_context(cafile=ca_cert)
    if client_cert is not None:
        context.load_cert_chain(*client_cert)
    return context


class Api:
    """One base URL, one profile. ``token`` (``--token``) overrides the profile's tokens and is
    never refreshed; ``token_file`` (``DEVICEFACTORY_TOKEN_FILE``) mirrors the access token."""

    def __init__(
        self,
        base_url: str,
        profile: Profile,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 60,
    ) -> None:
        self.profile = profile
        self.override = token
        self.token_file = token_file
        self.http = httpx.Client(
            base_url=base_url, timeout=httpx.Timeout(timeout, connect=min(timeout, 10)), verify=verify
        )

    def close(self) -> None:
        self.http.close()

    # --- requests -------------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer when it is a success; raises Refused or Unreachable otherwise."""
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            raise Refused(self.explain(response), response)
        return response

    def change(self, path: str, *, key: str | None = None, **kwargs: Any) -> httpx.Response:
        """A POST that changes something, with its Idempotency-Key (a new one unless given)."""
        headers = {**kwargs.pop("headers", {}), "Idempotency-Key": key or new_idempotency_key()}
        return self.call("POST", path, headers=headers, **kwargs)

    def send(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        """Any answer below 500; refreshes the access token and retries once on 401."""
        token = self.access_token() if auth else None
        response = self._send(method, path, token, **kwargs)
        if response.status_code == 401 and token and self._refresh(stale=token):
            response = self._send(method, path, self.access_token(), **kwargs)
        return response

    def _send(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"auth_token {token}"
        try:
            response = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as error:
            raise Unreachable(
                f"cannot reach {self.http.base_url}: {str(error) or type(error).__name__}"
            ) from None
        if response.status_code >= 500:
            raise Unreachable(f"{self.http.base_url} failed: {error_text(response)}")
        return response

    # --- tokens ---------------------------------------------------------------------------

    def access_token(self) -> str | None:
        """``--token``, else the token file, else the profile's (refreshed first if it expired)."""
        if self.override:
            return self.override
        profile = self.profile
        if profile.access_token and profile.refresh_token and _expired(profile):
            self._refresh(stale=profile.access_token)
        if self.token_file is not None and self.token_file.exists():
            return self.token_file.read_text().strip() or None
        return profile.access_token or self._legacy_token()

    def _legacy_token(self) -> str | None:
        # Before profiles, sign-in kept one access token in ~/.config/devicefactory/token.
        legacy = config_dir() / "token"
        if self.profile.name == DEFAULT_PROFILE and legacy.exists():
            return legacy.read_text().strip() or None
        return None

    def _refresh(self, *, stale: str) -> bool:
        """Trade the refresh token for a new pair, once across processes; True when there is one."""
        if self.override or not self.profile.refresh_token:
            return False
        with self.profile.locked():
            current = Profile.load(self.profile.name)
            if current.access_token and current.access_token != stale and not _expired(current):
                self.profile = current  # another process refreshed it a moment ago
                self._mirror(current.access_token)
                return True
            if not current.refresh_token:
                return False
            body = {"user": {"refresh_token": current.refresh_token}}
            response = self._send("POST", "/users/refresh_token.json", None, json=body)
            if response.status_code != 200:
                current.forget_tokens()  # the pair is dead: say "sign in again", not "refresh"
                current.save()
                self.profile = current
                return False
            self.profile = store_tokens(current, response.json(), self.token_file)
            return True

    def _mirror(self, access_token: str) -> None:
        if self.token_file is not None:
            write_private(self.token_file, access_token + "\n")

    # --- messages -------------------------------------------------------------------------

    def explain(self, response: httpx.Response) -> str:
        """The AFS errors, and a hint of what to do about them."""
        text, codes = error_text(response), afs_codes(response)
        status = response.status_code
        if status == 401:
            return f"{text}\nhint: sign in again: {self.sign_in_command()}"
        if status == 403:
            role = self.profile.role or "unknown"
            who = f"{self.profile.email} ({role})" if self.profile.email else f"role {role}"
            return f"{text}\nhint: your role may not do this: signed in as {who}"
        if "AFS-605" in codes:
            retry = response.headers.get("Retry-After", "?")
            now = response.headers.get("X-Reservable-Now", "?")
            return (
                f"{text}\nhint: the key pool is low: retry after {retry} s; "
                f"{now} DSNs could be reserved now (X-Reservable-Now)"
            )
        if status == 429:
            return f"{text}\nhint: retry after {response.headers.get('Retry-After', '?')} s"
        return text

    def sign_in_command(self) -> str:
        parts = [PROG]
        if self.profile.name != DEFAULT_PROFILE:
            parts += ["--profile", self.profile.name]
        parts += ["sign-in", "--env", str(self.http.base_url).rstrip("/")]
        parts += ["--email", self.profile.email or "EMAIL"]
        return " ".join(parts)


def store_tokens(profile: Profile, tokens: dict[str, Any], token_file: Path | None) -> Profile:
    """Keep a sign-in's or refresh's tokens in the profile (and the token file, if one is set)."""
    profile.access_token = str(tokens["access_token"])
    profile.refresh_token = tokens.get("refresh_token")
    profile.expires_at = time.time() + float(tokens.get("expires_in", 86400))
    profile.role = tokens.get("role", profile.role)
    profile.save()
    if token_file is not None:
        write_private(token_file, profile.access_token + "\n")
    return profile


def _expired(profile: Profile) -> bool:
    return profile.expires_at is not None and time.time() >= profile.expires_at - EXPIRY_MARGIN_S

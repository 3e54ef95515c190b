"""Profiles (as ``aws``/``gh`` keep them): the environment, user and tokens of each, on disk.

Each profile is one JSON file, ``<config dir>/profiles/<name>.json``, mode 0600 in a 0700
directory, replaced atomically (temporary file, fsync, rename) so a crash never leaves
half a file. Refreshing tokens takes an exclusive lock on ``<name>.lock``, because the
service rotates refresh tokens: two processes refreshing with one token would sign
each other out.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import click

# The seed's regional service environments (AFS 2.2, §1.10).
ENVIRONMENTS = {
    "us-field": "https://api-field.aylanetworks.com",
    "eu-field": "https://api-field-eu.aylanetworks.com",
    "cn-field": "https://api-field.ayla.com.cn",
    "us-dev": "https://api-dev.aylanetworks.com",
    "eu-dev": "https://api-dev-eu.aylanetworks.com",
    "cn-dev": "https://api-dev.ayla.com.cn",
}
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_PROFILE = "default"
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


def base_url_for(environment: str) -> str:
    """A regional name, or any http(s) base URL of a self-hosted service."""
    if environment in ENVIRONMENTS:
        return ENVIRONMENTS[environment]
    if environment.startswith(("http://", "https://")):
        return environment.rstrip("/")
    names = ", ".join(ENVIRONMENTS)
    raise click.BadParameter(f"{environment!r} is neither one of {names} nor an http(s) URL")


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/devicefactory``, else ``~/.config/devicefactory`` (read at call time)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "devicefactory"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 if missing; returns it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def check_profile_name(name: str) -> str:
    if not _PROFILE_NAME.fullmatch(name):
        raise click.BadParameter(
            f"{name!r} is not a profile name (letters, digits, '_', '.', '-'; at most 64)",
            param_hint="--profile",
        )
    return name


@dataclass
class Profile:
    """What one profile remembers; tokens are empty when signed out."""

    name: str
    environment: str | None = None
    email: str | None = None
    role: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    # Unix time (client clock) after which the access token is no longer accepted.
    expires_at: float | None = None
    client_cert: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return config_dir() / "profiles" / f"{self.name}.json"

    @classmethod
    def load(cls, name: str) -> Profile:
        """The stored profile, or an empty one (nothing is written until ``save``)."""
        profile = cls(name=check_profile_name(name))
        try:
            stored = json.loads(profile.path.read_text())
        except FileNotFoundError:
            return profile
        except (OSError, ValueError) as error:
            raise click.ClickException(f"cannot read profile {profile.path}: {error}") from None
        known = {f.name for f in fields(cls)} - {"name", "extra"}
        for key, value in stored.items():
            if key in known:
                setattr(profile, key, value)
            elif key != "name":
                profile.extra[key] = value  # written by a newer client: keep it
        return profile

    def save(self) -> None:
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        write_private(self.path, json.dumps({**self.extra, **data}, indent=2) + "\n")

    def forget_tokens(self) -> None:
        self.access_token = self.refresh_token = None
        self.expires_at = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive, across processes, for a read-refresh-write of the tokens."""
        lock_path = private_dir(self.path.parent) / f"{self.name}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, mode 0600, its directory 0700."""
    private_dir(path.parent)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    sync_directory(path.parent)


def sync_directory(path: Path) -> None:
    """fsync a directory, so a rename or a new file in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_profiles() -> list[Profile]:
    folder = config_dir() / "profiles"
    names = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
    return [Profile.load(name) for name in names if _PROFILE_NAME.fullmatch(name)]

"""The master keyring as an HTTP dependency: loaded (or created) on first use, then kept."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from devicefactory.config import Settings
from devicefactory.keys.crypto import Keyring
from devicefactory.keys.master import KeyringSource, load_master_key


def keyring_source(request: Request) -> KeyringSource:
    """The master key loaded (or created, mode 0600) on first use, then kept for the app's
    life, with any rotation in progress (keys.master)."""
    source: KeyringSource | None = getattr(request.app.state, "keyring_source", None)
    if source is None:
        settings: Settings = request.app.state.settings
        source = KeyringSource(load_master_key(settings), request.app.state.read_session_factory)
        request.app.state.keyring_source = source
    return source


def get_keyring(request: Request) -> Keyring:
    return keyring_source(request).current()


KeyringDep = Annotated[Keyring, Depends(get_keyring)]

"""The master keyring as an HTTP dependency: loaded (or created) on first use, then kept."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from devicefactory.config import Settings
from devicefactory.http.transaction import InEndpointThread
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


async def get_keyring(request: Request) -> Keyring:
    """The current keyring, worked out in the endpoint's thread (loading the key file or
    looking for a rotation may touch the disk and the database)."""
    return cast(Keyring, InEndpointThread(lambda: keyring_source(request).current()))


KeyringDep = Annotated[Keyring, Depends(get_keyring)]

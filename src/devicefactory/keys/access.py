"""The master keyring as an HTTP dependency: loaded (or created) once, then kept, and kept
up to date with a rotation by a watcher thread of the app's."""

from __future__ import annotations

import logging
import threading
from typing import Annotated, cast

from fastapi import Depends, FastAPI, Request

from devicefactory.config import Settings
from devicefactory.http.transaction import InEndpointThread
from devicefactory.keys.crypto import Keyring
from devicefactory.keys.master import KeyringSource, load_master_key
from devicefactory.processes import pause

log = logging.getLogger("devicefactory.keys")
_CREATING = threading.Lock()


def keyring_source_of(app: FastAPI) -> KeyringSource:
    """The master key loaded (or created, mode 0600) on first use, then kept for the app's
    life, with any rotation in progress (keys.master)."""
    source: KeyringSource | None = getattr(app.state, "keyring_source", None)
    if source is None:
        with _CREATING:  # the watcher and a request may both be first: one key, loaded once
            source = getattr(app.state, "keyring_source", None)
            if source is None:
                settings: Settings = app.state.settings
                source = KeyringSource(load_master_key(settings), app.state.read_session_factory)
                app.state.keyring_source = source
    return source


def keyring_source(request: Request) -> KeyringSource:
    return keyring_source_of(request.app)


def watch_keyring(app: FastAPI, stop: threading.Event, every: float = 1.0) -> None:
    """Look for a master-key rotation whether or not requests come: a web process that sits
    idle while a rotation runs must still learn the new key before the rotation ends (the
    database then no longer holds it in any form), or it could open no re-sealed key."""
    failing = False
    while not pause(stop, every):  # not stop.wait(): see processes.pause
        try:
            keyring_source_of(app).current()  # reads the database at most every REFRESH_SECONDS
        except Exception as error:  # the database away for a while: say so once, keep looking
            if not failing:
                log.warning("cannot look for a master key rotation (trying on): %s", error)
            failing = True
        else:
            failing = False


async def get_keyring(request: Request) -> Keyring:
    """The current keyring, worked out in the endpoint's thread (loading the key file or
    looking for a rotation may touch the disk and the database)."""
    return cast(Keyring, InEndpointThread(lambda: keyring_source(request).current()))


KeyringDep = Annotated[Keyring, Depends(get_keyring)]

"""Heavy reads (action files, searches, exports) streamed under a per-OEM bound (§11)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from devicefactory.http.caller import Caller
from devicefactory.limits import InFlightLimit, Slot


def heavy_slot(request: Request, actor: Caller) -> Slot:
    """Admit one heavy read (a file, a search, an export) for the caller's OEM, or AFS-429."""
    limit: InFlightLimit = request.app.state.heavy_reads
    return limit.enter(actor.oem_id or f"user {actor.user_id}")


class Streamed(Protocol):
    @property
    def filename(self) -> str: ...
    @property
    def media_type(self) -> str: ...
    @property
    def chunks(self) -> Iterator[bytes]: ...


class StreamedFile(StreamingResponse):
    """A file sent as it is read; its heavy-read slot is freed however the sending ends
    (done, failed, or its client gone: Starlette then stops iterating the chunks)."""

    def __init__(self, file: Streamed, slot: Slot, headers: dict[str, str] | None = None) -> None:
        disposition = {"Content-Disposition": f'attachment; filename="{file.filename}"'}
        super().__init__(file.chunks, media_type=file.media_type, headers={**disposition, **(headers or {})})
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


def stream_heavy(
    request: Request, actor: Caller, make: Callable[[], Streamed], headers: dict[str, str] | None = None
) -> StreamedFile:
    """Admit the read, make the file (tenant checks run now), and stream it."""
    slot = heavy_slot(request, actor)
    try:
        return StreamedFile(make(), slot, headers)
    except BaseException:
        slot.release()
        raise

"""Stored files: uploads kept in the database in chunks, so that any web process can take
a file and any worker, on any host, can read it (SPEC §12).

A file is written a chunk per transaction (on SQLite the writer lock is never held for a
whole upload) and read a chunk per short session; memory stays at a chunk or two. A file
is ``complete`` once its last chunk is in; an incomplete one (a request that died) and
one whose retention has passed are deleted by ``sweep``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import BinaryIO

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from devicefactory.db import Base, UTCDateTime, session_scope, utcnow

CHUNK = 1024 * 1024


class StoredFile(Base):
    __tablename__ = "stored_files"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class StoredFileChunk(Base):
    __tablename__ = "stored_file_chunks"

    file_id: Mapped[str] = mapped_column(ForeignKey("stored_files.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class FileStore:
    """Files in the database of ``factory`` (each call its own short transactions)."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def save(self, stream: BinaryIO, inspect: Callable[[bytes], None] = lambda _: None) -> str:
        """Copy ``stream`` in; ``inspect`` sees each chunk first and may refuse the file by
        raising, in which case nothing of it is kept."""
        file_id = uuid.uuid4().hex
        with session_scope(self.factory) as session:
            session.add(StoredFile(id=file_id, created_at=utcnow()))
        size = 0
        try:
            for seq, chunk in enumerate(iter(lambda: stream.read(CHUNK), b"")):
                inspect(chunk)
                size += len(chunk)
                with session_scope(self.factory) as session:
                    session.add(StoredFileChunk(file_id=file_id, seq=seq, data=chunk))
            inspect(b"")  # the end: a last look
            with session_scope(self.factory) as session:
                session.execute(
                    update(StoredFile).where(StoredFile.id == file_id).values(size=size, complete=True)
                )
        except BaseException:
            with session_scope(self.factory) as session:
                delete_files(session, [file_id])
            raise
        return file_id

    def open(self, file_id: str) -> BinaryIO:
        """The file as a binary stream (``readline`` and all), read a chunk at a time."""
        return io.BufferedReader(_ChunkReader(self.factory, file_id), buffer_size=CHUNK)


class _ChunkReader(io.RawIOBase):
    def __init__(self, factory: sessionmaker[Session], file_id: str) -> None:
        self.factory, self.file_id = factory, file_id
        self.seq, self.pending = 0, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self.pending:
            with self.factory() as session:
                chunk = session.scalar(
                    select(StoredFileChunk.data).where(
                        StoredFileChunk.file_id == self.file_id, StoredFileChunk.seq == self.seq
                    )
                )
            if chunk is None:
                return 0
            self.pending, self.seq = bytes(chunk), self.seq + 1
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count


def is_stored(session: Session, file_id: str) -> bool:
    """Whether the file is (completely) stored."""
    return bool(session.scalar(select(StoredFile.complete).where(StoredFile.id == file_id)))


def delete_files(session: Session, file_ids: list[str]) -> None:
    if file_ids:
        session.execute(delete(StoredFileChunk).where(StoredFileChunk.file_id.in_(file_ids)))
        session.execute(delete(StoredFile).where(StoredFile.id.in_(file_ids)))


def unfinished_files(session: Session, *, older_than: datetime) -> list[str]:
    """Files whose upload never completed (its request died), started before ``older_than``."""
    query = select(StoredFile.id).where(StoredFile.complete.is_(False), StoredFile.created_at < older_than)
    return list(session.scalars(query))


ABANDONED_AFTER = timedelta(hours=1)

"""Progress that degrades: a ``rich`` bar on a terminal, one plain line per change otherwise
(logs and pipes get no carriage returns and no escape codes). Progress goes to stderr, so
stdout carries only results."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Protocol

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class Reporter(Protocol):
    def update(self, done: int, total: int | None, detail: str = "") -> None: ...

    def __enter__(self) -> Reporter: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None: ...


def stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def progress(label: str) -> Reporter:
    """A bar when stderr is a terminal, plain lines when it is not."""
    if stderr_is_terminal():
        console = Console(stderr=True)
        if console.is_terminal and not console.is_dumb_terminal:
            return BarReporter(label, console)
    return LineReporter(label)


class LineReporter:
    """``label: 3/10 detail``, one line each time it changes."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = ""

    def update(self, done: int, total: int | None, detail: str = "") -> None:
        count = f"{done}/{total}" if total is not None else str(done)
        text = f"{self.label}: {count}" + (f" {detail}" if detail else "")
        if text != self.last:
            click.echo(text, err=True)
            self.last = text

    def __enter__(self) -> LineReporter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None


class BarReporter:
    def __init__(self, label: str, console: Console) -> None:
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task = self.bar.add_task(label, total=None, detail="")

    def update(self, done: int, total: int | None, detail: str = "") -> None:
        self.bar.update(self.task, completed=done, total=total, detail=detail)

    def __enter__(self) -> BarReporter:
        self.bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.bar.stop()

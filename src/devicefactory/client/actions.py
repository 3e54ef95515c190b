"""Factory action commands: upload a factory log, show an action, download its files."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from devicefactory.client.api import Api
from devicefactory.client.group import State, main, pass_state, profile_options
from devicefactory.client.progress import progress, stdout_is_terminal

V1 = "/devicefactory/v1"
BINARY_FILES = ("xml",)
POLL_SECONDS = 1.0


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--type",
    "upload_type",
    type=click.Choice(["manufacture", "provision"]),
    required=True,
    help="What the file records.",
)
@click.option("--validate", is_flag=True, help="Check every line; change nothing.")
@click.option("--oem-host-version", default=None, help="For provision lines that lack it.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow progress until done.")
@profile_options
@pass_state
def upload(
    state: State, file: Path, upload_type: str, validate: bool, oem_host_version: str | None, wait: bool
) -> None:
    """Upload a factory log (or CSV) as a factory action; exits 2 when any line failed."""
    data = {"type": upload_type, "validate_only": str(validate).lower()}
    if oem_host_version:
        data["oem_host_version"] = oem_host_version
    with file.open("rb") as stream:
        response = state.api.change(f"{V1}/factory_actions", data=data, files={"file": (file.name, stream)})
    action = response.json()["factory_action"]
    click.echo(f"action {action['id']} queued")
    if wait:
        action = follow(state.api, action["id"])
        click.echo(f"{action['status']}: {_progress_text(action['progress'])}")
        if action["status"] == "failure":
            sys.exit(2)


def follow(api: Api, action_id: int) -> dict[str, Any]:
    """Poll the action until it is done, showing its progress; returns it."""
    with progress(f"action {action_id}") as reporter:
        while True:
            answer = api.call("GET", f"{V1}/factory_actions/{action_id}").json()
            action: dict[str, Any] = answer["factory_action"]
            counts = action["progress"]
            detail = ", ".join(_counts(counts)) or action["status"]
            reporter.update(
                counts["lines_done"], counts["lines_total"] or None, f"{action['status']} {detail}"
            )
            if action["status"] in ("success", "failure"):
                return action
            time.sleep(POLL_SECONDS)


def _counts(progress: dict[str, int]) -> list[str]:
    skip = ("lines_total", "lines_done")
    return [f"{count} {key.replace('_', ' ')}" for key, count in progress.items() if key not in skip]


def _progress_text(progress: dict[str, int]) -> str:
    return f"{progress['lines_done']}/{progress['lines_total']} lines, " + ", ".join(_counts(progress))


@main.command()
@click.argument("action_id", type=int)
@click.option(
    "--file",
    "kind",
    type=click.Choice(["csv", "log", "xml", "failed"]),
    default=None,
    help="Download this file of the action (xml: the encrypted bundle, binary).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the file here (default: stdout; binary files never to a terminal).",
)
@profile_options
@pass_state
def action(state: State, action_id: int, kind: str | None, output: Path | None) -> None:
    """Show a factory action (JSON), or download one of its files."""
    if kind is None:
        click.echo(json.dumps(state.api.call("GET", f"{V1}/factory_actions/{action_id}").json(), indent=2))
        return
    if kind in BINARY_FILES and output is None and stdout_is_terminal():
        raise click.UsageError(
            f"the {kind} file is binary (CMS-encrypted zip) and stdout is a terminal: "
            f"write it with -o FILE, or redirect stdout to a file"
        )
    response = state.api.call("GET", f"{V1}/factory_actions/{action_id}/files/{kind}")
    if output is not None:
        output.write_bytes(response.content)
        click.echo(f"wrote {output} ({len(response.content)} bytes)", err=True)
    elif kind in BINARY_FILES:
        sys.stdout.flush()
        sys.stdout.buffer.write(response.content)
        sys.stdout.buffer.flush()
    else:
        click.echo(response.text, nl=False)

"""Device commands: reserve, verify, factory-reset, device, search."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from rich.console import Console
from rich.table import Table
from rich.text import Text

from devicefactory.client.group import State, main, pass_state, profile_options
from devicefactory.client.progress import stdout_is_terminal

V1 = "/devicefactory/v1"
SEARCH_FIELDS = (
    "dsn",
    "mac",
    "status",
    "model",
    "manuf_model",
    "manuf_sn",
    "oem_model",
    "oem_host_version",
    "hwsig",
    "odm",
    "module_sw_version",
    "wifi_setup_key",
)
DATE_BOUNDS = tuple(
    f"{e}_{s}" for e in ("reserved", "manufactured", "provisioned") for s in ("after", "before")
)
TABLE_COLUMNS = ("dsn", "model", "status", "mac", "hwsig", "manuf_sn", "oem_model", "last_job_failed")
PAGE_MAX = 500
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@main.command()
@click.option("--model", required=True, help="The module model, e.g. AY001MTP1.")
@click.option("--count", required=True, type=int, help="How many DSNs (1 to 1000).")
@click.option("--oem", "oem_id", default=None, help="Ayla::Admin only: reserve for this OEM.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for reserve-<action>.json and the encrypted bundle reserve-<action>-dsns.zip.p7m.",
)
@profile_options
@pass_state
def reserve(state: State, model: str, count: int, oem_id: str | None, out: Path) -> None:
    """Reserve COUNT DSNs; writes the devices (JSON) and the encrypted XML bundle to --out.

    When the key pool is low (AFS-605) the message says when to retry and how many DSNs
    could be reserved now."""
    body: dict[str, Any] = {"model": model, "count": count, **({"oem_id": oem_id} if oem_id else {})}
    response = state.api.change(f"{V1}/devices/reserve", json=body)
    action_id = response.headers["X-Factory-Action"]
    devices = [item["device"] for item in response.json()]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"reserve-{action_id}.json").write_text(json.dumps(devices, indent=2) + "\n")
    bundle = state.api.send("GET", f"{V1}/factory_actions/{action_id}/files/xml")
    if bundle.status_code == 200:
        (out / f"reserve-{action_id}-dsns.zip.p7m").write_bytes(bundle.content)
    else:
        click.echo(f"no XML bundle: {state.api.explain(bundle)}", err=True)
    click.echo(f"action {action_id}: {devices[0]['dsn']} .. {devices[-1]['dsn']} ({len(devices)}) -> {out}")


# --- verify ------------------------------------------------------------------------------


def make_verify_token(public_pem: str, dsn: str, now: float) -> str:
    """What a module sends to prove it holds the DSN's key: base64 RSA-OAEP-SHA256 of "<dsn>:<unix time>"."""
    key = serialization.load_pem_public_key(public_pem.encode("ascii"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise click.ClickException("the public key is not an RSA key")
    return base64.b64encode(key.encrypt(f"{dsn}:{int(now)}".encode("ascii"), _OAEP)).decode("ascii")


@main.command()
@click.argument("dsn")
@click.option(
    "--public-key",
    type=click.File("r"),
    default=None,
    help="The device's public key (PEM) as read from the module; default: the service's record.",
)
@click.option("--print-token", is_flag=True, help="Only print the token; send nothing.")
@profile_options
@pass_state
def verify(state: State, dsn: str, public_key: Any, print_token: bool) -> None:
    """End-of-line check of DSN: builds the verify token ("<dsn>:<unix time>" encrypted with
    the device's public key, RSA-OAEP-SHA256) and sends it; the service sets ads_connect_flag.

    The station's clock must be within 5 minutes of the service's; a token is accepted once."""
    dsn = dsn.strip().upper()
    if public_key is not None:
        pem = public_key.read()
    else:
        pem = state.api.call("GET", f"{V1}/devices/{dsn}").json()["device"]["public_key"]
    try:
        token = make_verify_token(pem, dsn, time.time())
    except ValueError as error:
        raise click.ClickException(f"cannot read the public key: {error}") from None
    if print_token:
        click.echo(token)
        return
    device = state.api.change(f"{V1}/devices/{dsn}/verify", json={"token": token}).json()["device"]
    flag = device["ads_connect_flag"]
    click.echo(f"verified {device['dsn']} at {device.get('verified_at')}: ads_connect_flag {flag}")


@main.command("factory-reset")
@click.argument("dsn")
@profile_options
@pass_state
def factory_reset(state: State, dsn: str) -> None:
    """Clear a device's cloud-side state (OEM::Admin of its owner); prints each step's result."""
    answer = state.api.change(f"{V1}/devices/{dsn.strip().upper()}/factory_reset").json()
    for step in answer.get("steps", []):
        click.echo(" ".join(f"{value}" for value in step.values()))


@main.command()
@click.argument("dsn")
@click.option("--jobs", is_flag=True, help="Its job history instead.")
@profile_options
@pass_state
def device(state: State, dsn: str, jobs: bool) -> None:
    """Show one device (or its jobs) as JSON."""
    path = f"{V1}/devices/{dsn}/jobs" if jobs else f"{V1}/devices/{dsn}"
    click.echo(json.dumps(state.api.call("GET", path).json(), indent=2))


# --- search ------------------------------------------------------------------------------


def _search_options(command: Any) -> Any:
    for name in reversed(DATE_BOUNDS):
        command = click.option(
            f"--{name.replace('_', '-')}", name, metavar="DATE", help="YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ."
        )(command)
    for name in reversed(SEARCH_FIELDS):
        wildcard = " (* and ? are wildcards)" if name in ("dsn", "wifi_setup_key") else ""
        command = click.option(f"--{name.replace('_', '-')}", name, help=f"Exact {name}{wildcard}.")(command)
    return command


@main.command()
@_search_options
@click.option(
    "--ads-connect-flag", type=click.Choice(["true", "false"]), default=None, help="Verified or not."
)
@click.option(
    "--errors", type=click.Choice(["failure", "success"]), default=None, help="Latest job failed (or not)."
)
@click.option(
    "--order", type=click.Choice(["asc", "desc"]), default="asc", show_default=True, help="DSN order."
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many.")
@click.option("--all", "everything", is_flag=True, help="Every matching device (page after page).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="A table, CSV (header row) or a JSON array.",
)
@click.option(
    "--columns",
    default=None,
    metavar="A,B,...",
    help=f"Fields to show (table default: {','.join(TABLE_COLUMNS)}; CSV default: all but public_key).",
)
@profile_options
@pass_state
def search(
    state: State,
    /,
    order: str,
    limit: int,
    everything: bool,
    output_format: str,
    columns: str | None,
    **filters: str | None,
) -> None:
    """The DSN View search: every filter of the dashboard, combined."""
    params = {name: value for name, value in filters.items() if value is not None}
    devices = _search_pages(state, {**params, "order": order}, None if everything else limit)
    chosen = columns.split(",") if columns else None
    if output_format == "json":
        click.echo(json.dumps(devices, indent=2))
    elif output_format == "csv":
        fields = chosen or _csv_columns(devices)
        click.echo(_csv(devices, fields), nl=False)
    else:
        _table(devices, chosen or list(TABLE_COLUMNS))


def _search_pages(state: State, params: dict[str, str], limit: int | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while limit is None or len(found) < limit:
        page = min(PAGE_MAX, limit - len(found)) if limit is not None else PAGE_MAX
        query = {**params, "limit": str(page), **({"cursor": cursor} if cursor else {})}
        answer = state.api.call("GET", f"{V1}/devices", params=query).json()
        found += answer["devices"]
        cursor = answer.get("next_cursor")
        if not cursor or not answer["devices"]:
            break
    return found


def _csv_columns(devices: list[dict[str, Any]]) -> list[str]:
    return [k for k in devices[0] if k != "public_key"] if devices else list(TABLE_COLUMNS)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv(devices: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for device in devices:
        # A cell a spreadsheet would run as a formula gets a leading ' (as the service's own CSVs).
        cells = [_cell(device.get(c)) for c in columns]
        writer.writerow(["'" + c if c[:1] in ("=", "+", "-", "@", "\t", "\r") else c for c in cells])
    return buffer.getvalue()


def _table(devices: list[dict[str, Any]], columns: list[str]) -> None:
    rows = [[_cell(device.get(c)) for c in columns] for device in devices]
    if stdout_is_terminal():
        table = Table(*columns)
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))  # values are data, never markup
        Console().print(table)
    else:
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
        for row in [columns, *rows]:
            click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{len(devices)} device(s)", err=True)

"""``record`` (send now, or journal while the service cannot be reached), ``sync`` and ``journal``."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import click

from devicefactory.client.api import EXIT_UNREACHABLE, Api, Refused, Unreachable, afs_codes, error_text
from devicefactory.client.api import new_idempotency_key as new_key
from devicefactory.client.group import State, main, pass_state, profile_options
from devicefactory.client.journal import DROPPED, PENDING, REFUSED, Entry, Journal
from devicefactory.client.progress import Reporter, progress

V1 = "/devicefactory/v1"
RECORD_FIELDS = (
    "model",
    "mac",
    "hwsig",
    "dom_at",
    "manuf_model",
    "manuf_sn",
    "odm",
    "module_sw_version",
    "wifi_setup_key",
    "ads_connect_flag",
    "oem_model",
    "oem_host_version",
)
MANUFACTURE_REQUIRED = ("model", "mac", "hwsig", "dom_at")
# Refusals that are about the caller or the moment, not the record: stop and keep it pending.
_STOP_STATUSES = (401, 403, 408, 409, 429)
_ALREADY = ("AFS-606", "AFS-609")
KEY_REUSED = "Idempotency-Key was used for another request"


@dataclass
class SyncReport:
    sent: int = 0
    refused: list[Entry] = field(default_factory=list)
    stopped: str | None = None
    stop_code: int = 0
    answers: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


# --- record ------------------------------------------------------------------------------


@main.command()
@click.argument("dsn")
@click.argument("fields", nargs=-1, metavar="NAME=VALUE...")
@click.option("--provision", is_flag=True, help="Provision instead of manufacture.")
@profile_options
@pass_state
def record(state: State, dsn: str, fields: tuple[str, ...], provision: bool) -> None:
    """Manufacture (or --provision) one device; FIELDS are name=value pairs.

    \b
    Fields: model, mac, hwsig, dom_at ("2026/11/22 08:00:00 UTC"), manuf_model, manuf_sn,
    odm, module_sw_version, wifi_setup_key, ads_connect_flag, oem_model, oem_host_version.

    Sent at once with an Idempotency-Key. When the service cannot be reached (no answer,
    timeout, 5xx) the record is kept in the profile's journal (exit 0) for `sync`; while the
    journal holds waiting records, a new one goes in behind them and they are sent in order.
    """
    operation = "provision" if provision else "manufacture"
    body = _record_body(fields, operation)
    journal = Journal.of_profile(state.profile_name)
    dsn = dsn.strip().upper()
    if any(entry.state == PENDING for entry in journal.entries()):
        _record_behind(state, journal, dsn, operation, body)
        return
    key = new_key()
    try:
        response = state.api.send("POST", _path(dsn, operation), json=body, headers=_key_header(key))
    except Unreachable as error:
        journal.append_record(key=key, dsn=dsn, operation=operation, body=body, attempts=1)
        click.echo(f"journaled {operation} of {dsn} (the service could not be reached: {error.message})")
        click.echo(f"run `devicefactory-client sync` when it is back ({journal.path})", err=True)
        return
    if response.status_code == 409:  # AFS-409: a twin with this key is still being worked
        journal.append_record(key=key, dsn=dsn, operation=operation, body=body, attempts=1)
        click.echo(f"journaled {operation} of {dsn} ({error_text(response)})")
        return
    if response.status_code >= 400:
        raise Refused(state.api.explain(response), response)
    click.echo(json.dumps(response.json()["device"], indent=2))


def _record_behind(state: State, journal: Journal, dsn: str, operation: str, body: dict[str, Any]) -> None:
    entry = journal.append_record(key=new_key(), dsn=dsn, operation=operation, body=body)
    waiting = sum(1 for e in journal.entries() if e.state == PENDING) - 1
    click.echo(
        f"journaled {operation} of {dsn} behind {waiting} waiting record(s); sending them now", err=True
    )
    try:
        report = send_journal(state.api, journal, progress("sync"))
    except click.ClickException as error:
        click.echo(f"not sent now ({error.message}); run `devicefactory-client sync` later", err=True)
        return
    if report.refused:
        click.echo(
            f"{len(report.refused)} refused: see `devicefactory-client journal --state refused`", err=True
        )
    if entry.key in report.answers:
        click.echo(json.dumps(report.answers[entry.key].get("device"), indent=2))
    elif entry.key in report.errors:
        raise click.ClickException(report.errors[entry.key])
    else:
        click.echo(f"journaled {operation} of {dsn}: {report.stopped}")


def _record_body(fields: tuple[str, ...], operation: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for pair in fields:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not name=value", param_hint="FIELDS")
        if name not in RECORD_FIELDS:
            raise click.BadParameter(
                f"{name!r} is not one of {', '.join(RECORD_FIELDS)}", param_hint="FIELDS"
            )
        body[name] = value
    missing = [f for f in MANUFACTURE_REQUIRED if not body.get(f)] if operation == "manufacture" else []
    if missing:
        raise click.BadParameter(f"missing {', '.join(missing)}", param_hint="FIELDS")
    return body


def _path(dsn: str, operation: str) -> str:
    return f"{V1}/devices/{dsn}/{operation}"


def _key_header(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


# --- sync --------------------------------------------------------------------------------


@main.command()
@profile_options
@pass_state
def sync(state: State) -> None:
    """Send the journal's waiting records in order, each with the Idempotency-Key it was
    journaled with; safe to stop (even kill -9) and run again.

    Records the service refuses (a 4xx AFS error such as AFS-606) go to the refused list
    (see `journal`) instead of being retried. Exits 0 when all were sent, 2 when some were
    refused, 3 when the service could not be reached (the rest keep waiting)."""
    journal = Journal.of_profile(state.profile_name)
    report = send_journal(state.api, journal, progress("sync"))
    waiting = sum(1 for e in journal.entries() if e.state == PENDING)
    for entry in report.refused:
        click.echo(f"refused: {entry.operation} {entry.dsn} ({entry.key}): {entry.error}")
    click.echo(f"sync: {report.sent} sent, {len(report.refused)} refused, {waiting} waiting")
    if report.stopped:
        click.echo(f"stopped: {report.stopped}", err=True)
        sys.exit(report.stop_code)
    if report.refused:
        click.echo("the refused records stay in `devicefactory-client journal --state refused`", err=True)
        sys.exit(2)


def send_journal(api: Api, journal: Journal, reporter: Reporter) -> SyncReport:
    """Send every pending record in order (records journaled meanwhile too); one sync at a time."""
    report = SyncReport()
    with journal.sync_lock(), reporter:
        tried: set[str] = set()
        while not report.stopped:
            pending = [e for e in journal.entries() if e.state == PENDING and e.key not in tried]
            if not pending:
                break
            total = len(tried) + len(pending)
            for entry in pending:
                tried.add(entry.key)
                _send_one(api, journal, entry, report)
                reporter.update(len(tried), total, f"{report.sent} sent, {len(report.refused)} refused")
                if report.stopped:
                    break
        journal.compact()
    return report


def _send_one(api: Api, journal: Journal, entry: Entry, report: SyncReport, *, rekeyed: bool = False) -> None:
    # "sending" is durable before the request leaves: after a crash the record is known to
    # be in doubt, and it is sent again only with the same key.
    journal.mark(entry.key, "sending")
    try:
        response = api.send(
            "POST", _path(entry.dsn, entry.operation), json=entry.body, headers=_key_header(entry.send_key)
        )
    except Unreachable as error:
        report.stopped, report.stop_code = error.message, EXIT_UNREACHABLE
        return
    if response.status_code < 400:
        journal.mark(entry.key, "done", status=response.status_code)
        report.sent += 1
        report.answers[entry.key] = response.json()
    elif response.status_code in _STOP_STATUSES:
        report.stopped, report.stop_code = api.explain(response), 1
    elif entry.in_doubt and not rekeyed and KEY_REUSED in error_text(response):
        _rekey(api, journal, entry, report)
    elif entry.in_doubt and set(afs_codes(response)) & set(_ALREADY) and _device_holds(api, entry):
        journal.mark(entry.key, "done", status=response.status_code, note="applied by an earlier attempt")
        report.sent += 1
        report.answers[entry.key] = {"device": None}
    else:
        entry.state, entry.status, entry.error = REFUSED, response.status_code, error_text(response)
        journal.mark(entry.key, REFUSED, status=response.status_code, error=entry.error)
        report.refused.append(entry)
        report.errors[entry.key] = api.explain(response)


def _rekey(api: Api, journal: Journal, entry: Entry, report: SyncReport) -> None:
    """The service took the key for another request: the earlier send was cut off mid-body
    (the process died), so what it fingerprinted was not this record. If the device does not
    already hold the record, send it again under a new key, durably noted first."""
    if _device_holds(api, entry):
        journal.mark(entry.key, "done", status=200, note="applied by an earlier attempt")
        report.sent += 1
        report.answers[entry.key] = {"device": None}
        return
    entry.send_key = new_key()
    journal.mark(entry.key, "rekey", new_key=entry.send_key)
    _send_one(api, journal, entry, report, rekeyed=True)


def _device_holds(api: Api, entry: Entry) -> bool:
    """Whether the device already holds every value of the record (an earlier send applied it)."""
    response = api.send("GET", f"{V1}/devices/{entry.dsn}")
    if response.status_code != 200:
        return False
    device = response.json()["device"]
    return all(_same(name, value, device.get(name)) for name, value in entry.body.items())


def _same(name: str, sent: Any, held: Any) -> bool:
    if name == "mac":
        return bool(re.sub(r"[:-]", "", str(sent)).lower() == held)
    if name == "dom_at":
        try:
            moment = datetime.strptime(str(sent).replace("GMT", "UTC"), "%Y/%m/%d %H:%M:%S UTC")
        except ValueError:
            return False
        return bool(moment.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") == held)
    if name == "ads_connect_flag":
        return (
            str(sent).strip().lower() in ("1", "true")
            if held
            else str(sent).strip().lower() in ("0", "false")
        )
    return bool(sent == held)


# --- journal -----------------------------------------------------------------------------


@main.command("journal")
@click.option(
    "--state",
    "wanted",
    type=click.Choice(["pending", "refused", "all"]),
    default="all",
    show_default=True,
    help="Which records to list.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per record.")
@click.option("--drop-refused", is_flag=True, help="Give up on every refused record.")
@click.option(
    "--retry-refused", is_flag=True, help="Queue every refused record again, under a new Idempotency-Key."
)
@profile_options
@pass_state
def journal_command(
    state: State, wanted: str, as_json: bool, drop_refused: bool, retry_refused: bool
) -> None:
    """List the profile's journal: records waiting to be sent and records the service refused."""
    journal = Journal.of_profile(state.profile_name)
    entries = [e for e in journal.entries() if e.state in (PENDING, REFUSED)]
    if drop_refused or retry_refused:
        with journal.sync_lock():
            for entry in (e for e in entries if e.state == REFUSED):
                if retry_refused:
                    journal.append_record(
                        key=new_key(), dsn=entry.dsn, operation=entry.operation, body=entry.body
                    )
                journal.mark(entry.key, DROPPED)
            journal.compact()
        click.echo(f"{'queued again' if retry_refused else 'dropped'}: the refused records")
        return
    for entry in entries:
        if wanted not in ("all", entry.state):
            continue
        if as_json:
            click.echo(
                json.dumps(
                    {
                        k: getattr(entry, k)
                        for k in ("key", "dsn", "operation", "body", "at", "state", "attempts", "error")
                    }
                )
            )
        else:
            click.echo(
                f"{entry.state:<8} {entry.at} {entry.operation:<11} {entry.dsn} {entry.error or ''}".rstrip()
            )

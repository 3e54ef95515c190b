"""``devicefactory-client``: the factory-floor command line, for this service or Ayla's regions."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

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
TOKEN_FILE = Path(os.environ.get("DEVICEFACTORY_TOKEN_FILE", Path.home() / ".config/devicefactory/token"))
V1 = "/devicefactory/v1"


def base_url_for(environment: str) -> str:
    """A regional name, or any http(s) base URL of a self-hosted service."""
    if environment in ENVIRONMENTS:
        return ENVIRONMENTS[environment]
    if environment.startswith(("http://", "https://")):
        return environment.rstrip("/")
    names = ", ".join(ENVIRONMENTS)
    raise click.BadParameter(f"{environment!r} is neither one of {names} nor an http(s) URL")


class Api:
    """The service over HTTP; an AFS error exits 1 with its code and message."""

    def __init__(self, base_url: str, token: str | None, *, cert: tuple[str, str] | None = None) -> None:
        headers = {"Authorization": f"auth_token {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=120, cert=cert)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise click.ClickException(f"cannot reach {self.http.base_url}: {error}") from None
        if response.status_code >= 400:
            raise click.ClickException(_error_text(response))
        return response


def _error_text(response: httpx.Response) -> str:
    try:
        errors = response.json()["error"]
        return "; ".join(f"{e['code']}: {e['message']}" for e in errors)
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


@click.group()
@click.option(
    "--env",
    "environment",
    envvar="DEVICEFACTORY_ENV",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help=f"A region ({', '.join(ENVIRONMENTS)}) or a base URL.",
)
@click.option("--token", envvar="DEVICEFACTORY_TOKEN", help="Access token (default: the one sign-in stored).")
@click.option(
    "--client-cert",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CERT KEY for services that require client certificates.",
)
@click.pass_context
def main(
    ctx: click.Context, environment: str, token: str | None, client_cert: tuple[str, str] | None
) -> None:
    """Reserve DSNs, record factory data and upload factory logs from the line."""
    stored = TOKEN_FILE.read_text().strip() if TOKEN_FILE.exists() else None
    api = Api(base_url_for(environment), token or stored, cert=client_cert)
    ctx.call_on_close(api.http.close)
    ctx.obj = api


@main.command()
def environments() -> None:
    """The regional environments known by name."""
    for name, url in ENVIRONMENTS.items():
        click.echo(f"{name:<10} {url}")


@main.command("sign-in")
@click.option("--email", required=True)
@click.password_option(confirmation_prompt=False)
@click.pass_obj
def sign_in(api: Api, email: str, password: str) -> None:
    """Sign in and keep the access token (mode 0600) for the next commands."""
    body = {"user": {"email": email, "password": password}}
    tokens = api.call("POST", "/users/sign_in.json", json=body).json()
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as token_file:
        token_file.write(tokens["access_token"] + "\n")
    click.echo(f"signed in as {email} ({tokens['role']}); token valid {tokens['expires_in']} s")


@main.command()
@click.option("--model", required=True)
@click.option("--count", required=True, type=int)
@click.option("--oem", "oem_id", default=None, help="Ayla::Admin only: reserve for this OEM.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
@click.pass_obj
def reserve(api: Api, model: str, count: int, oem_id: str | None, out: Path) -> None:
    """Reserve COUNT DSNs; writes the devices (JSON) and the encrypted XML bundle to --out."""
    body: dict[str, Any] = {"model": model, "count": count, **({"oem_id": oem_id} if oem_id else {})}
    response = api.call("POST", f"{V1}/devices/reserve", json=body)
    action_id = response.headers["X-Factory-Action"]
    devices = [item["device"] for item in response.json()]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"reserve-{action_id}.json").write_text(json.dumps(devices, indent=2) + "\n")
    bundle = api.http.get(f"{V1}/factory_actions/{action_id}/files/xml")
    if bundle.status_code == 200:
        (out / f"reserve-{action_id}-dsns.zip.p7m").write_bytes(bundle.content)
    click.echo(f"action {action_id}: {devices[0]['dsn']} .. {devices[-1]['dsn']} ({len(devices)}) -> {out}")


@main.command()
@click.argument("dsn")
@click.argument("fields", nargs=-1)
@click.option("--provision", is_flag=True, help="Provision instead of manufacture.")
@click.pass_obj
def record(api: Api, dsn: str, fields: tuple[str, ...], provision: bool) -> None:
    """Manufacture (or --provision) one device: FIELDS are name=value pairs."""
    body = dict(_pair(field) for field in fields)
    operation = "provision" if provision else "manufacture"
    device = api.call("POST", f"{V1}/devices/{dsn}/{operation}", json=body).json()["device"]
    click.echo(json.dumps(device, indent=2))


def _pair(field: str) -> tuple[str, str]:
    name, sep, value = field.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{field!r} is not name=value")
    return name, value


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "upload_type", type=click.Choice(["manufacture", "provision"]), required=True)
@click.option("--validate", is_flag=True, help="Check every line; change nothing.")
@click.option("--oem-host-version", default=None)
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow progress until done.")
@click.pass_obj
def upload(
    api: Api, file: Path, upload_type: str, validate: bool, oem_host_version: str | None, wait: bool
) -> None:
    """Upload a factory log (or CSV); exits 2 when any line failed."""
    data = {"type": upload_type, "validate_only": str(validate).lower()}
    if oem_host_version:
        data["oem_host_version"] = oem_host_version
    with file.open("rb") as stream:
        response = api.call("POST", f"{V1}/factory_actions", data=data, files={"file": (file.name, stream)})
    action = response.json()["factory_action"]
    click.echo(f"action {action['id']} queued")
    if wait:
        action = _follow(api, action["id"])
        if action["status"] == "failure":
            sys.exit(2)


def _follow(api: Api, action_id: int) -> dict[str, Any]:
    while True:
        action: dict[str, Any] = api.call("GET", f"{V1}/factory_actions/{action_id}").json()["factory_action"]
        progress = action["progress"]
        click.echo(
            f"\r{action['status']}: {progress['lines_done']}/{progress['lines_total']} lines, "
            + ", ".join(
                f"{count} {key.replace('_', ' ')}"
                for key, count in progress.items()
                if key not in ("lines_total", "lines_done")
            ),
            nl=action["status"] in ("success", "failure"),
        )
        if action["status"] in ("success", "failure"):
            return action
        time.sleep(1)


@main.command()
@click.argument("action_id", type=int)
@click.option("--file", "kind", type=click.Choice(["csv", "log", "xml", "failed"]), default=None)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_obj
def action(api: Api, action_id: int, kind: str | None, output: Path | None) -> None:
    """Show a factory action, or download one of its files."""
    if kind is None:
        click.echo(json.dumps(api.call("GET", f"{V1}/factory_actions/{action_id}").json(), indent=2))
        return
    response = api.call("GET", f"{V1}/factory_actions/{action_id}/files/{kind}")
    if output is not None:
        output.write_bytes(response.content)
        click.echo(f"wrote {output}")
    elif kind == "xml":
        sys.stdout.buffer.write(response.content)  # binary: redirect it to a file
    else:
        click.echo(response.text, nl=False)


@main.command()
@click.argument("dsn")
@click.option("--jobs", is_flag=True, help="Its job history instead.")
@click.pass_obj
def device(api: Api, dsn: str, jobs: bool) -> None:
    """Show one device (or its jobs)."""
    path = f"{V1}/devices/{dsn}/jobs" if jobs else f"{V1}/devices/{dsn}"
    click.echo(json.dumps(api.call("GET", path).json(), indent=2))

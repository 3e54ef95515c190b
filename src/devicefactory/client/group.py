"""The command group, its global options, and the profile commands (sign-in, sign-out, ...)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from devicefactory.client.api import PROG, Api, Unreachable, store_tokens, tls_context
from devicefactory.client.profiles import (
    DEFAULT_BASE_URL,
    DEFAULT_PROFILE,
    ENVIRONMENTS,
    Profile,
    base_url_for,
    list_profiles,
)

F = TypeVar("F", bound=Callable[..., Any])

ENVIRONMENT_HELP = f"""
\b
Environment variables (each the same as its option):
  DEVICEFACTORY_PROFILE     --profile
  DEVICEFACTORY_ENV         --env
  DEVICEFACTORY_TOKEN       --token
  DEVICEFACTORY_TOKEN_FILE  --token-file
  DEVICEFACTORY_CA_CERT     --ca-cert
  XDG_CONFIG_HOME           profiles and journals live in $XDG_CONFIG_HOME/devicefactory
                            (default ~/.config/devicefactory)

\b
Exit codes: 0 done; 1 refused by the service or another error; 2 bad usage, an
upload with failed lines, or a sync that left refused records; 3 the service could
not be reached (no answer, timeout, 5xx).

\b
Regions: {", ".join(ENVIRONMENTS)}, or any http(s) base URL (default {DEFAULT_BASE_URL}).
"""


@dataclass
class State:
    """The global options, then what the subcommand adds; the Api is made on first use."""

    profile_name: str = DEFAULT_PROFILE
    environment: str | None = None
    token: str | None = None
    token_file: Path | None = None
    client_cert: tuple[str, str] | None = None
    ca_cert: str | None = None
    timeout: float = 60
    _profile: Profile | None = None
    _api: Api | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def profile(self) -> Profile:
        if self._profile is None or self._profile.name != self.profile_name:
            self._profile = Profile.load(self.profile_name)
        return self._profile

    def base_url(self) -> str:
        """``--env``, else the profile's environment, else the local default."""
        return base_url_for(self.environment or self.profile.environment or DEFAULT_BASE_URL)

    @property
    def api(self) -> Api:
        if self._api is None:
            stored = self.profile.client_cert
            cert = self.client_cert or (tuple(stored) if stored and len(stored) == 2 else None)
            self._api = Api(
                self.base_url(),
                self.profile,
                token=self.token,
                token_file=self.token_file,
                verify=tls_context(cert, self.ca_cert),  # type: ignore[arg-type]
                timeout=self.timeout,
            )
            self.closers.append(self._api.close)
        return self._api


def _set_state(attribute: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is not None:
            setattr(ctx.ensure_object(State), attribute, value)
        return value

    return store


def profile_options(command: F) -> F:
    """``--profile`` and ``--env`` after the command name too (``sign-in --env eu-field``)."""
    command = click.option(
        "--env",
        "environment",
        expose_value=False,
        callback=_set_state("environment"),
        metavar="NAME|URL",
        help="As the global --env.",
    )(command)
    return click.option(
        "--profile",
        expose_value=False,
        callback=_set_state("profile_name"),
        metavar="NAME",
        help="As the global --profile.",
    )(command)


@click.group(epilog=ENVIRONMENT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--profile",
    "profile_name",
    envvar="DEVICEFACTORY_PROFILE",
    default=DEFAULT_PROFILE,
    show_default=True,
    metavar="NAME",
    help="Which stored profile (environment, user, tokens, journal) to use.",
)
@click.option(
    "--env",
    "environment",
    envvar="DEVICEFACTORY_ENV",
    default=None,
    metavar="NAME|URL",
    help="A region name or a base URL; default: the profile's (remembered at sign-in).",
)
@click.option(
    "--token",
    envvar="DEVICEFACTORY_TOKEN",
    default=None,
    help="Use this access token instead of the profile's (never refreshed).",
)
@click.option(
    "--token-file",
    envvar="DEVICEFACTORY_TOKEN_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also keep the access token in this file (mode 0600) and read it from there.",
)
@click.option(
    "--client-cert",
    nargs=2,
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="CERT KEY",
    help="Client certificate and key, for services that require them (kept by sign-in).",
)
@click.option(
    "--ca-cert",
    envvar="DEVICEFACTORY_CA_CERT",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Trust this CA (PEM) for the service's HTTPS certificate.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    help="Seconds to wait for an answer (connecting: at most 10).",
)
@click.version_option(package_name="devicefactory", prog_name=PROG)
@click.pass_context
def main(
    ctx: click.Context,
    profile_name: str,
    environment: str | None,
    token: str | None,
    token_file: Path | None,
    client_cert: tuple[str, str] | None,
    ca_cert: str | None,
    timeout: float,
) -> None:
    """Reserve DSNs, record factory data, verify modules and upload factory logs from the line.

    Sign in once per profile (sign-in --env REGION --email E); later commands use the
    profile's environment and tokens, refreshing them when they run out. record keeps
    records in a local journal while the service cannot be reached; sync sends them.
    """
    state = ctx.ensure_object(State)
    state.profile_name = profile_name
    state.environment = environment
    state.token, state.token_file, state.timeout = token, token_file, timeout
    state.client_cert = tuple(client_cert) if client_cert else None  # type: ignore[assignment]
    state.ca_cert = ca_cert
    ctx.call_on_close(lambda: [close() for close in state.closers])


pass_state = click.make_pass_decorator(State, ensure=True)


@main.command()
def environments() -> None:
    """The regional environments known by name."""
    for name, url in ENVIRONMENTS.items():
        click.echo(f"{name:<10} {url}")


@main.command("sign-in")
@click.option("--email", required=True, help="The user to sign in as.")
@click.option(
    "--password", default=None, help="The password (visible to other users of the host: prefer stdin)."
)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@profile_options
@pass_state
def sign_in(state: State, email: str, password: str | None, password_stdin: bool) -> None:
    """Sign in; the profile keeps the environment, the email and the tokens (mode 0600).

    Without --password or --password-stdin the password is asked on the terminal."""
    password = _password(password, password_stdin)
    profile = state.profile
    profile.environment = state.environment or profile.environment or DEFAULT_BASE_URL
    base_url_for(profile.environment)  # a bad name fails before anything is stored
    if state.client_cert:
        profile.client_cert = [str(Path(p).resolve()) for p in state.client_cert]
    body = {"user": {"email": email, "password": password}}
    tokens = state.api.call("POST", "/users/sign_in.json", json=body, auth=False).json()
    profile.email = email
    store_tokens(profile, tokens, state.token_file)
    click.echo(
        f"signed in as {email} ({tokens['role']}) on {profile.environment}, profile {profile.name}; "
        f"token valid {tokens['expires_in']} s"
    )


def _password(given: str | None, from_stdin: bool) -> str:
    if from_stdin:
        if given is not None:
            raise click.UsageError("give --password or --password-stdin, not both")
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise click.UsageError("--password-stdin: stdin held no password")
        return line
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to ask the password on: pipe it in with --password-stdin")
    answer: str = click.prompt("Password", hide_input=True)
    return answer


@main.command("sign-out")
@profile_options
@pass_state
def sign_out(state: State) -> None:
    """Revoke the profile's access token on the service and forget its tokens."""
    profile = state.profile
    if not profile.access_token:
        click.echo(f"profile {profile.name} is not signed in")
        return
    body = {"user": {"access_token": profile.access_token}}
    note = ""
    try:
        response = state.api.send("POST", "/users/sign_out.json", json=body, auth=False)
        if response.status_code >= 400:
            note = " (the service no longer knew the token)"
    except Unreachable as error:
        note = f" (only here: {error.message})"
    with profile.locked():
        profile.forget_tokens()
        profile.save()
    if state.token_file is not None:
        state.token_file.unlink(missing_ok=True)
    click.echo(f"signed out of profile {profile.name}{note}")


@main.command()
def profiles() -> None:
    """The stored profiles: name, environment, user, and whether signed in."""
    for profile in list_profiles():
        signed = "signed in" if profile.access_token else "signed out"
        click.echo(f"{profile.name:<16} {profile.environment or '-':<40} {profile.email or '-'} ({signed})")

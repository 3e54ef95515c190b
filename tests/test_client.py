"""``devicefactory-client`` against a real server: profiles, sign-in and refresh, reserve, record,
upload, search, verify, files, hints, and what it shows on a terminal and off one."""

from __future__ import annotations

import csv
import io
import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import httpx
import pytest

from devicefactory import client
from tests.live import LiveServer
from tests.test_client_support import (
    Floor,
    isolate_home,
    manufacture_fields,
    on_terminal,
    spawn,
    spawn_binary,
)
from tests.world import PASSWORD, World


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate_home(monkeypatch, tmp_path)


@pytest.fixture
def server(world: World, database_url: str, master_key_file: Path, tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(database_url, master_key_file, tmp_path, background_workers=True)
    live.start()
    yield live
    live.stop()


def test_regional_names_and_urls() -> None:
    assert client.base_url_for("eu-field") == "https://api-field-eu.aylanetworks.com"
    assert client.base_url_for("https://factory.example.com/") == "https://factory.example.com"
    assert len(client.ENVIRONMENTS) == 6
    with pytest.raises(click.BadParameter, match="neither one of"):
        client.base_url_for("moon-field")


def test_every_command_and_option_is_documented_in_help(config: Path) -> None:
    floor = Floor("http://127.0.0.1:9")
    top = floor.out("--help")
    for variable in (
        "DEVICEFACTORY_PROFILE",
        "DEVICEFACTORY_ENV",
        "DEVICEFACTORY_TOKEN_FILE",
        "XDG_CONFIG_HOME",
    ):
        assert variable in top
    assert "Exit codes" in top
    for name, command in client.main.commands.items():
        assert command.help, name
        shown = floor.out(name, "--help")
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts}"
                assert param.opts[0] in shown
    for param in client.main.params:
        assert not isinstance(param, click.Option) or param.help, param.opts


def test_a_shift_on_the_line(
    world: World, pool: Callable[[int], None], server: LiveServer, config: Path, tmp_path: Path
) -> None:
    pool(3)
    floor = Floor(server.url)
    # --env after the command name; the profile remembers it for every later command.
    assert "signed in as mm@example.com" in floor.sign_in("mm@example.com", PASSWORD)
    profile_file = config / "profiles" / "default.json"
    assert stat.S_IMODE(profile_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(profile_file.parent.stat().st_mode) == 0o700
    stored = json.loads(profile_file.read_text())
    assert stored["environment"] == server.url
    assert stored["email"] == "mm@example.com"
    assert stored["access_token"]
    assert stored["refresh_token"]

    out = tmp_path / "out"
    assert "(3)" in floor.out("reserve", "--model", "AY001MTP1", "--count", "3", "--out", str(out))
    devices = json.loads(next(out.glob("reserve-*.json")).read_text())
    dsns = [d["dsn"] for d in devices]
    assert next(out.glob("reserve-*-dsns.zip.p7m")).stat().st_size > 1000
    made = floor.out("record", dsns[0], *manufacture_fields(1))
    assert json.loads(made)["mac"] == f"{0x1DEE6EA20001:012x}"

    log = tmp_path / "line.log"
    log.write_text(
        "".join(
            f"2,1,2026/11/22 08:00:00 UTC,label,0,AY001MTP1,{dsn},aabbccddee0{n},m,s,s{n},\n"
            for n, dsn in enumerate(dsns[1:], start=2)
        )
        + "2,1,2026/11/22 08:00:00 UTC,label,0,AY001MTP1,AC000W999999999,aabbccddee09,m,s,s9,\n"
    )
    result = floor.run("upload", str(log), "--type", "manufacture", code=2)  # one line fails
    assert "failure: 3/3 lines, 2 applied" in result.stdout
    assert "\r" not in result.output  # no terminal: one plain line per update
    assert any(line.startswith("action ") and "3" in line for line in result.stderr.splitlines())
    action_id = result.stdout.split()[1]
    failed = floor.out("action", action_id, "--file", "failed")
    assert failed.strip().endswith("AC000W999999999,aabbccddee09,m,s,s9,")
    jobs = json.loads(floor.out("device", dsns[1], "--jobs"))["jobs"]
    assert [job["operation"] for job in jobs] == ["reserve", "manufacture"]
    refused = floor.run("device", "AC000W999999999", code=1)
    assert "AFS-404" in refused.output

    # Search: a table, CSV, JSON; filters and wildcards reach the service.
    table = floor.run("search", "--status", "manufactured").stdout.splitlines()
    assert table[0].split()[:3] == ["dsn", "model", "status"]
    assert sorted(line.split()[0] for line in table[1:]) == dsns
    rows = list(
        csv.DictReader(io.StringIO(floor.run("search", "--format", "csv", "--mac", "aabbccddee02").stdout))
    )
    assert [row["dsn"] for row in rows] == [dsns[1]]
    assert "public_key" not in rows[0]
    assert rows[0]["hwsig"] == "s2"
    found = json.loads(
        floor.run("search", "--format", "json", "--dsn", dsns[0][:-1] + "?", "--limit", "2").stdout
    )
    assert [d["dsn"] for d in found] == dsns[:2]

    code, shown = on_terminal("search", "--status", "manufactured")
    assert code == 0
    assert "┃" in shown  # a rich table on a terminal
    assert all(dsn in shown for dsn in dsns)

    # Verify: the token made from the device's public key and DSN is accepted.
    assert "ads_connect_flag True" in floor.out("verify", dsns[0])
    key_file = tmp_path / "module.pem"
    key_file.write_text(devices[1]["public_key"])
    assert "ads_connect_flag True" in floor.out("verify", dsns[1].lower(), "--public-key", str(key_file))
    assert json.loads(floor.out("device", dsns[1]))["device"]["verified_at"]
    wrong = floor.run("verify", dsns[2], "--public-key", str(key_file), code=1)  # another device's key
    assert "AFS-600" in wrong.output

    # Binary never to a terminal; to a file or a pipe it is written whole.
    reserve_action = next(out.glob("reserve-*.json")).name.split("-")[1].split(".")[0]
    code, shown = on_terminal("action", reserve_action, "--file", "xml")
    assert code == 2
    assert "binary" in shown
    assert "-o FILE" in shown
    bundle = tmp_path / "bundle.p7m"
    floor.out("action", reserve_action, "--file", "xml", "-o", str(bundle))
    piped = spawn_binary("action", reserve_action, "--file", "xml")
    assert piped.returncode == 0
    # Each download is encrypted afresh (CMS): the same size and form, not the same bytes.
    assert (
        len(bundle.read_bytes())
        == len(piped.stdout)
        == next(out.glob("reserve-*-dsns.zip.p7m")).stat().st_size
    )
    assert piped.stdout.startswith(b"0\x82")  # DER

    # Progress on a terminal is a rich bar.
    code, shown = on_terminal("upload", str(log), "--type", "manufacture", "--validate")
    assert code == 2
    assert "━" in shown


def test_an_expired_or_revoked_access_token_is_refreshed_once(
    world: World, server: LiveServer, config: Path
) -> None:
    floor = Floor(server.url)
    floor.sign_in("mm@example.com", PASSWORD)
    profile_file = config / "profiles" / "default.json"
    first = json.loads(profile_file.read_text())

    # A token the service no longer takes (401): refreshed, then the call is made again.
    profile_file.write_text(json.dumps({**first, "access_token": "revoked"}))
    assert "AFS-404" in floor.run("device", "AC000W000000042", code=1).output
    second = json.loads(profile_file.read_text())
    assert second["access_token"] not in (first["access_token"], "revoked")
    assert second["refresh_token"] != first["refresh_token"]
    stale = httpx.post(
        f"{server.url}/users/refresh_token.json", json={"user": {"refresh_token": first["refresh_token"]}}
    )
    assert stale.status_code == 401  # the service rotated it

    # An access token past its expiry is refreshed before it is sent.
    profile_file.write_text(json.dumps({**second, "expires_at": 1}))
    floor.run("device", "AC000W000000042", code=1)
    third = json.loads(profile_file.read_text())
    assert third["access_token"] != second["access_token"]
    assert third["expires_at"] > 1

    # With a dead refresh token too: the exact command to sign in again.
    profile_file.write_text(json.dumps({**third, "access_token": "x", "refresh_token": "y"}))
    result = floor.run("device", "AC000W000000042", code=1)
    assert "AFS-401" in result.output
    assert (
        f"sign in again: devicefactory-client sign-in --env {server.url} --email mm@example.com"
        in result.output
    )
    assert json.loads(profile_file.read_text())["access_token"] is None


def test_hints_for_a_role_that_may_not_and_for_a_low_key_pool(
    world: World, server: LiveServer, config: Path, tmp_path: Path
) -> None:
    floor = Floor(server.url)
    floor.sign_in("mom@example.com", PASSWORD, profile="products")
    refused = floor.run("--profile", "products", "reserve", "--model", "AY001MTP1", "--count", "1", code=1)
    assert "AFS-403" in refused.output
    assert (
        "your role may not do this: signed in as mom@example.com (OEM::ModuleOEMManufacturer)"
        in refused.output
    )

    floor.sign_in("mm@example.com", PASSWORD)  # the pool is empty
    low = floor.run("reserve", "--model", "AY001MTP1", "--count", "5", "--out", str(tmp_path), code=1)
    assert "AFS-605" in low.output
    assert "retry after" in low.output
    assert "0 DSNs could be reserved now (X-Reservable-Now)" in low.output


def test_profiles_are_kept_apart_and_sign_out_forgets_the_tokens(
    world: World, server: LiveServer, config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    floor = Floor(server.url)
    token_file = tmp_path / "legacy-token"
    monkeypatch.setenv("DEVICEFACTORY_TOKEN_FILE", str(token_file))
    floor.sign_in("mm@example.com", PASSWORD, profile="modules")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    modules_token = token_file.read_text().strip()
    monkeypatch.delenv("DEVICEFACTORY_TOKEN_FILE")
    floor.sign_in("som@example.com", PASSWORD, profile="gateways")

    listed = floor.out("profiles")
    assert "modules" in listed
    assert "mm@example.com" in listed
    assert "som@example.com" in listed
    monkeypatch.setenv("DEVICEFACTORY_PROFILE", "gateways")
    who = floor.run("reserve", "--model", "AY001MTP1", "--count", "1", "--out", str(tmp_path), code=1)
    assert "AFS-601" in who.output  # som's token: mm's would have met the empty pool (AFS-605)

    monkeypatch.setenv("DEVICEFACTORY_PROFILE", "modules")
    assert "signed out of profile modules" in floor.out("sign-out")
    assert json.loads((config / "profiles" / "modules.json").read_text())["access_token"] is None
    gone = httpx.get(
        f"{server.url}/devicefactory/v1/devices/AC000W000000001",
        headers={"Authorization": f"auth_token {modules_token}"},
    )
    assert gone.status_code == 401  # revoked on the service, not only forgotten here
    again = floor.run("device", "AC000W000000001", code=1)
    assert "sign in again: devicefactory-client --profile modules sign-in" in again.output
    assert json.loads((config / "profiles" / "gateways.json").read_text())["access_token"]


def test_password_from_stdin_without_a_warning(world: World, server: LiveServer, config: Path) -> None:
    signed = spawn(
        "sign-in", "--env", server.url, "--email", "mm@example.com", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert signed.returncode == 0, signed.stderr
    assert "signed in as mm@example.com" in signed.stdout
    assert "Warning" not in signed.stderr
    asked = spawn("sign-in", "--env", server.url, "--email", "mm@example.com", stdin=PASSWORD + "\n")
    assert asked.returncode == 2
    assert "--password-stdin" in asked.stderr
    assert "GetPassWarning" not in asked.stderr

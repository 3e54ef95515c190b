"""Account recovery: lockout minutes, unlock, deactivation, passwords set and changed (§3, §5, §11).

Through the admin API, the CLI (click's CliRunner, in this process) and the dashboard.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from click.testing import CliRunner, Result
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from tests.api import assert_error
from tests.conftest import FrozenClock
from tests.dashboard.conftest import Dash, csrf_of, sign_in_form
from tests.world import PASSWORD, World, sign_in

from devicefactory import db as cli_module
from devicefactory.accounts.secrets import verify_password
from devicefactory.cli import main
from devicefactory.tables.accounts import User

ADMIN = "/devicefactory/v1/admin"
NEW_PASSWORD = "a brand new passphrase"
INVALID = "Invalid email or password"
NON_ADMINS = ["mm", "mm2", "mom", "som"]
OPERATIONS = ["unlock", "deactivate", "reactivate", "password"]


# --- helpers ------------------------------------------------------------------------------


def attempt(client: TestClient, email: str, password: str) -> httpx2.Response:
    return client.post("/users/sign_in.json", json={"user": {"email": email, "password": password}})


def fail_five_times(client: TestClient, email: str) -> None:
    for _ in range(5):
        assert_error(attempt(client, email, "not the password"), 401, "AFS-401", INVALID)


def works(client: TestClient, token: str) -> bool:
    """Whether an access token still authenticates."""
    response = client.get(f"{ADMIN}/models", headers={"Authorization": f"auth_token {token}"})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def user_ids(world: World) -> dict[str, int]:
    """World user name -> id (as Ayla::Admin lists them)."""
    listed = world.client.get(f"{ADMIN}/users", headers=world.headers("ayla")).json()["users"]
    by_email = {user["email"]: user["id"] for user in listed}
    return {name: by_email[email] for name, email in world.emails.items()}


def listed(world: World, admin: str, name: str) -> dict[str, Any]:
    users = world.client.get(f"{ADMIN}/users", headers=world.headers(admin)).json()["users"]
    (found,) = [user for user in users if user["email"] == world.emails[name]]
    return dict(found)


def operate(
    world: World, admin: str, user_id: int | str, operation: str, body: Any = None
) -> httpx2.Response:
    if operation == "password" and body is None:
        body = {"user": {"password": NEW_PASSWORD}}
    return world.client.post(f"{ADMIN}/users/{user_id}/{operation}", json=body, headers=world.headers(admin))


# --- lockout ------------------------------------------------------------------------------


def test_lockout_minutes_are_the_same_for_known_and_unknown_emails(world: World, clock: FrozenClock) -> None:
    client = world.client
    known, unknown = world.emails["mm"], "nobody-here@example.com"
    fail_five_times(client, known)
    fail_five_times(client, unknown)
    answers = [attempt(client, email, PASSWORD) for email in (known, unknown)]
    messages = [assert_error(answer, 401, "AFS-401") for answer in answers]
    assert messages[0] == messages[1]
    assert messages[0].endswith("signing in with this email is locked for 30 more minutes")
    assert answers[0].headers.keys() - {"x-request-id", "date"} == answers[1].headers.keys() - {
        "x-request-id",
        "date",
    }
    clock.advance(minutes=10, seconds=30)
    later = [
        assert_error(attempt(client, email, "whatever it is"), 401, "AFS-401") for email in (known, unknown)
    ]
    assert later[0] == later[1]
    assert later[0].endswith("locked for 20 more minutes")
    clock.advance(minutes=19)
    last = [assert_error(attempt(client, email, PASSWORD), 401, "AFS-401") for email in (known, unknown)]
    assert last[0] == last[1]
    assert last[0].endswith("locked for 1 more minute")


def test_unlock_lets_the_user_sign_in_at_once(world: World) -> None:
    ids = user_ids(world)
    fail_five_times(world.client, world.emails["mm"])
    assert listed(world, "mm_admin", "mm")["locked"] is True
    assert listed(world, "mm_admin", "mm_admin")["locked"] is False
    unlocked = operate(world, "mm_admin", ids["mm"], "unlock")
    assert unlocked.status_code == 200, unlocked.text
    assert unlocked.json()["user"]["locked"] is False
    assert unlocked.json()["user"]["email"] == world.emails["mm"]
    assert sign_in(world.client, world.emails["mm"])["access_token"]
    assert listed(world, "ayla", "mm")["locked"] is False


# --- deactivation -------------------------------------------------------------------------


def test_deactivation_ends_existing_tokens_and_sign_in(world: World) -> None:
    ids = user_ids(world)
    first = sign_in(world.client, world.emails["mm"])
    assert works(world.client, first["access_token"])
    response = operate(world, "mm_admin", ids["mm"], "deactivate")
    assert response.status_code == 200, response.text
    assert response.json()["user"]["deactivated"] is True
    assert listed(world, "mm_admin", "mm")["deactivated"] is True
    assert not works(world.client, first["access_token"])
    refresh = world.client.post(
        "/users/refresh_token.json", json={"user": {"refresh_token": first["refresh_token"]}}
    )
    assert_error(refresh, 401, "AFS-401")
    # The right password is answered as a wrong one.
    right = attempt(world.client, world.emails["mm"], PASSWORD)
    wrong = attempt(world.client, world.emails["mm"], "not the password")
    assert right.json() == wrong.json()
    assert_error(right, 401, "AFS-401", INVALID)

    again = operate(world, "mm_admin", ids["mm"], "reactivate")
    assert again.status_code == 200, again.text
    assert again.json()["user"]["deactivated"] is False
    second = sign_in(world.client, world.emails["mm"])
    assert works(world.client, second["access_token"])
    assert not works(world.client, first["access_token"])  # old tokens stay revoked


def test_an_admin_may_not_deactivate_itself(world: World) -> None:
    ids = user_ids(world)
    response = operate(world, "ayla", ids["ayla"], "deactivate")
    assert_error(response, 403, "AFS-403", "Forbidden: you may not deactivate your own account")
    assert works(world.client, world.token("ayla"))


# --- passwords ----------------------------------------------------------------------------


def test_set_password_revokes_the_users_tokens(world: World) -> None:
    ids = user_ids(world)
    tokens = [sign_in(world.client, world.emails["mm"])["access_token"] for _ in range(2)]
    response = operate(world, "mm_admin", ids["mm"], "password")
    assert response.status_code == 200, response.text
    assert not any(works(world.client, token) for token in tokens)
    assert works(world.client, world.token("mm_admin"))
    assert_error(attempt(world.client, world.emails["mm"], PASSWORD), 401, "AFS-401", INVALID)
    assert sign_in(world.client, world.emails["mm"], NEW_PASSWORD)["access_token"]


def test_an_admin_setting_its_own_password_keeps_its_own_token(world: World) -> None:
    ids = user_ids(world)
    other = sign_in(world.client, world.emails["ayla"])["access_token"]
    assert operate(world, "ayla", ids["ayla"], "password").status_code == 200
    assert works(world.client, world.token("ayla"))
    assert not works(world.client, other)


def test_set_password_follows_the_rules_of_user_creation(world: World) -> None:
    ids = user_ids(world)
    short = operate(world, "ayla", ids["mm"], "password", {"user": {"password": "short"}})
    assert_failures_message = assert_error(short, 422, "AFS-600")
    assert assert_failures_message.endswith("password must be 8 to 1024 characters")
    assert_error(operate(world, "ayla", ids["mm"], "password", {"user": {}}), 422, "AFS-600")
    flat = operate(world, "ayla", ids["mm"], "password", {"password": NEW_PASSWORD})  # as user creation
    assert flat.status_code == 200, flat.text
    assert sign_in(world.client, world.emails["mm"], NEW_PASSWORD)


def test_change_password_keeps_this_token_and_revokes_the_others(world: World) -> None:
    mine = sign_in(world.client, world.emails["som"])["access_token"]
    other = sign_in(world.client, world.emails["som"])["access_token"]
    response = world.client.post(
        "/users/password",
        json={"user": {"current_password": PASSWORD, "new_password": NEW_PASSWORD}},
        headers={"Authorization": f"auth_token {mine}"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert works(world.client, mine)
    assert not works(world.client, other)
    assert sign_in(world.client, world.emails["som"], NEW_PASSWORD)
    assert_error(attempt(world.client, world.emails["som"], PASSWORD), 401, "AFS-401", INVALID)


def test_a_wrong_current_password_is_a_failed_sign_in(world: World) -> None:
    headers = world.headers("som")

    def change(current: str) -> httpx2.Response:
        body = {"user": {"current_password": current, "new_password": NEW_PASSWORD}}
        return world.client.post("/users/password", json=body, headers=headers)

    assert_error(change("wrong one"), 401, "AFS-401", INVALID)
    assert_error(world.client.post("/users/password", json={"user": {}}, headers=headers), 422, "AFS-600")
    for _ in range(4):
        assert_error(change("wrong one"), 401, "AFS-401", INVALID)
    # Five failures lock the email: the change, and signing in, even with the right password.
    locked = assert_error(change(PASSWORD), 401, "AFS-401")
    assert locked.endswith("locked for 30 more minutes")
    assert assert_error(attempt(world.client, world.emails["som"], PASSWORD), 401, "AFS-401") == locked
    # Counted by the per-email sign-in limit too (10 a minute): 8 so far with this email.
    for _ in range(2):
        assert change("wrong one").status_code == 401
    limited = change("wrong one")
    assert_error(limited, 429, "AFS-429")
    assert "sign-ins with this email" in limited.json()["error"][0]["message"]
    assert limited.headers["Retry-After"]
    assert works(world.client, world.token("som"))  # the session itself is untouched


def test_change_password_needs_a_token(world: World) -> None:
    body = {"user": {"current_password": PASSWORD, "new_password": NEW_PASSWORD}}
    assert_error(world.client.post("/users/password", json=body), 401, "AFS-401")


# --- who may ------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", OPERATIONS)
def test_oem_admin_cannot_touch_another_oems_user(world: World, operation: str) -> None:
    ids = user_ids(world)
    for stranger in ("mom", "product_admin", "ayla", "mm2"):
        hidden = operate(world, "mm_admin", ids[stranger], operation)
        missing = operate(world, "mm_admin", 999999, operation)
        assert_error(missing, 404, "AFS-404", "User 999999 not found")
        assert_error(hidden, 404, "AFS-404", f"User {ids[stranger]} not found")
    assert_error(operate(world, "mm_admin", "abc", operation), 404, "AFS-404")
    own = operate(world, "mm_admin", ids["mm"], operation)
    assert own.status_code == 200, own.text
    assert sorted(
        u["email"]
        for u in world.client.get(f"{ADMIN}/users", headers=world.headers("mm_admin")).json()["users"]
    ) == [
        world.emails["mm"],
        world.emails["mm_admin"],
    ]


@pytest.mark.parametrize("user", NON_ADMINS)
def test_other_roles_are_refused(world: World, user: str) -> None:
    ids = user_ids(world)
    for operation in OPERATIONS:
        for target in (ids["mm"], ids[user], 999999):
            assert_error(operate(world, user, target, operation), 403, "AFS-403")
    assert_error(world.client.get(f"{ADMIN}/users", headers=world.headers(user)), 403, "AFS-403")


def test_ayla_admin_manages_any_user(world: World) -> None:
    ids = user_ids(world)
    for name in ("mm", "product_admin", "som2"):
        for operation in ("deactivate", "reactivate", "unlock", "password"):
            response = operate(world, "ayla", ids[name], operation)
            assert response.status_code == 200, response.text
            assert set(response.json()["user"]) == {
                "id",
                "email",
                "role",
                "oem_id",
                "created_at",
                "deactivated",
                "locked",
            }


# --- CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli(
    database_url: str, master_key_file: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Result]]:
    """``cli("admin", "unlock-user", ...)``: the devicefactory command, in this process."""
    runner = CliRunner()
    env = {"DEVICEFACTORY_DATABASE_URL": database_url, "DEVICEFACTORY_MASTER_KEY_FILE": str(master_key_file)}
    engines: list[Engine] = []

    def make_engine(url: str, **kwargs: Any) -> Engine:
        made = cli_module.make_engine(url, **kwargs)
        engines.append(made)
        return made

    # Each command makes its engine and exits; here the process lives on, so close them.
    monkeypatch.setattr("devicefactory.cli.make_engine", make_engine)
    umask = os.umask(0o022)
    os.umask(umask)

    def run(*args: str, input: str | None = None) -> Result:
        try:
            return runner.invoke(main, list(args), env=env, input=input, catch_exceptions=False)
        finally:
            while engines:
                engines.pop().dispose()

    yield run
    os.umask(umask)  # the command tightens the process's umask


def test_cli_recovers_accounts(
    world: World, cli: Callable[..., Result], session_factory: sessionmaker[Session]
) -> None:
    email = world.emails["mom"]
    token = world.token("mom")
    fail_five_times(world.client, email)

    unlocked = cli("admin", "unlock-user", "--email", "MOM@example.com")
    assert unlocked.exit_code == 0, unlocked.output
    assert unlocked.output.strip() == f"unlocked {email}"
    assert works(world.client, sign_in(world.client, email)["access_token"])

    deactivated = cli("admin", "deactivate-user", "--email", email)
    assert deactivated.exit_code == 0, deactivated.output
    assert not works(world.client, token)
    assert_error(attempt(world.client, email, PASSWORD), 401, "AFS-401", INVALID)
    with session_factory() as session:
        assert session.scalar(select(User.deactivated_at).where(User.email == email)) is not None
    reactivated = cli("admin", "reactivate-user", "--email", email)
    assert reactivated.exit_code == 0, reactivated.output
    fresh = sign_in(world.client, email)["access_token"]

    piped = cli("admin", "set-password", "--email", email, "--password-stdin", input=NEW_PASSWORD + "\n")
    assert piped.exit_code == 0, piped.output
    assert not works(world.client, fresh)
    with session_factory() as session:  # checked here: the per-email sign-in limit is near
        stored = session.scalars(select(User.password_hash).where(User.email == email)).one()
        assert verify_password(stored, NEW_PASSWORD)
    prompted = cli("admin", "set-password", "--email", email, input="prompted passphrase\n" * 2)
    assert prompted.exit_code == 0, prompted.output
    assert "prompted passphrase" not in prompted.output  # hidden input
    assert sign_in(world.client, email, "prompted passphrase")
    with session_factory() as session:
        assert session.scalar(select(User.password_changed_at).where(User.email == email)) is not None


def test_cli_refuses_unknown_emails_and_bad_passwords(world: World, cli: Callable[..., Result]) -> None:
    for command in ("unlock-user", "deactivate-user", "reactivate-user"):
        result = cli("admin", command, "--email", "nobody-here@example.com")
        assert result.exit_code == 1
        assert "AFS-404" in result.output
    short = cli("admin", "set-password", "--email", world.emails["mm"], "--password-stdin", input="short\n")
    assert short.exit_code == 1
    assert "password must be 8 to 1024 characters" in short.output
    assert sign_in(world.client, world.emails["mm"])  # unchanged


# --- dashboard ----------------------------------------------------------------------------


@pytest.fixture
def dash(app: FastAPI, world: World) -> Iterator[Callable[[str], Dash]]:
    """``dash("mm")``: a browser-like client signed in through the sign-in form."""
    clients: list[TestClient] = []

    def open_as(user: str) -> Dash:
        client = TestClient(app)
        clients.append(client)
        response = sign_in_form(client, world.emails[user])
        assert response.status_code == 303, response.text
        return Dash(client, user, world.emails[user])

    yield open_as
    for client in clients:
        client.close()


def test_dashboard_change_password(dash: Callable[[str], Dash], world: World) -> None:
    other = dash("som")  # another browser of the same user
    client = dash("som")
    page = client.get("/dashboard/password")
    assert page.status_code == 200
    assert 'href="/dashboard/password"' in client.get("/dashboard").text  # the header links it
    assert 'action="/dashboard/password"' in page.text
    assert 'href="/dashboard/users"' not in page.text  # not an admin

    def change(current: str, new: str, confirm: str | None = None) -> httpx2.Response:
        fields = {"current_password": current, "new_password": new, "confirm_password": confirm or new}
        return client.post("/dashboard/password", fields)

    wrong = change("not it at all", NEW_PASSWORD)
    assert wrong.status_code == 401
    assert INVALID in wrong.text
    assert wrong.headers["content-type"].startswith("text/html")
    differ = change(PASSWORD, NEW_PASSWORD, "something else")
    assert differ.status_code == 422
    assert "the new password and its confirmation differ" in differ.text
    refused = client.post(
        "/dashboard/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD},
        csrf=False,
    )
    assert refused.status_code == 403
    assert "security token" in refused.text

    done = change(PASSWORD, NEW_PASSWORD)
    assert done.status_code == 303
    assert done.headers["location"] == "/dashboard/password?changed=1"
    assert "Your password has changed" in client.get(done.headers["location"]).text
    assert client.get("/dashboard", follow_redirects=False).status_code == 200  # still signed in
    assert other.get("/dashboard", follow_redirects=False).status_code == 303  # signed out
    assert sign_in(world.client, world.emails["som"], NEW_PASSWORD)


def test_dashboard_users_page(dash: Callable[[str], Dash], world: World) -> None:
    ids = user_ids(world)
    fail_five_times(world.client, world.emails["mm"])
    victim = dash("mm2")
    admin = dash("mm_admin")
    page = admin.get("/dashboard/users")
    assert page.status_code == 200
    shown = dict(re.findall(r'<tr data-user="(\d+)" data-state="([^"]+)"', page.text))
    assert shown == {str(ids["mm"]): "active locked", str(ids["mm_admin"]): "active"}
    assert f'action="/dashboard/users/{ids["mm"]}/unlock"' in page.text
    assert f'action="/dashboard/users/{ids["mm_admin"]}/deactivate"' not in page.text  # not itself

    unlocked = admin.post(f"/dashboard/users/{ids['mm']}/unlock")
    assert unlocked.status_code == 303
    after = admin.get(unlocked.headers["location"]).text
    assert f"{world.emails['mm']} is unlocked and may sign in at once." in after
    assert sign_in(world.client, world.emails["mm"])

    # Another OEM's user is out of reach, as an unknown one; the form needs its token.
    for operation in OPERATIONS:
        assert (
            admin.post(f"/dashboard/users/{ids['mm2']}/{operation}", {"password": NEW_PASSWORD}).status_code
            == 404
        )
        assert (
            admin.post(
                f"/dashboard/users/{ids['mm']}/{operation}", {"password": NEW_PASSWORD}, csrf=False
            ).status_code
            == 403
        )

    platform = dash("ayla")
    assert platform.post(f"/dashboard/users/{ids['mm2']}/deactivate").status_code == 303
    assert victim.get("/dashboard", follow_redirects=False).status_code == 303  # its session ended
    listing = platform.get("/dashboard/users").text
    assert f'<tr data-user="{ids["mm2"]}" data-state="deactivated"' in listing
    assert platform.post(f"/dashboard/users/{ids['mm2']}/reactivate").status_code == 303

    short = platform.post(f"/dashboard/users/{ids['mm2']}/password", {"password": "short"})
    assert short.status_code == 422
    assert "password must be 8 to 1024 characters" in short.text
    assert (
        platform.post(f"/dashboard/users/{ids['mm2']}/password", {"password": NEW_PASSWORD}).status_code
        == 303
    )
    assert sign_in(world.client, world.emails["mm2"], NEW_PASSWORD)


def test_dashboard_users_page_is_for_admins_only(dash: Callable[[str], Dash], world: World) -> None:
    ids = user_ids(world)
    client = dash("mom")
    page = client.get("/dashboard/users")
    assert page.status_code == 403
    assert "AFS-403" in page.text
    assert client.post(f"/dashboard/users/{ids['mom']}/deactivate").status_code == 403
    form = client.get("/dashboard/password").text
    assert csrf_of(form)

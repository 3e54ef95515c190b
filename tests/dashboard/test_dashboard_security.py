"""Dashboard sessions and CSRF: cookie flags, sign-in and out, every form's CSRF check."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tests.api import WHITE_BOX, ok, provision, reserve
from tests.conftest import FrozenClock
from tests.dashboard.conftest import Dash, csrf_of, sign_in_form
from tests.world import World

from devicefactory.tables.actions import FactoryAction
from devicefactory.tables.devices import Device, Job

V1 = "/devicefactory/v1"


def counts(factory: sessionmaker[Session]) -> tuple[int, int, int]:
    with factory() as session:
        return (
            session.scalar(select(func.count()).select_from(FactoryAction)) or 0,
            session.scalar(select(func.count()).select_from(Device)) or 0,
            session.scalar(select(func.count()).select_from(Job)) or 0,
        )


def cookie_header(response_headers: list[str], name: str) -> str:
    found = [header for header in response_headers if header.startswith(f"{name}=")]
    assert found, response_headers
    return found[0]


def test_session_cookie_is_httponly_lax_and_not_secure_over_http(app: FastAPI, world: World) -> None:
    with TestClient(app) as client:
        response = sign_in_form(client, world.emails["mm"])
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = cookie_header(response.headers.get_list("set-cookie"), "df_session").lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/dashboard" in cookie
    assert "secure" not in cookie


def test_session_cookie_is_secure_over_https(app: FastAPI, world: World) -> None:
    with TestClient(app, base_url="https://testserver") as client:
        response = sign_in_form(client, world.emails["mm"])
        assert response.status_code == 303
        for name in ("df_session",):
            cookie = cookie_header(response.headers.get_list("set-cookie"), name).lower()
            assert "secure" in cookie
            assert "httponly" in cookie
        page = client.get("/dashboard")
        assert page.status_code == 200
        assert "mm@example.com" in page.text


def test_the_session_is_the_api_token(app: FastAPI, world: World, clock: FrozenClock) -> None:
    with TestClient(app) as client:
        sign_in_form(client, world.emails["mm"])
        token = client.cookies["df_session"]
        # The same token works on the API: one session system.
        api = client.get(f"{V1}/factory_actions", headers={"Authorization": f"auth_token {token}"})
        assert api.status_code == 200
        clock.advance(days=2)  # past the token's lifetime
        expired = client.get("/dashboard", follow_redirects=False)
        assert expired.status_code == 303
        assert expired.headers["location"].startswith("/dashboard/sign_in?expired=1")
        assert "Your session has ended" in client.get(expired.headers["location"]).text
        # Said once: the stale cookie is cleared, so the next visit is a plain one.
        again = client.get("/dashboard", follow_redirects=False)
    assert again.headers["location"] == "/dashboard/sign_in?next=%2Fdashboard"


def test_unsigned_visitors_are_sent_to_sign_in_and_back(app: FastAPI, world: World) -> None:
    with TestClient(app) as client:
        response = client.get("/dashboard/devices?dsn=AC000W*", follow_redirects=False)
        assert response.status_code == 303
        # A first visit: the plain sign-in page (no "your session has ended").
        assert response.headers["location"] == (
            "/dashboard/sign_in?next=%2Fdashboard%2Fdevices%3Fdsn%3DAC000W%2A"
        )
        page = client.get(response.headers["location"])
        assert "Your session has ended" not in page.text
        signed = client.post(
            "/dashboard/sign_in",
            data={
                "email": world.emails["mm"],
                "password": "correct horse battery",
                "csrf_token": csrf_of(page.text),
                "next": "/dashboard/devices?dsn=AC000W*",
            },
            follow_redirects=False,
        )
    assert signed.headers["location"] == "/dashboard/devices?dsn=AC000W*"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/devicefactory/v1/devices"])
def test_sign_in_never_redirects_off_the_dashboard(app: FastAPI, world: World, target: str) -> None:
    with TestClient(app) as client:
        signed = sign_in_form(client, world.emails["mm"], next_url=target)
    assert signed.headers["location"] == "/dashboard"


def test_failed_sign_in_shows_a_message_then_locks(app: FastAPI, world: World) -> None:
    with TestClient(app) as client:
        for _ in range(5):
            response = sign_in_form(client, world.emails["mm"], "wrong password")
            assert response.status_code == 401
            assert "AFS-401" in response.text
            assert "Invalid email or password" in response.text
            assert 'value="mm@example.com"' in response.text  # the email is kept
            assert "df_session" not in client.cookies
        locked = sign_in_form(client, world.emails["mm"])  # even the right password
    assert locked.status_code == 401
    assert "signing in with this email is locked for 30 more minutes" in locked.text
    assert locked.headers["content-type"].startswith("text/html")


def test_unknown_user_gets_the_same_message(app: FastAPI) -> None:
    with TestClient(app) as client:
        response = sign_in_form(client, "nobody@example.com")
    assert response.status_code == 401
    assert "Invalid email or password" in response.text


def test_sign_in_without_a_valid_csrf_token_is_refused(app: FastAPI, world: World) -> None:
    with TestClient(app) as client:
        client.get("/dashboard/sign_in")
        for token in (None, "0" * 64):
            data = {"email": world.emails["mm"], "password": "correct horse battery"}
            if token:
                data["csrf_token"] = token
            response = client.post("/dashboard/sign_in", data=data, follow_redirects=False)
            assert response.status_code == 403
            assert "security token" in response.text
            assert "df_session" not in client.cookies


def test_sign_out_revokes_the_token(dash: Callable[[str], Dash], app: FastAPI) -> None:
    user = dash("mm")
    token = user.client.cookies["df_session"]
    response = user.post("/dashboard/sign_out")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/sign_in?signed_out=1"
    assert 'df_session=""' in cookie_header(response.headers.get_list("set-cookie"), "df_session")
    with TestClient(app) as other:
        other.cookies.set("df_session", token, path="/dashboard")
        assert other.get("/dashboard", follow_redirects=False).status_code == 303
        api = other.get(f"{V1}/factory_actions", headers={"Authorization": f"auth_token {token}"})
        assert api.status_code == 401


def _provisioned_white_box(dash: Callable[[str], Dash], world: World, pool: Callable[[int], None]) -> str:
    pool(1)
    (dsn,) = reserve(world, "gateway_admin", "AY001RTA")
    ok(provision(world, dsn, WHITE_BOX, "gateway_admin"))
    return dsn


@pytest.mark.parametrize("token", ["missing", "forged", "other session"])
def test_every_form_refuses_a_post_without_a_valid_csrf_token(
    dash: Callable[[str], Dash],
    world: World,
    pool: Callable[[int], None],
    session_factory: sessionmaker[Session],
    token: str,
) -> None:
    dsn = _provisioned_white_box(dash, world, pool)
    pool(5)
    admin = dash("gateway_admin")
    other = dash("gateway_admin")  # the same user in another browser: another session
    tokens = {"missing": None, "forged": "f" * 64, "other session": other.csrf()}
    before = counts(session_factory)
    forms: list[tuple[str, dict[str, str], dict[str, tuple[str, bytes, str]] | None]] = [
        ("/dashboard/actions/reserve", {"model": "AY001RTA", "count": "2"}, None),
        (
            "/dashboard/actions/upload",
            {"type": "provision", "validate_only": "false"},
            {"file": ("p.csv", b"dsn,model\nAC000W000000001,AY001RTA\n", "text/csv")},
        ),
        (f"/dashboard/devices/{dsn}/factory_reset", {}, None),
        ("/dashboard/sign_out", {}, None),
    ]
    for url, data, files in forms:
        fields = dict(data)
        if tokens[token]:
            fields["csrf_token"] = tokens[token] or ""
        response = admin.client.post(url, data=fields, files=files, follow_redirects=False)
        assert response.status_code == 403, (url, response.text)
        assert response.headers["content-type"].startswith("text/html")
        assert "security token" in response.text
    assert counts(session_factory) == before
    # Still signed in: sign-out without a token did nothing either.
    assert admin.get("/dashboard", follow_redirects=False).status_code == 200


def test_a_valid_token_is_accepted_by_the_same_forms(
    dash: Callable[[str], Dash], world: World, pool: Callable[[int], None]
) -> None:
    dsn = _provisioned_white_box(dash, world, pool)
    pool(2)
    admin = dash("gateway_admin")
    assert admin.post("/dashboard/actions/reserve", {"model": "AY001RTA", "count": "2"}).status_code == 303
    assert admin.post(f"/dashboard/devices/{dsn}/factory_reset").status_code == 200
    upload = admin.post(
        "/dashboard/actions/upload",
        {"type": "provision", "validate_only": "true"},
        files={"file": ("p.csv", b"dsn,model\nAC000W000000001,AY001RTA\n", "text/csv")},
    )
    assert upload.status_code == 303
    assert admin.post("/dashboard/sign_out").status_code == 303


def test_pages_send_security_headers(dash: Callable[[str], Dash]) -> None:
    page = dash("mm").get("/dashboard")
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self' covers it
    assert page.headers["x-content-type-options"] == "nosniff"


def test_a_non_ascii_csrf_token_is_refused_not_a_crash(dash: Callable[[str], Dash]) -> None:
    page = dash("mm")
    response = page.post(
        "/dashboard/actions/reserve", {"model": "AY001MTP1", "count": "1", "csrf_token": "é"}, csrf=False
    )
    assert response.status_code == 403

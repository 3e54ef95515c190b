"""Sign-in, refresh, sign-out, token expiry and account lockout (§5)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.conftest import FrozenClock
from tests.world import PASSWORD, World, sign_in

from devicefactory.tables.accounts import AuthToken, User


def _models_call(client: TestClient, token: str) -> int:
    response = client.get("/devicefactory/v1/admin/models", headers={"Authorization": f"auth_token {token}"})
    return response.status_code


def assert_afs_401(response: object) -> None:
    assert response.status_code == 401  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert list(body) == ["error"]
    assert body["error"][0]["code"] == "AFS-401"
    assert body["error"][0]["message"]


def test_sign_in_returns_the_ayla_shape(world: World) -> None:
    body = sign_in(world.client, world.emails["mm"])
    assert set(body) == {"access_token", "refresh_token", "expires_in", "role"}
    assert body["expires_in"] == 86400
    assert body["role"] == "OEM::ModuleManufacturer"
    assert _models_call(world.client, body["access_token"]) == 200


def test_sign_in_accepts_application_and_mixed_case_email(world: World) -> None:
    response = world.client.post(
        "/users/sign_in.json",
        json={
            "user": {
                "email": "MM@Example.COM",
                "password": PASSWORD,
                "application": {"app_id": "a", "app_secret": "b"},
            }
        },
    )
    assert response.status_code == 200


def test_bad_credentials_get_401(world: World) -> None:
    for email, password in [("mm@example.com", "wrong password"), ("nobody@example.com", PASSWORD)]:
        response = world.client.post(
            "/users/sign_in.json", json={"user": {"email": email, "password": password}}
        )
        assert_afs_401(response)


def test_bearer_scheme_is_accepted_too(world: World) -> None:
    token = world.token("mm")
    response = world.client.get(
        "/devicefactory/v1/admin/models", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


def test_missing_and_unknown_tokens_get_401(world: World) -> None:
    assert_afs_401(world.client.get("/devicefactory/v1/admin/models"))
    assert_afs_401(
        world.client.get("/devicefactory/v1/admin/models", headers={"Authorization": "auth_token nope"})
    )
    assert_afs_401(world.client.get("/devicefactory/v1/admin/models", headers={"Authorization": "Basic abc"}))


def test_expired_token_gets_401(world: World, clock: FrozenClock) -> None:
    token = world.token("mm")
    clock.advance(seconds=86399)
    assert _models_call(world.client, token) == 200
    clock.advance(seconds=2)
    assert_afs_401(world.client.get("/devicefactory/v1/admin/models", headers=world.headers("mm")))


def test_sign_out_revokes_the_token(world: World) -> None:
    token = world.token("mm")
    response = world.client.post("/users/sign_out.json", json={"user": {"access_token": token}})
    assert response.status_code == 200
    assert_afs_401(world.client.get("/devicefactory/v1/admin/models", headers=world.headers("mm")))
    again = world.client.post("/users/sign_out.json", json={"user": {"access_token": token}})
    assert_afs_401(again)


def test_refresh_rotates_the_pair(world: World) -> None:
    first = sign_in(world.client, world.emails["mm"])
    response = world.client.post(
        "/users/refresh_token.json", json={"user": {"refresh_token": first["refresh_token"]}}
    )
    assert response.status_code == 200
    second = response.json()
    assert second["access_token"] != first["access_token"]
    assert _models_call(world.client, second["access_token"]) == 200
    # The rotated-away pair is dead: neither its refresh token nor its access token work.
    reuse = world.client.post(
        "/users/refresh_token.json", json={"user": {"refresh_token": first["refresh_token"]}}
    )
    assert_afs_401(reuse)
    assert _models_call(world.client, first["access_token"]) == 401


def test_five_failures_lock_the_account_for_30_minutes(world: World, clock: FrozenClock) -> None:
    client = world.client
    for _ in range(5):
        bad = client.post(
            "/users/sign_in.json",
            json={"user": {"email": "mm@example.com", "password": "nope-nope"}},
        )
        assert bad.status_code == 401
    locked = client.post(
        "/users/sign_in.json", json={"user": {"email": "mm@example.com", "password": PASSWORD}}
    )
    assert_afs_401(locked)
    assert "locked" in locked.json()["error"][0]["message"]
    # Another account still signs in.
    assert sign_in(client, world.emails["mom"])["access_token"]
    clock.advance(minutes=29)
    still = client.post(
        "/users/sign_in.json", json={"user": {"email": "mm@example.com", "password": PASSWORD}}
    )
    assert still.status_code == 401
    clock.advance(minutes=2)
    assert sign_in(client, world.emails["mm"])["access_token"]


def test_a_success_resets_the_failure_count(world: World) -> None:
    client = world.client
    for _ in range(4):
        client.post(
            "/users/sign_in.json",
            json={"user": {"email": "mm@example.com", "password": "nope-nope"}},
        )
    sign_in(client, world.emails["mm"])
    for _ in range(4):
        client.post(
            "/users/sign_in.json",
            json={"user": {"email": "mm@example.com", "password": "nope-nope"}},
        )
    assert sign_in(client, world.emails["mm"])["access_token"]


def test_no_password_or_token_is_stored_in_clear(
    world: World, session_factory: sessionmaker[Session]
) -> None:
    issued = sign_in(world.client, world.emails["mm"])
    with session_factory() as session:
        user = session.scalars(select(User).where(User.email == "mm@example.com")).one()
        tokens = session.scalars(select(AuthToken)).all()
        dump = repr([(u.email, u.password_hash) for u in session.scalars(select(User))])
    assert PASSWORD not in dump
    assert user.password_hash.startswith("$argon2")
    stored = {value for token in tokens for value in (token.access_hash, token.refresh_hash)}
    assert issued["access_token"] not in stored
    assert issued["refresh_token"] not in stored
    assert len(tokens) >= 1


def test_malformed_sign_in_bodies_get_afs_600(world: World) -> None:
    client = world.client
    for body in [
        b"not json",
        b"[]",
        b'{"user": "x"}',
        b"",
        b'{"user": {"email": 5, "password": []}}',
    ]:
        response = client.post(
            "/users/sign_in.json", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, body
        assert response.json()["error"][0]["code"] == "AFS-600"

"""The admin API: who may create and list OEMs, users and models (§3, §5)."""

from __future__ import annotations

import pytest
from tests.world import USERS, World, factory_certificate

ADMIN = "/devicefactory/v1/admin"
OEM_USERS = [name for name, (role, _) in USERS.items() if role != "Ayla::Admin"]
NON_ADMIN_USERS = ["mm", "mm2", "mom", "mom2", "som", "som2"]


def _code(response: object) -> str:
    return str(response.json()["error"][0]["code"])  # type: ignore[attr-defined]


def test_ayla_admin_manages_oems_users_and_models(world: World) -> None:
    client, headers = world.client, world.headers("ayla")
    created = client.post(
        f"{ADMIN}/oems", json={"name": "New OEM", "module_manufacturer": True}, headers=headers
    )
    assert created.status_code == 201
    oem = created.json()["oem"]
    assert len(oem["oem_id"]) == 8
    assert all(c in "0123456789abcdef" for c in oem["oem_id"])
    assert oem["module_manufacturer"] is True
    assert oem["reservation_limit"] == 100000
    assert oem["has_factory_certificate"] is False
    assert any(
        o["oem_id"] == oem["oem_id"] for o in client.get(f"{ADMIN}/oems", headers=headers).json()["oems"]
    )

    user = client.post(
        f"{ADMIN}/users",
        json={
            "email": "New@Example.com",
            "password": "long enough",
            "role": "OEM::Admin",
            "oem_id": oem["oem_id"],
        },
        headers=headers,
    )
    assert user.status_code == 201
    assert user.json()["user"]["email"] == "new@example.com"
    model = client.post(f"{ADMIN}/models", json={"name": "AY002X", "kind": "white_box"}, headers=headers)
    assert model.status_code == 201
    names = [m["name"] for m in client.get(f"{ADMIN}/models", headers=headers).json()["models"]]
    assert "AY002X" in names

    pem = factory_certificate()[0].decode()
    cert = client.put(f"{ADMIN}/oems/{oem['oem_id']}/certificate", content=pem, headers=headers)
    assert cert.status_code == 200
    assert cert.json()["oem"]["has_factory_certificate"] is True


@pytest.mark.parametrize("user", OEM_USERS)
def test_oem_roles_may_not_manage_oems_or_models(world: World, user: str) -> None:
    client, headers = world.client, world.headers(user)
    assert client.post(f"{ADMIN}/oems", json={"name": "X"}, headers=headers).status_code == 403
    assert client.get(f"{ADMIN}/oems", headers=headers).status_code == 403
    assert (
        client.post(f"{ADMIN}/models", json={"name": "Y", "kind": "black_box"}, headers=headers).status_code
        == 403
    )
    pem = factory_certificate()[0].decode()
    put = client.put(f"{ADMIN}/oems/{world.oem_ids['modules']}/certificate", content=pem, headers=headers)
    assert put.status_code == 403
    assert _code(put) == "AFS-403"
    # Every signed-in user may read the model list (the dashboard offers it).
    assert client.get(f"{ADMIN}/models", headers=headers).status_code == 200


@pytest.mark.parametrize("user", NON_ADMIN_USERS)
def test_non_admin_roles_may_not_manage_users(world: World, user: str) -> None:
    client, headers = world.client, world.headers(user)
    assert client.get(f"{ADMIN}/users", headers=headers).status_code == 403
    body = {"email": "x@example.com", "password": "long enough", "role": "OEM::ModuleManufacturer"}
    response = client.post(f"{ADMIN}/users", json=body, headers=headers)
    assert response.status_code == 403
    assert _code(response) == "AFS-403"


def test_oem_admin_sees_and_creates_only_its_own_users(world: World) -> None:
    client, headers = world.client, world.headers("mm_admin")
    listed = client.get(f"{ADMIN}/users", headers=headers).json()["users"]
    assert {u["email"] for u in listed} == {"mm@example.com", "mm_admin@example.com"}
    assert {u["oem_id"] for u in listed} == {world.oem_ids["modules"]}

    made = client.post(
        f"{ADMIN}/users",
        json={
            "email": "line2@example.com",
            "password": "long enough",
            "role": "OEM::ModuleManufacturer",
        },
        headers=headers,
    )
    assert made.status_code == 201
    assert made.json()["user"]["oem_id"] == world.oem_ids["modules"]


def test_oem_admin_cannot_create_users_of_another_oem(world: World) -> None:
    client, headers = world.client, world.headers("mm_admin")
    body = {
        "email": "spy@example.com",
        "password": "long enough",
        "role": "OEM::ModuleManufacturer",
        "oem_id": world.oem_ids["products"],
    }
    response = client.post(f"{ADMIN}/users", json=body, headers=headers)
    assert response.status_code == 404
    assert _code(response) == "AFS-404"
    listed = client.get(f"{ADMIN}/users", headers=world.headers("ayla")).json()["users"]
    assert "spy@example.com" not in {u["email"] for u in listed}


def test_oem_admin_cannot_create_an_ayla_admin(world: World) -> None:
    body = {"email": "boss@example.com", "password": "long enough", "role": "Ayla::Admin"}
    response = world.client.post(f"{ADMIN}/users", json=body, headers=world.headers("product_admin"))
    assert response.status_code == 403


def test_taken_email_is_a_conflict_whatever_its_case(world: World) -> None:
    body = {
        "email": "MM@example.com",
        "password": "long enough",
        "role": "OEM::ModuleManufacturer",
        "oem_id": world.oem_ids["modules"],
    }
    response = world.client.post(f"{ADMIN}/users", json=body, headers=world.headers("ayla"))
    assert response.status_code == 409
    assert _code(response) == "AFS-409"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"email": "not-an-email", "password": "long enough", "role": "OEM::Admin"},
            "not a valid email",
        ),
        ({"email": "a@example.com", "password": "short", "role": "OEM::Admin"}, "password"),
        (
            {"email": "a@example.com", "password": "long enough", "role": "Root"},
            "role must be one of",
        ),
        (
            {"email": "a@example.com", "password": "long enough", "role": "OEM::Admin"},
            "needs an OEM",
        ),
        (
            {
                "email": "a@example.com",
                "password": "long enough",
                "role": "OEM::Admin",
                "oem_id": "ffffffff",
            },
            "not found",
        ),
    ],
)
def test_user_validation(world: World, body: dict[str, str], fragment: str) -> None:
    response = world.client.post(f"{ADMIN}/users", json=body, headers=world.headers("ayla"))
    assert response.status_code in (404, 422)
    assert fragment in response.json()["error"][0]["message"]


@pytest.mark.parametrize(
    "pem", ["", "hello", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_bad_certificate_is_refused_and_nothing_changes(world: World, pem: str) -> None:
    oem_id = world.oem_ids["modules"]
    response = world.client.put(
        f"{ADMIN}/oems/{oem_id}/certificate", content=pem, headers=world.headers("ayla")
    )
    assert response.status_code == 422
    assert _code(response) == "AFS-600"


def test_certificate_for_unknown_oem_is_404(world: World) -> None:
    pem = factory_certificate()[0].decode()
    response = world.client.put(
        f"{ADMIN}/oems/ffffffff/certificate", content=pem, headers=world.headers("ayla")
    )
    assert response.status_code == 404


def test_model_validation(world: World) -> None:
    headers = world.headers("ayla")
    bad_kind = world.client.post(f"{ADMIN}/models", json={"name": "Z1", "kind": "grey_box"}, headers=headers)
    assert bad_kind.status_code == 422
    taken = world.client.post(
        f"{ADMIN}/models", json={"name": "AY001MTP1", "kind": "black_box"}, headers=headers
    )
    assert taken.status_code == 409
    bad_name = world.client.post(
        f"{ADMIN}/models", json={"name": "a b/c", "kind": "black_box"}, headers=headers
    )
    assert bad_name.status_code == 422

"""`/openapi.json` documents every accounts and factory-action route: its request body with
every field SPEC names, its answer, and the AFS errors it can give; live answers match
the documented models, and documenting changed nothing a caller sees (§4, §5, §6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, TypeAdapter

from devicefactory.accounts import bodies as accounts
from devicefactory.actions import bodies as actions
from devicefactory.app import create_app
from devicefactory.config import Settings
from devicefactory.device_fields import FIELDS
from devicefactory.http.openapi import AfsErrorBody, inline_schema
from tests.api import ACTIONS, FAILURES, assert_error, log_line, reserve, upload
from tests.world import World, factory_certificate

ADMIN = "/devicefactory/v1/admin"
ERROR_REF = "#/components/schemas/AfsErrorBody"

# (method, path) -> (answer status, answer schema, AFS codes it lists)
ROUTES: dict[tuple[str, str], tuple[str, str, set[str]]] = {
    ("post", "/users/sign_in"): ("200", "Tokens", {"AFS-401", "AFS-413", "AFS-429", "AFS-600"}),
    ("post", "/users/refresh_token"): ("200", "Tokens", {"AFS-401", "AFS-413", "AFS-600"}),
    ("post", "/users/sign_out"): ("200", "SignedOut", {"AFS-401", "AFS-413", "AFS-600"}),
    ("post", f"{ADMIN}/oems"): (
        "201",
        "OemEnvelope",
        {"AFS-401", "AFS-403", "AFS-409", "AFS-413", "AFS-600"},
    ),
    ("get", f"{ADMIN}/oems"): ("200", "OemList", {"AFS-401", "AFS-403"}),
    ("put", f"{ADMIN}/oems/{{oem_id}}/certificate"): (
        "200",
        "OemEnvelope",
        {"AFS-401", "AFS-403", "AFS-404", "AFS-413", "AFS-600"},
    ),
    ("post", f"{ADMIN}/users"): (
        "201",
        "UserEnvelope",
        {"AFS-401", "AFS-403", "AFS-404", "AFS-409", "AFS-413", "AFS-600"},
    ),
    ("get", f"{ADMIN}/users"): ("200", "UserList", {"AFS-401", "AFS-403"}),
    ("post", f"{ADMIN}/models"): (
        "201",
        "ModelEnvelope",
        {"AFS-401", "AFS-403", "AFS-409", "AFS-413", "AFS-600"},
    ),
    ("get", f"{ADMIN}/models"): ("200", "ModelList", {"AFS-401"}),
    ("get", ACTIONS): ("200", "ActionPage", {"AFS-401", "AFS-600"}),
    ("post", ACTIONS): ("202", "ActionEnvelope", {"AFS-401", "AFS-403", "AFS-413", "AFS-600", "AFS-607"}),
    ("get", f"{ACTIONS}/{{action_id}}"): ("200", "ActionDetail", {"AFS-401", "AFS-404", "AFS-600"}),
    ("get", f"{ACTIONS}/{{action_id}}/files/{{kind}}"): (
        "200",
        "",
        {"AFS-401", "AFS-404", "AFS-429", "AFS-600"},
    ),
}

# (method, path) -> (media type, the fields SPEC names, nested under this key if any)
REQUESTS: dict[tuple[str, str], tuple[str, set[str], str | None]] = {
    ("post", "/users/sign_in"): ("application/json", {"email", "password", "application"}, "user"),
    ("post", "/users/refresh_token"): ("application/json", {"refresh_token"}, "user"),
    ("post", "/users/sign_out"): ("application/json", {"access_token"}, "user"),
    ("post", f"{ADMIN}/oems"): (
        "application/json",
        {"name", "module_manufacturer", "certificate", "reservation_limit"},
        "oem",
    ),
    ("post", f"{ADMIN}/users"): ("application/json", {"email", "password", "role", "oem_id"}, "user"),
    ("post", f"{ADMIN}/models"): ("application/json", {"name", "kind", "description"}, "model"),
    ("post", ACTIONS): ("multipart/form-data", {"file", "type", "validate_only", "oem_host_version"}, None),
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The description alone: no database is touched to serve it."""
    folder = tmp_path_factory.mktemp("openapi")
    settings = Settings(database_url=f"sqlite:///{folder}/unused.db", master_key_file=folder / "master.key")
    openapi: dict[str, Any] = TestClient(create_app(settings)).get("/openapi.json").json()
    return openapi


def _operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = spec["paths"][path][method]
    return operation


@pytest.mark.parametrize(("method", "path"), list(ROUTES))
def test_every_route_documents_its_answer_and_its_afs_errors(
    spec: dict[str, Any], method: str, path: str
) -> None:
    status, answer, codes = ROUTES[method, path]
    responses = _operation(spec, method, path)["responses"]
    content = responses[status]["content"]
    if answer:
        assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{answer}"}
        assert answer in spec["components"]["schemas"]
    else:  # a file download
        assert {"text/csv", "text/plain", "application/pkcs7-mime"} <= set(content)
    listed = set()
    for code, response in responses.items():
        if code == status:
            continue
        body = response["content"]["application/json"]
        assert body["schema"] == {"$ref": ERROR_REF}, (code, response)
        for example in body["examples"].values():
            AfsErrorBody.model_validate(example["value"])
            error = example["value"]["error"][0]
            assert error["code"] in response["description"]
            if error["code"] == "AFS-600":
                assert error["message"].startswith(FAILURES)
            listed.add(error["code"])
    assert listed == codes
    # FastAPI's own 422 body never leaves this service: its 422s are AFS errors.
    assert "HTTPValidationError" not in str(responses)


@pytest.mark.parametrize(("method", "path"), list(REQUESTS))
def test_every_request_body_names_the_fields_of_spec(spec: dict[str, Any], method: str, path: str) -> None:
    media, fields, key = REQUESTS[method, path]
    body = _operation(spec, method, path)["requestBody"]
    assert body["required"] is True
    content = body["content"][media]
    schema = content["schema"]
    assert "$ref" not in str(schema), "an operation's body cannot reach $defs"
    # The admin bodies may come wrapped ({"oem": {...}}) or flat: both are documented.
    shapes = schema.get("anyOf", [schema])
    if path.startswith(ADMIN):
        assert len(shapes) == 2
        assert set(shapes[0]["properties"]) == {key}
        assert set(shapes[1]["properties"]) == fields
    else:
        assert len(shapes) == 1
    inner = shapes[0]["properties"][key] if key else shapes[0]
    assert set(inner["properties"]) == fields
    if media == "application/json":
        example = content["example"]
        assert set(example.get(key, example) if key else example) <= fields


def test_the_examples_are_the_specs() -> None:
    sign_in = accounts.SignInRequest.model_json_schema()["examples"][0]
    assert set(sign_in["user"]) == {"email", "password", "application"}
    assert set(sign_in["user"]["application"]) == {"app_id", "app_secret"}
    assert inline_schema(accounts.ModelFields)["properties"]["kind"]["enum"] == ["black_box", "white_box"]
    assert "OEM::ModuleManufacturer" in inline_schema(accounts.UserFields)["properties"]["role"]["enum"]
    oem = inline_schema(accounts.OemFields)["properties"]
    assert oem["reservation_limit"]["default"] == 100_000
    assert oem["module_manufacturer"]["default"] is False
    form = inline_schema(actions.UploadForm)["properties"]
    assert form["file"]["format"] == "binary"
    assert form["type"]["enum"] == ["manufacture", "provision", "retire"]


def test_an_action_device_has_every_field_of_the_table() -> None:
    assert {field.name for field in FIELDS} <= set(actions.ActionDevice.model_fields)


# --- live answers match the models, and errors are as before ------------------------------


def _matches(model: type[BaseModel], body: Any) -> None:
    """The body has exactly the model's keys (the models forbid extra keys; none is optional)."""
    model.model_validate(body)


def test_accounts_answers_match_their_models(world: World) -> None:
    client, admin = world.client, world.headers("ayla")
    tokens = client.post(
        "/users/sign_in.json",
        json={"user": {"email": world.emails["mm"], "password": "correct horse battery"}},
    )
    _matches(accounts.Tokens, tokens.json())
    refreshed = client.post(
        "/users/refresh_token.json", json={"user": {"refresh_token": tokens.json()["refresh_token"]}}
    )
    _matches(accounts.Tokens, refreshed.json())
    signed_out = client.post(
        "/users/sign_out.json", json={"user": {"access_token": refreshed.json()["access_token"]}}
    )
    assert signed_out.json() == {}
    _matches(accounts.SignedOut, signed_out.json())

    oem = client.post(f"{ADMIN}/oems", json={"oem": {"name": "Typed OEM"}}, headers=admin)
    assert oem.status_code == 201, oem.text
    _matches(accounts.OemEnvelope, oem.json())
    _matches(accounts.OemList, client.get(f"{ADMIN}/oems", headers=admin).json())
    pem = factory_certificate()[0]
    oem_id = oem.json()["oem"]["oem_id"]
    certified = client.put(f"{ADMIN}/oems/{oem_id}/certificate", content=pem, headers=admin)
    _matches(accounts.OemEnvelope, certified.json())

    user = client.post(
        f"{ADMIN}/users",
        json={"user": {"email": "typed@example.com", "password": "long enough", "role": "Ayla::Admin"}},
        headers=admin,
    )
    assert user.status_code == 201, user.text
    assert user.json()["user"]["oem_id"] is None
    _matches(accounts.UserEnvelope, user.json())
    _matches(accounts.UserList, client.get(f"{ADMIN}/users", headers=admin).json())

    model = client.post(f"{ADMIN}/models", json={"name": "AY009TYP", "kind": "white_box"}, headers=admin)
    assert model.status_code == 201, model.text
    _matches(accounts.ModelEnvelope, model.json())
    _matches(accounts.ModelList, client.get(f"{ADMIN}/models", headers=admin).json())


def test_action_answers_match_their_models(
    world: World, pool: Callable[[int], None], run_actions: Callable[[], int]
) -> None:
    pool(2)
    dsns = reserve(world, "mm", "AY001MTP1", 2)
    submitted = upload(world, "mm", [log_line(dsns[0], "000000000001", "sig-1")])
    validated = upload(world, "mm", [log_line(dsns[1], "000000000002", "sig-2")], validate=True)
    _matches(actions.FactoryAction, submitted)
    run_actions()
    headers = world.headers("mm")
    page = world.client.get(ACTIONS, headers=headers).json()
    _matches(actions.ActionPage, page)
    progress = {a["id"]: set(a["progress"]) for a in page["factory_actions"]}
    assert "would_apply" in progress[validated["id"]]
    assert "applied" in progress[submitted["id"]]
    reserved = next(a for a in page["factory_actions"] if a["type"] == "reserve")
    assert reserved["upload"] is None
    assert "xml" in reserved["files"]
    for action_id in (reserved["id"], submitted["id"]):
        detail = world.client.get(f"{ACTIONS}/{action_id}", headers=headers).json()
        _matches(actions.ActionDetail, detail)
    detail = world.client.get(f"{ACTIONS}/{reserved['id']}", headers=headers).json()
    assert len(detail["devices"]) == 2
    TypeAdapter(actions.Progress).validate_python(detail["factory_action"]["progress"])


# The routes read their bodies themselves: documenting them must not change these answers.


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "malformed JSON: the request body is not valid JSON"),
        (b"[1, 2]", "the request body must be a JSON object"),
        (b'{"user": "x"}', "'user' must be a JSON object"),
        (b'{"user": {"password": "p"}}', "email is required"),
    ],
)
def test_a_malformed_sign_in_answers_as_before(client: TestClient, body: bytes, message: str) -> None:
    response = client.post("/users/sign_in.json", content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 422, "AFS-600", FAILURES + message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"name": ', "malformed JSON: the request body is not valid JSON"),
        (b'"AY001MTP1"', "the request body must be a JSON object"),
        (b'{"model": []}', "'model' must be a JSON object"),
        (b'{"kind": "black_box"}', "name is required"),
        (b'{"name": 7, "kind": "black_box"}', "name must be a string"),
    ],
)
def test_a_malformed_model_answers_as_before(world: World, body: bytes, message: str) -> None:
    response = world.client.post(
        f"{ADMIN}/models",
        content=body,
        headers={**world.headers("ayla"), "Content-Type": "application/json"},
    )
    assert_error(response, 422, "AFS-600", FAILURES + message)


def test_an_upload_without_a_file_answers_as_before(world: World) -> None:
    response = world.client.post(
        ACTIONS, data={"type": "manufacture"}, files={"x": ("a", b"")}, headers=world.headers("mm")
    )
    assert_error(response, 422, "AFS-607", "There are some missing required attrs: file")

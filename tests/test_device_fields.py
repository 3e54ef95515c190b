"""The one table of device fields: the model, the API, the logs and the search follow it;
and the pure rules built on it (cleaning by kind, ``decide_manufacture``, ``decide_provision``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Boolean, Engine, String, inspect

from devicefactory.accounts.policy import Actor, ModelKind, Role
from devicefactory.actions import logfile
from devicefactory.app import create_app
from devicefactory.config import Settings
from devicefactory.dashboard import dsn_view
from devicefactory.db import UTCDateTime
from devicefactory.device_fields import BY_NAME, FIELDS, Kind, Search, in_order
from devicefactory.device_fields import Role as FieldRole
from devicefactory.devices import fields as F
from devicefactory.devices import search
from devicefactory.devices.factory_data import (
    ConflictingValues,
    Outcome,
    Request,
    decide_manufacture,
    decide_provision,
)
from devicefactory.devices.records import RECORD_COLUMNS, DeviceRecord
from devicefactory.errors import (
    AlreadyManufactured,
    AlreadyProvisioned,
    InvalidDate,
    InvalidModel,
    MissingAttributes,
    ValidationFailed,
)
from devicefactory.tables.devices import Device, DeviceStatus

DEVICES = "/devicefactory/v1/devices"
# The device's own columns: identity, keys, life cycle and cloud state (not factory fields).
OWN_COLUMNS = {
    "dsn",
    "model",
    "status",
    "public_key",
    "sealed_private_key",
    "master_key_id",
    "reserved_by_oem_id",
    "owner_oem_id",
    "reserve_action_id",
    "reserved_at",
    "manufactured_at",
    "provisioned_at",
    "verified_at",
    "template_id",
    "registered_user",
    "datapoint_count",
    "last_job_failed",
}
COLUMN_TYPES = {Kind.TEXT: String, Kind.MAC: String, Kind.MOMENT: UTCDateTime, Kind.FLAG: Boolean}


# --- the model and the database follow the table ------------------------------------------


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_each_field_has_its_column_in_the_model(field: Any) -> None:
    column = Device.__table__.c[field.name]
    assert isinstance(column.type, COLUMN_TYPES[field.kind])
    if field.kind in (Kind.TEXT, Kind.MAC):
        assert getattr(column.type, "length", None) == field.max_length
    assert column.nullable  # a reserved device has no factory data yet
    assert bool(column.unique) is field.unique


def test_the_model_has_no_factory_column_the_table_lacks() -> None:
    assert set(Device.__table__.c.keys()) == OWN_COLUMNS | {field.name for field in FIELDS}


def test_the_migrated_devices_table_has_every_field(engine: Engine) -> None:
    columns = {column["name"]: column for column in inspect(engine).get_columns("devices")}
    for field in FIELDS:
        assert columns[field.name]["nullable"], field.name
        if field.kind in (Kind.TEXT, Kind.MAC):
            assert getattr(columns[field.name]["type"], "length", None) == field.max_length, field.name


def test_the_records_of_the_hot_paths_carry_every_field() -> None:
    assert {field.name for field in FIELDS} <= set(RECORD_COLUMNS)
    assert set(RECORD_COLUMNS) <= set(Device.__table__.c.keys())


# --- /openapi.json follows the table -------------------------------------------------------


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder: Path = tmp_path_factory.mktemp("device-fields")
    settings = Settings(database_url=f"sqlite:///{folder}/unused.db", master_key_file=folder / "master.key")
    openapi: dict[str, Any] = TestClient(create_app(settings)).get("/openapi.json").json()
    return openapi


def _request_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    body = spec["paths"][f"{DEVICES}{path}"]["post"]["requestBody"]
    assert body["required"] is True
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    assert "$ref" not in str(schema)
    return schema


@pytest.mark.parametrize("operation", ["manufacture", "provision"])
def test_each_request_schema_has_the_fields_of_its_operation(spec: dict[str, Any], operation: str) -> None:
    schema = _request_schema(spec, f"/{{dsn}}/{operation}")
    used = [f.name for f in FIELDS if getattr(f, operation) is not FieldRole.ABSENT]
    assert list(schema["properties"]) == ["model", *(f.name for f in in_order(operation))]
    assert set(schema["properties"]) == {"model", *used}
    required = [f.name for f in in_order(operation) if getattr(f, operation) is FieldRole.REQUIRED]
    assert schema["required"] == ["model", *required]
    for field in FIELDS:
        if field.name in schema["properties"] and field.kind is Kind.TEXT:
            shown = str(schema["properties"][field.name])
            assert f"'maxLength': {field.max_length}" in shown, field.name


def test_reserve_and_verify_document_their_bodies(spec: dict[str, Any]) -> None:
    assert set(_request_schema(spec, "/reserve")["properties"]) == {"model", "count", "oem_id"}
    assert set(_request_schema(spec, "/{dsn}/verify")["properties"]) == {"token"}


def _answer(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses = spec["paths"][f"{DEVICES}{path}"][method]["responses"]
    ref: str = responses["200"]["content"]["application/json"]["schema"]["$ref"]
    schema: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


def _device_schema(spec: dict[str, Any], answer: dict[str, Any]) -> set[str]:
    ref = answer["properties"]["device"]["$ref"]
    return set(spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"])


def test_every_answer_with_a_device_has_every_field(spec: dict[str, Any]) -> None:
    names = {field.name for field in FIELDS}
    replied = {field.name for field in FIELDS if field.manufacture_reply}
    manufactured = _device_schema(spec, _answer(spec, "post", "/{dsn}/manufacture"))
    assert manufactured == {"dsn", "model", *replied}
    assert _device_schema(spec, _answer(spec, "post", "/{dsn}/provision")) == {"dsn", "model", "oem", *names}
    for method, path in [("get", "/{dsn}"), ("post", "/{dsn}/verify"), ("post", "/{dsn}/factory_reset")]:
        assert names <= _device_schema(spec, _answer(spec, method, path)), path
    page = _answer(spec, "get", "")
    assert set(page["properties"]) == {"devices", "next_cursor"}
    assert set(_answer(spec, "get", "/{dsn}/jobs")["properties"]) == {"jobs"}


def test_the_search_documents_every_searched_field(spec: dict[str, Any]) -> None:
    parameters = spec["paths"][DEVICES]["get"]["parameters"]
    named = {parameter["name"] for parameter in parameters}
    for field in FIELDS:
        assert (field.name in named) is (field.search is not Search.NONE), field.name


# --- the log layouts and the CSV columns follow the table ----------------------------------


def test_each_log_name_is_a_cell_of_some_layout() -> None:
    cells = {
        cell
        for by_count in logfile._LAYOUTS.values()
        for group in by_count.values()
        for c in group
        for cell in c.cells
    }
    for field in FIELDS:
        assert (field.log_name in cells) is (field.log_name is not None), field.name
    assert {field.name for field in FIELDS} <= set(logfile.FIELD_NAMES)


def test_a_version_4_line_carries_each_logged_field_by_its_api_name() -> None:
    (layout,) = logfile._LAYOUTS["4"][18]
    values = {"version": "4", "status": "config", "err_code": "0", "ads_connect_flag": "1"}
    line = ",".join(values.get(cell, f"v-{cell}") for cell in layout.cells)
    record = logfile.parse_log_line(line)
    assert isinstance(record, logfile.LogRecord)
    for field in FIELDS:
        if field.log_name:
            assert record.fields[field.name] == values.get(field.log_name, f"v-{field.log_name}"), field.name
    assert "oem_host_version" not in record.fields  # no layout carries it (SPEC §7)


# --- the DSN View's filters follow the table -------------------------------------------------


SEARCH_VALUES = {Kind.TEXT: "x", Kind.MAC: "00:1A:2B:3C:4D:5E", Kind.MOMENT: "x", Kind.FLAG: "yes"}


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_each_field_is_a_filter_by_its_search_form(field: Any) -> None:
    value = SEARCH_VALUES[field.kind]
    if field.search is Search.NONE:
        with pytest.raises(ValidationFailed, match=f"{field.name} is not a search parameter"):
            search.parse_search({field.name: value})
        return
    parsed = search.parse_search({field.name: value})
    if field.search is Search.FLAG:
        assert parsed.exact == {field.name: True}
        return
    assert parsed.exact == {field.name: "001a2b3c4d5e" if field.kind is Kind.MAC else value}
    assert search.parse_search({f"filter[{field.name}_like]": "a*"}).like == {field.name: "a%"}
    wild = search.parse_search({field.name: "a*"})
    if field.search is Search.WILDCARD:
        assert wild.like == {field.name: "a%"}
    else:
        assert wild.exact == {field.name: "a*"}


def test_the_search_form_offers_each_searched_field_once() -> None:
    offered = [f.name for f in (*dsn_view.QUICK_FILTERS, *dsn_view.MORE_FILTERS)]
    assert sorted(offered) == sorted(f.name for f in FIELDS if f.search is not Search.NONE)
    assert {f.name for f in dsn_view.COLUMNS} <= {f.name for f in FIELDS}
    assert [f for card in dsn_view.CARDS.values() for f in card] == list(FIELDS)


# --- cleaning by kind ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "cleaned"),
    [
        ("mac", "00:1A:2B:3C:4D:5E", "001a2b3c4d5e"),
        ("mac", "00-1a-2b-3c-4d-5e", "001a2b3c4d5e"),
        ("mac", " 001A2B3C4D5E ", "001a2b3c4d5e"),
        ("hwsig", " sig 1 ", "sig 1"),
        ("hwsig", "s" * 128, "s" * 128),
        ("manuf_sn", 12345, "12345"),
        ("odm", "o" * 255, "o" * 255),
        ("odm", "nbsp\u00a0ok", "nbsp\u00a0ok"),  # not printable, but no control character
        ("dom_at", "2016/11/24 10:34:23 UTC", datetime(2016, 11, 24, 10, 34, 23, tzinfo=UTC)),
        ("dom_at", "2016/1/2 3:04:05 GMT", datetime(2016, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("ads_connect_flag", True, True),
        ("ads_connect_flag", 0, False),
        ("ads_connect_flag", "true", True),
        ("ads_connect_flag", "0", False),
    ],
)
def test_a_good_value_is_normalised_by_its_kind(name: str, value: object, cleaned: object) -> None:
    result = F.clean_fields({name: value}, (name,))
    assert (result.values, result.failures, result.bad_dates) == ({name: cleaned}, [], {})


@pytest.mark.parametrize(
    ("name", "value", "failure"),
    [
        ("mac", "00:1a:2b:3c:4d", "mac 00:1a:2b:3c:4d is not 12 hex digits"),
        ("mac", "zz1a2b3c4d5e", "mac zz1a2b3c4d5e is not 12 hex digits"),
        ("hwsig", "s" * 129, "hwsig is longer than 128 characters"),
        ("hwsig", "nbsp\u00a0no", "hwsig must be printable characters"),
        ("odm", "o" * 256, "odm is longer than 255 characters"),
        ("oem_model", "bell\x07", "oem_model contains control characters"),
        ("manuf_model", ["a"], "manuf_model must be a string"),
        ("manuf_model", True, "manuf_model must be a string"),
        ("ads_connect_flag", "maybe", "ads_connect_flag maybe is not true, false, 1 or 0"),
        ("ads_connect_flag", 2, "ads_connect_flag 2 is not true, false, 1 or 0"),
    ],
)
def test_a_bad_value_is_a_failure_naming_its_field(name: str, value: object, failure: str) -> None:
    result = F.clean_fields({name: value}, (name,))
    assert (result.values, result.failures) == ({}, [failure])


@pytest.mark.parametrize("value", ["2016-11-24", "2016/13/01 00:00:00 UTC", "2016/11/24 10:34:23 CET", 7])
def test_a_bad_moment_is_afs_608_not_a_failure(value: object) -> None:
    result = F.clean_fields({"dom_at": value}, ("dom_at",))
    assert (result.values, result.failures, result.bad_dates) == ({}, [], {"dom_at": value})
    with pytest.raises(InvalidDate):
        F.check_date(result)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_an_empty_value_is_missing_and_left_out(value: object) -> None:
    assert F.clean_fields(dict.fromkeys(BY_NAME, value), tuple(BY_NAME)).values == {}


def test_the_rules_read_the_tables_orders() -> None:
    assert F.MANUFACTURE_REQUIRED == ("model", "mac", "hwsig", "dom_at")
    assert (
        *("model", "manuf_model", "mac", "hwsig", "oem_model"),
        *("module_sw_version", "oem_host_version", "dom_at"),
    ) == F.PROVISION_TABLE_ORDER
    assert F.PROVISION_ALWAYS_REQUIRED == ("model", "oem_model", "oem_host_version")
    assert (
        *("mac", "hwsig", "dom_at", "manuf_model", "manuf_sn"),
        *("odm", "module_sw_version", "wifi_setup_key", "ads_connect_flag"),
    ) == F.FACTORY_FIELDS


# --- decide_manufacture and decide_provision, on plain values ----------------------------------


class Holders:
    """Unique values held by other devices."""

    def __init__(self, held: Mapping[tuple[str, str], str] | None = None) -> None:
        self.held = dict(held or {})

    def holder(self, name: str, value: str) -> str | None:
        return self.held.get((name, value))


DSN = "AC000W000000001"
MANUFACTURE = {
    "model": "AY001MTP1",
    "mac": "00:1A:2B:3C:4D:5E",
    "hwsig": "sig-1",
    "dom_at": "2016/11/24 10:34:23 UTC",
}
PROVISION = {"model": "AY001MTP1", "oem_model": "lamp", "oem_host_version": "1.0"}
DOM = datetime(2016, 11, 24, 10, 34, 23, tzinfo=UTC)
OEM_ADMIN = Actor(user_id=1, email="admin@example.com", role=Role.OEM_ADMIN, oem_id="0dfc7900")


def record(
    status: DeviceStatus = DeviceStatus.RESERVED, model: str = "AY001MTP1", **values: Any
) -> DeviceRecord:
    row: dict[str, Any] = dict.fromkeys(RECORD_COLUMNS)
    row.update(dsn=DSN, model=model, status=status, reserved_by_oem_id="0dfc7900", last_job_failed=False)
    row.update(values)
    return DeviceRecord(row)


def manufacture(device: DeviceRecord, body: Mapping[str, object], **options: Any) -> Any:
    kind = options.pop("kind", ModelKind.BLACK_BOX)
    options.setdefault("repeat_is_error", True)
    return decide_manufacture(device, kind, body, unique=options.pop("unique", Holders()), **options)


def provision(device: DeviceRecord, body: Mapping[str, object], **options: Any) -> Any:
    kind = options.pop("kind", ModelKind.BLACK_BOX)
    request = Request(DSN, body, options.pop("line_oem_id", None))
    options.setdefault("repeat_is_error", True)
    return decide_provision(
        device, kind, OEM_ADMIN, request, unique=options.pop("unique", Holders()), **options
    )


MANUFACTURED: dict[str, Any] = {"mac": "001a2b3c4d5e", "hwsig": "sig-1", "dom_at": DOM}


def test_manufacture_cleans_what_it_applies() -> None:
    decision = manufacture(
        record(), {**MANUFACTURE, "odm": " acme ", "ads_connect_flag": "1", "colour": "red"}
    )
    assert decision.outcome is Outcome.APPLIED
    assert decision.values == {**MANUFACTURED, "odm": "acme", "ads_connect_flag": True}


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({}, ["model", "mac", "hwsig", "dom_at"]),
        ({**MANUFACTURE, "hwsig": "", "dom_at": None}, ["hwsig", "dom_at"]),
        ({"model": "XYZ", "mac": "bad"}, ["hwsig", "dom_at"]),  # AFS-607 before AFS-601 and the rest
    ],
)
def test_manufacture_lists_missing_fields_in_the_seed_order(body: dict[str, Any], missing: list[str]) -> None:
    with pytest.raises(MissingAttributes) as raised:
        manufacture(record(), body)
    assert raised.value.attrs == missing


def test_manufacture_refuses_another_model_and_white_box_devices() -> None:
    with pytest.raises(InvalidModel, match="XYZ is not a valid model"):
        manufacture(record(), {**MANUFACTURE, "model": "XYZ"})
    with pytest.raises(InvalidModel):
        manufacture(record(), MANUFACTURE, kind=ModelKind.WHITE_BOX)


def test_manufacture_reports_a_bad_date_before_other_failures() -> None:
    with pytest.raises(InvalidDate):
        manufacture(record(), {**MANUFACTURE, "dom_at": "2016-11-24", "mac": "bad"})


def test_manufacture_lists_every_failure() -> None:
    unique = Holders({("mac", "001a2b3c4d5e"): "AC000W000000002", ("hwsig", "sig-1"): "AC000W000000002"})
    with pytest.raises(ValidationFailed) as raised:
        manufacture(record(), {**MANUFACTURE, "odm": "o" * 256}, unique=unique)
    assert raised.value.message.endswith(
        "odm is longer than 255 characters, mac is already taken, hwsig is already taken"
    )
    assert manufacture(record(), MANUFACTURE, unique=Holders({("mac", "001a2b3c4d5e"): DSN})).values


def test_manufacture_repeated_is_an_error_or_identical_or_a_conflict() -> None:
    done = record(DeviceStatus.MANUFACTURED, **MANUFACTURED)
    with pytest.raises(AlreadyManufactured):
        manufacture(done, MANUFACTURE)
    assert manufacture(done, MANUFACTURE, repeat_is_error=False).outcome is Outcome.IDENTICAL
    with pytest.raises(ConflictingValues) as raised:
        manufacture(done, {**MANUFACTURE, "hwsig": "sig-2", "dom_at": "soon"}, repeat_is_error=False)
    assert [change.describe() for change in raised.value.changes] == [
        "hwsig: sig-1 -> sig-2",
        "dom_at: 2016/11/24 10:34:23 UTC -> soon",
    ]


WHITE_MISSING = [
    "model",
    "manuf_model",
    "mac",
    "oem_model",
    "module_sw_version",
    "oem_host_version",
    "dom_at",
]


@pytest.mark.parametrize(
    ("status", "kind", "body", "missing"),
    [
        (DeviceStatus.RESERVED, ModelKind.WHITE_BOX, {}, WHITE_MISSING),  # hwsig: mac-<mac>
        (
            DeviceStatus.RESERVED,
            ModelKind.WHITE_BOX,
            {"mac": "x", "oem_model": "y"},
            ["model", "manuf_model", "module_sw_version", "oem_host_version", "dom_at"],
        ),
        (
            DeviceStatus.MANUFACTURED,
            ModelKind.BLACK_BOX,
            {},
            ["model", "manuf_model", "oem_model", "module_sw_version", "oem_host_version"],
        ),
        (DeviceStatus.MANUFACTURED, ModelKind.BLACK_BOX, PROVISION, ["manuf_model", "module_sw_version"]),
    ],
)
def test_provision_lists_missing_fields_in_its_seed_table_order(
    status: DeviceStatus, kind: ModelKind, body: dict[str, Any], missing: list[str]
) -> None:
    device = record(status, **(MANUFACTURED if status is DeviceStatus.MANUFACTURED else {}))
    with pytest.raises(MissingAttributes) as raised:
        provision(device, body, kind=kind)
    assert raised.value.attrs == missing


def test_provision_of_a_manufactured_device_applies_the_product_fields() -> None:
    device = record(DeviceStatus.MANUFACTURED, **MANUFACTURED, manuf_model="m1", module_sw_version="2")
    body = {**PROVISION, "mac": "00-1a-2b-3c-4d-5e", "manuf_sn": "SN-1"}
    decision = provision(device, body)
    assert decision.outcome is Outcome.APPLIED
    assert decision.values == {
        "mac": "001a2b3c4d5e",
        "oem_model": "lamp",
        "oem_host_version": "1.0",
        "manuf_sn": "SN-1",
    }


def test_provision_may_repeat_a_factory_value_but_never_change_it() -> None:
    device = record(DeviceStatus.MANUFACTURED, **MANUFACTURED, manuf_model="m1", module_sw_version="2")
    with pytest.raises(ValidationFailed) as raised:
        provision(device, {**PROVISION, "hwsig": "sig-2", "dom_at": "2017/01/01 00:00:00 UTC"})
    assert raised.value.message.endswith(
        "hwsig does not match the manufactured value sig-1, "
        "dom_at does not match the manufactured value 2016/11/24 10:34:23 UTC"
    )


def test_white_box_provision_defaults_the_hwsig_and_checks_the_lines_oem() -> None:
    body = {**PROVISION, **MANUFACTURE, "manuf_model": "m1", "module_sw_version": "2", "hwsig": None}
    decision = provision(record(), body, kind=ModelKind.WHITE_BOX)
    assert decision.values["hwsig"] == "mac-001a2b3c4d5e"
    with pytest.raises(ValidationFailed, match="oem_id 0000aaaa is not your OEM"):
        provision(record(), body, kind=ModelKind.WHITE_BOX, line_oem_id="0000aaaa")


def test_black_box_provision_needs_a_manufactured_device() -> None:
    body = {**PROVISION, **MANUFACTURE, "manuf_model": "m1", "module_sw_version": "2"}
    with pytest.raises(ValidationFailed, match=f"device {DSN} is not manufactured yet"):
        provision(record(), body)


def test_provision_repeated_is_an_error_or_identical() -> None:
    done = record(
        DeviceStatus.PROVISIONED,
        **MANUFACTURED,
        manuf_model="m1",
        module_sw_version="2",
        oem_model="lamp",
        oem_host_version="1.0",
    )
    with pytest.raises(AlreadyProvisioned):
        provision(done, PROVISION)
    assert provision(done, PROVISION, repeat_is_error=False).outcome is Outcome.IDENTICAL

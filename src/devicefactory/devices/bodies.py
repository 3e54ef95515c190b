"""Typed bodies of the devices API, for its OpenAPI description (SPEC §4, §6).

The routes read the raw JSON themselves, so that the AFS errors come in the order the seed's
table requires (AFS-607 before AFS-601, ...); these models say what they read and what they
answer, and never reject a request. The device fields of every model are built from the
field table (``device_fields.FIELDS``): a new row there is a new property here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from devicefactory.device_fields import FIELDS, DeviceField, Kind, Role, in_order
from devicefactory.devices.search import DATE_BOUNDS, EXACT_FIELDS, FLAG_FIELDS, MAX_LIMIT, WILDCARD_FIELDS
from devicefactory.tables.devices import DeviceStatus

DSN = "AC000W000000001"
MODEL = "AY001MTP1"
MOMENT = "2016-11-24T10:34:23Z"


class _Body(BaseModel):
    """A request body: unknown keys are ignored (SPEC §4), so they are allowed here."""

    model_config = ConfigDict(extra="allow")


class _Answer(BaseModel):
    """A response body: exactly these keys, nulls included."""

    model_config = ConfigDict(extra="forbid")


# --- request bodies -------------------------------------------------------------------

# What each kind takes in a request, and its example (SPEC §4 "Field rules").
_FlagIn = bool | Literal[0, 1, "0", "1", "true", "false"]
_REQUEST_TYPES: dict[Kind, Any] = {Kind.TEXT: str, Kind.MAC: str, Kind.MOMENT: str, Kind.FLAG: _FlagIn}
_REQUEST_RULES = {
    Kind.TEXT: "text without control characters",
    Kind.MAC: "12 hex digits, `:` or `-` separators accepted",
    Kind.MOMENT: "`%Y/%m/%d %H:%M:%S UTC` (GMT too)",
    Kind.FLAG: 'true/false, 1/0 or "true"/"false"; null when unknown',
}
_REQUEST_EXAMPLES: dict[Kind, list[Any]] = {
    Kind.MAC: ["00:1a:2b:3c:4d:5e"],
    Kind.MOMENT: ["2016/11/24 10:34:23 UTC"],
    Kind.FLAG: [True],
}
_ROLE_NOTES = {
    Role.REQUIRED: "Required.",
    Role.REQUIRED_UNLESS_SET: "Required unless manufacture set it.",
    Role.OPTIONAL: "Optional.",
}


def _request_field(field: DeviceField, operation: str) -> tuple[Any, Any]:
    role: Role = getattr(field, operation)
    rule = "printable characters" if field.printable else _REQUEST_RULES[field.kind]
    notes = [f"{field.label}: {rule}.", _ROLE_NOTES[role]]
    if field.unique:
        notes.append("Unique over all devices.")
    if operation == "provision" and field.factory:
        notes.append("When manufacture set it, it must be the same value.")
    limits: dict[str, Any] = {}
    if field.kind is Kind.TEXT:
        limits["max_length"] = field.max_length
    if examples := _REQUEST_EXAMPLES.get(field.kind):
        limits["examples"] = examples
    kind = _REQUEST_TYPES[field.kind]
    if role is Role.REQUIRED:
        return kind, Field(description=" ".join(notes), **limits)
    return kind | None, Field(default=None, description=" ".join(notes), **limits)


def _request(name: str, operation: str, doc: str) -> type[BaseModel]:
    fields: dict[str, Any] = {field.name: _request_field(field, operation) for field in in_order(operation)}
    model_field = (str, Field(description="The device's module model (AFS-601 when not)", examples=[MODEL]))
    return create_model(name, __base__=_Body, __doc__=doc, model=model_field, **fields)


ManufactureRequest = _request(
    "ManufactureRequest",
    "manufacture",
    "What the module maker's line wrote into the module (an empty string or null is missing).",
)
ProvisionRequest = _request(
    "ProvisionRequest",
    "provision",
    "The product maker's data; its OEM becomes the device's owner (an empty string or null is missing).",
)


class ReserveRequest(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [{"model": MODEL, "count": 1}]})

    model: str = Field(description="A module model the caller may reserve", examples=[MODEL])
    count: int = Field(ge=1, le=1000, description="DSNs to reserve, one contiguous range", examples=[1])
    oem_id: str | None = Field(
        default=None, description="Ayla::Admin only: the OEM to reserve for (else the platform's)"
    )


class VerifyRequest(_Body):
    token: str = Field(
        description='Base64 of RSA-OAEP-SHA256(public_key, "<dsn>:<unix time>"), a time within 5 minutes'
    )


# --- answers --------------------------------------------------------------------------

_ANSWER_TYPES: dict[Kind, Any] = {Kind.TEXT: str, Kind.MAC: str, Kind.MOMENT: str, Kind.FLAG: bool}
_ANSWER_RULES = {Kind.MAC: "12 lowercase hex digits", Kind.MOMENT: "ISO 8601 UTC"}
_ANSWER_EXAMPLES: dict[Kind, list[Any]] = {Kind.MAC: ["001a2b3c4d5e"], Kind.MOMENT: [MOMENT]}


def _answer_fields(fields: tuple[DeviceField, ...]) -> dict[str, Any]:
    """Every answer carries each of ``fields``, null while no operation set it."""
    return {
        field.name: (
            _ANSWER_TYPES[field.kind] | None,
            Field(
                description=": ".join(filter(None, (field.label, _ANSWER_RULES.get(field.kind)))),
                examples=_ANSWER_EXAMPLES.get(field.kind),
            ),
        )
        for field in fields
    }


_IDENTITY: dict[str, Any] = {
    "dsn": (str, Field(examples=[DSN])),
    "model": (str, Field(description="The module model", examples=[MODEL])),
}
_OWNER: dict[str, Any] = {"oem": (str | None, Field(description="The owning OEM (set by provision)"))}
_MANUFACTURE_REPLY = tuple(field for field in FIELDS if field.manufacture_reply)
_PROVISION_REPLY = tuple(field for field in FIELDS if not field.manufacture_reply)

ManufacturedDevice = create_model(
    "ManufacturedDevice",
    __base__=_Answer,
    __doc__="The seed's device answer: identity and factory data.",
    **_IDENTITY,
    **_answer_fields(_MANUFACTURE_REPLY),
)
ProvisionedDevice = create_model(
    "ProvisionedDevice",
    __base__=_Answer,
    __doc__="The manufacture answer, the owner and the product's fields.",
    **_IDENTITY,
    **_answer_fields(_MANUFACTURE_REPLY),
    **_OWNER,
    **_answer_fields(_PROVISION_REPLY),
)
DeviceDetail = create_model(
    "DeviceDetail",
    __base__=_Answer,
    __doc__="Every field of a device (never its private key).",
    **_IDENTITY,
    **_answer_fields(FIELDS),
    **_OWNER,
    status=(DeviceStatus, ...),
    public_key=(str, Field(description="PKCS#1 PEM")),
    reserved_by=(str | None, Field(description="The OEM that reserved it")),
    reserve_action_id=(int | None, ...),
    reserved_at=(str | None, Field(examples=[MOMENT])),
    manufactured_at=(str | None, ...),
    provisioned_at=(str | None, ...),
    verified_at=(str | None, ...),
    last_job_failed=(bool, Field(description="Whether the device's latest job failed")),
)


class ReservedDevice(_Answer):
    dsn: str = Field(examples=[DSN])
    public_key: str = Field(description="PKCS#1 PEM (`-----BEGIN RSA PUBLIC KEY-----`)")


class Reservation(_Answer):
    device: ReservedDevice


ReserveAnswer = list[Reservation]


class ManufactureAnswer(_Answer):
    device: ManufacturedDevice


class ProvisionAnswer(_Answer):
    device: ProvisionedDevice


class DeviceAnswer(_Answer):
    device: DeviceDetail


class DevicePage(_Answer):
    devices: list[DeviceDetail]
    next_cursor: str | None = Field(description="`cursor` of the next page; null on the last page")


class ResetStep(_Answer):
    step: Literal["reset_template", "reset_device", "unregister_device", "reset_datapoints"]
    name: str = Field(examples=["Reset Template"])
    result: Literal["success", "failure"]
    message: str


class FactoryResetAnswer(_Answer):
    device: DeviceDetail
    steps: list[ResetStep] = Field(min_length=4, max_length=4)


class DeviceJob(_Answer):
    id: int
    dsn: str = Field(examples=[DSN])
    action_id: int | None = Field(description="The factory action it was part of, if any")
    operation: str = Field(examples=["manufacture", "provision", "verify", "factory_reset:reset_template"])
    result: Literal["success", "failure"]
    error_code: str | None = Field(examples=["AFS-607"])
    message: str | None
    created_by: str | None = Field(description="The caller's email")
    created_at: str = Field(examples=[MOMENT])


class JobsAnswer(_Answer):
    jobs: list[DeviceJob] = Field(description="Oldest first")


# --- the DSN View search's query parameters ---------------------------------------------


def search_parameters() -> list[dict[str, Any]]:
    """The search's query parameters (SPEC §6), for the route's ``openapi_extra``."""
    text = [
        _query(name, "Exact match" + (" (`*` and `?` are wildcards)" if name in WILDCARD_FIELDS else ""))
        for name in EXACT_FIELDS
    ]
    flags = [
        _query(name, "yes/no, true/false or 1/0", ["yes", "no", "true", "false", "1", "0"])
        for name in FLAG_FIELDS
    ]
    dates = [_query(name, "ISO 8601 date or date-time (UTC when naive)") for name in DATE_BOUNDS]
    controls = [
        _query("errors", "`failure`: the latest job failed", ["failure", "success"]),
        _query("action_id", "Devices the factory action named"),
        _query("limit", f"Devices per page, 1 to {MAX_LIMIT}"),
        _query("cursor", "`next_cursor` of the previous page"),
        _query("order", "DSN order", ["asc", "desc"]),
        _query("order_by", "Only `dsn`", ["dsn"]),
    ]
    likes = {f"{name}_like": {"type": "string"} for name in EXACT_FIELDS if name != "status"}
    ayla = {
        "name": "filter",
        "in": "query",
        "style": "deepObject",
        "explode": True,
        "description": "Ayla's form: `filter[<field>]` exact, `filter[<field>_like]` with `*`/`%` wildcards",
        "schema": {
            "type": "object",
            "properties": {name: {"type": "string"} for name in (*EXACT_FIELDS, *FLAG_FIELDS)} | likes,
        },
    }
    return [*text, *flags, *dates, *controls, ayla]


def _query(name: str, description: str, values: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if values:
        schema["enum"] = values
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

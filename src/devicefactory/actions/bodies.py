"""Typed bodies of the factory actions API, for its OpenAPI description (SPEC §6).

The upload form is read by ``http.bodies.parse_upload_form`` (AFS errors in the service's
order); these models say what it reads and what the routes answer. Answers mirror
``schemas.action_json`` and ``devices.schemas.device_json`` (tests/test_openapi.py checks
live answers against them).
"""

from __future__ import annotations

from typing import Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from devicefactory.tables.actions import ActionStatus, ActionType
from devicefactory.tables.devices import DeviceStatus

DSN = "AC000W000000001"
MOMENT = "2016-11-24T10:34:23Z"


class _Answer(BaseModel):
    """A response body: exactly these keys, nulls included."""

    model_config = ConfigDict(extra="forbid")


class UploadForm(BaseModel):
    """The multipart form of an upload (``multipart/form-data``)."""

    file: bytes = Field(
        description="A factory log (SPEC §7) or a CSV with a header row of API field names; "
        "for `retire`, one DSN a line (blank lines and `#` comments ignored) or a CSV with a `dsn` column"
    )
    type: Literal["manufacture", "provision", "retire"] = Field(examples=["manufacture"])
    validate_only: Literal["true", "false", "1", "0"] = Field(
        default="false", description="`true`: report what each line would do and apply nothing"
    )
    oem_host_version: str | None = Field(
        default=None,
        max_length=255,
        description="Used for provision lines that lack one",
        examples=["1.0"],
    )


class UploadInfo(_Answer):
    type: Literal["manufacture", "provision", "retire"]
    validate_only: bool
    file_name: str = Field(examples=["line7.log"])
    format: Literal["log", "csv", "dsns"] | None = Field(
        description="As read from the file (`dsns`: a retire upload's DSN list)"
    )


@with_config(ConfigDict(extra="forbid"))
class Progress(TypedDict):
    """Lines worked so far and how many got each outcome (SPEC §7)."""

    lines_total: int
    lines_done: int
    applied: NotRequired[int]  # a submit (and a reserve)
    would_apply: NotRequired[int]  # a validate-only upload: what submit would apply
    identical: int
    conflict: int
    invalid: int
    skipped: int


@with_config(ConfigDict(extra="forbid"))
class ActionFiles(TypedDict):
    """Download paths of the action's files (`GET` them; SPEC §6)."""

    csv: str
    log: str
    xml: NotRequired[str]  # reserve: the DSN bundle, encrypted to the OEM's certificate
    failed: NotRequired[str]  # upload: the failed lines, to fix and upload again


class FactoryAction(_Answer):
    id: int = Field(examples=[42])
    type: ActionType
    status: ActionStatus
    count: int = Field(description="Devices of the action")
    oem_id: str | None = Field(examples=["0dfc7900"])
    model: str | None = Field(description="The reserved model (reserve)", examples=["AY001MTP1"])
    created_by: str = Field(description="The creator's email", examples=["operator@example.com"])
    created_at: str = Field(description="ISO 8601 UTC", examples=[MOMENT])
    started_at: str | None = Field(examples=[MOMENT])
    finished_at: str | None = Field(examples=[MOMENT])
    message: str | None
    upload: UploadInfo | None = Field(description="null for a reserve")
    progress: Progress
    files: ActionFiles


class ActionEnvelope(_Answer):
    factory_action: FactoryAction


class ActionPage(_Answer):
    factory_actions: list[FactoryAction]
    next_cursor: int | None = Field(description="`cursor` of the next page; null on the last page")


class ActionDevice(_Answer):
    """A device of the action, every field (``devices.schemas.device_json``)."""

    dsn: str = Field(examples=[DSN])
    model: str = Field(examples=["AY001MTP1"])
    mac: str | None = Field(description="12 lowercase hex digits", examples=["123456789abc"])
    hwsig: str | None
    odm: str | None
    manuf_model: str | None
    manuf_sn: str | None
    module_sw_version: str | None
    oem_host_version: str | None
    wifi_setup_key: str | None
    ads_connect_flag: bool | None
    dom_at: str | None = Field(description="ISO 8601 UTC", examples=[MOMENT])
    oem: str | None = Field(description="The owning OEM (set by provision)")
    oem_model: str | None
    status: DeviceStatus
    public_key: str = Field(description="PKCS#1 PEM")
    reserved_by: str | None
    reserve_action_id: int | None
    reserved_at: str | None = Field(examples=[MOMENT])
    manufactured_at: str | None
    provisioned_at: str | None
    verified_at: str | None
    last_job_failed: bool


class ActionDetail(_Answer):
    factory_action: FactoryAction
    devices: list[ActionDevice] = Field(description="Paged by DSN: `after` is the last DSN of a page")

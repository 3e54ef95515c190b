"""OpenAPI for routes that read their own bodies: request schemas and AFS error answers.

The routes parse bodies themselves, in the order the AFS errors require (a malformed body
is AFS-600 in the seed's form before any field is looked at), so a typed body is declared
for the documentation only and never rejects a request:

    @router.post(
        "/things",
        response_model=None,  # the route returns the JSON it builds; the model documents it
        responses={201: {"model": ThingEnvelope}, **afs_errors(Unauthorized(), Conflict("..."))},
        openapi_extra=request_body(ThingCreate),
    )

- ``request_body(*models)``: the ``openapi_extra`` of a JSON (or multipart) body, one
  schema or any of several (``{"thing": {...}}`` or the flat ``{...}``), ``$defs`` inlined;
- ``text_request_body(...)``: the same for a text body (a PEM certificate);
- ``afs_errors(*examples)``: ``responses`` entries for the AFS errors a route can answer,
  grouped by HTTP status, each with its code and message as an example;
- ``AfsErrorBody``: the one error shape, ``{"error": [{"code": "AFS-...", "message": "..."}]}``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from devicefactory.errors import ServiceError


class AfsError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="`AFS-` and a number", examples=["AFS-600"])
    message: str = Field(
        examples=["There were some failures while processing: mac is already taken, hwsig is already taken"]
    )


class AfsErrorBody(BaseModel):
    """Every error the service answers, whatever its status."""

    model_config = ConfigDict(extra="forbid")

    error: list[AfsError] = Field(min_length=1, max_length=1)


def request_body(
    *models: type[BaseModel], media_type: str = "application/json", description: str | None = None
) -> dict[str, Any]:
    """``openapi_extra`` that documents ``models`` (any one of them) as the request body.

    The first model's first ``examples`` entry is the body's example.
    """
    schemas = [inline_schema(model) for model in models]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    content: dict[str, Any] = {"schema": schema}
    if examples := schemas[0].get("examples"):
        content["example"] = examples[0]
    body: dict[str, Any] = {"required": True, "content": {media_type: content}}
    if description:
        body["description"] = description
    return {"requestBody": body}


def text_request_body(
    description: str, example: str, media_types: Sequence[str] = ("text/plain",)
) -> dict[str, Any]:
    """``openapi_extra`` that documents a UTF-8 text request body."""
    content = {media: {"schema": {"type": "string"}, "example": example} for media in media_types}
    return {"requestBody": {"required": True, "description": description, "content": content}}


def afs_errors(*examples: ServiceError) -> dict[int | str, dict[str, Any]]:
    """``responses`` entries for these errors: per status the error body, each code's example."""
    responses: dict[int | str, dict[str, Any]] = {}
    codes: dict[int, list[str]] = {}
    for error in examples:
        entry = responses.setdefault(
            error.status_code,
            {"model": AfsErrorBody, "content": {"application/json": {"examples": {}}}},
        )
        named: dict[str, Any] = entry["content"]["application/json"]["examples"]
        name = error.code if error.code not in named else f"{error.code} ({len(named) + 1})"
        named[name] = {"summary": error.message, "value": {"error": [error.as_dict()]}}
        seen = codes.setdefault(error.status_code, [])
        if error.code not in seen:
            seen.append(error.code)
        entry["description"] = f"{HTTPStatus(error.status_code).phrase}: {', '.join(seen)}"
    return responses


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its ``$defs`` inlined: an operation's ``requestBody``
    cannot reach ``#/$defs/...``, and these models are never recursive."""
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            return {**resolve(copy.deepcopy(defs[ref.removeprefix("#/$defs/")])), **resolve(siblings)}
        return {key: resolve(value) for key, value in node.items()}

    resolved: dict[str, Any] = resolve(schema)
    return resolved

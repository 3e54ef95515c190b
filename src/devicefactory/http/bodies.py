"""Request bodies: JSON objects, text, the multipart upload form."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, BinaryIO

from fastapi import Depends, Request
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from devicefactory.errors import MalformedRequest, MissingAttributes, ValidationFailed


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; anything else is AFS-600 (§4)."""
    body = await request.body()
    try:
        parsed = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedRequest("malformed JSON: the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise MalformedRequest("the request body must be a JSON object")
    # Only a \\uD800-\\uDFFF escape can produce one, so most bodies skip the walk.
    if _SURROGATE_ESCAPE.search(body) and not _encodable(parsed):
        raise MalformedRequest("malformed JSON: a string holds an unpaired surrogate (\\ud800-\\udfff)")
    return parsed


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _encodable(value: object) -> bool:
    """JSON may spell lone surrogates that no UTF-8 text (or database) can hold."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


JsonBody = Annotated[dict[str, Any], Depends(json_object)]


async def text_body(request: Request) -> str:
    body = await request.body()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("the request body must be UTF-8 text") from None


TextBody = Annotated[str, Depends(text_body)]


@dataclass
class UploadForm:
    type: str
    validate_only: bool
    file_name: str
    stream: BinaryIO
    oem_host_version: str | None
    form: FormData

    async def close(self) -> None:
        await self.form.close()


async def parse_upload_form(request: Request) -> UploadForm:
    """The multipart upload form; Starlette spools the file to disk past 1 MB."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ValidationFailed.of(["the upload must be multipart/form-data with a file field"])
    try:
        form = await request.form(max_files=1, max_fields=10)
    except StarletteHTTPException as error:
        raise ValidationFailed.of([f"malformed multipart body: {error.detail}"]) from None
    upload = form.get("file")
    flag = str(form.get("validate_only") or "false").strip().lower()
    if upload is None or isinstance(upload, str) or flag not in ("true", "false", "1", "0"):
        await form.close()
        if upload is None or isinstance(upload, str):
            raise MissingAttributes(["file"])
        raise ValidationFailed.of(["validate_only must be true or false"])
    version = form.get("oem_host_version")
    return UploadForm(
        type=str(form.get("type") or "").strip(),
        validate_only=flag in ("true", "1"),
        file_name=upload.filename or "upload",
        stream=upload.file,
        oem_host_version=version.strip() if isinstance(version, str) and version.strip() else None,
        form=form,
    )


def section(body: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested object such as ``{"user": {...}}``; AFS-600 when it is not an object."""
    value = body.get(key)
    if not isinstance(value, dict):
        raise MalformedRequest(f"'{key}' must be a JSON object")
    return value

"""The reference: a bare FastAPI app with one JSON POST endpoint and nothing else."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, FastAPI

app = FastAPI()


@app.post("/echo")
async def echo(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Parse the JSON body and answer a small JSON object."""
    return {"ok": True, "mac": body.get("mac")}

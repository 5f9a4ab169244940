"""Artifacts: a device uploads a command's file with its one-time token; operators download it with an API key."""

import hashlib
import os
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials

from controller.api.auth import Reader, bearer
from controller.api.deps import services
from controller.errors import NotFound, TooLarge, Unauthorized
from shared.topics import validate_id

router = APIRouter(prefix="/v0")

ARTIFACT_PATH = "/operations/{operation_id}/devices/{device_id}/artifact"
CHUNK = 1024 * 1024


@router.put(ARTIFACT_PATH, status_code=201, responses={401: {}, 413: {}})
async def upload_artifact(
    operation_id: str,
    device_id: str,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> dict[str, object]:
    """Called by the agent with the token its command carried; the file is streamed to disk and hashed."""
    found = services(request)
    command_id = None
    if credentials is not None:
        command_id = found.store.artifacts.command_for_token(operation_id, device_id, credentials.credentials)
    if command_id is None:
        raise Unauthorized("invalid or already used artifact upload token")
    validate_id(command_id, "command id")
    found.artifact_dir.mkdir(parents=True, exist_ok=True)
    final = found.artifact_dir / command_id
    partial = final.with_suffix(".part")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > found.max_artifact_bytes:
                    raise TooLarge(f"artifact exceeds the {found.max_artifact_bytes}-byte limit")
                digest.update(chunk)
                file.write(chunk)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    content_type = request.headers.get("content-type", "application/octet-stream")
    found.store.artifacts.record_upload(
        command_id, path=str(final), size_bytes=size, sha256=digest.hexdigest(), content_type=content_type
    )
    return {"size_bytes": size, "sha256": digest.hexdigest(), "content_type": content_type}


@router.get(ARTIFACT_PATH, response_class=FileResponse, responses={404: {}})
async def download_artifact(operation_id: str, device_id: str, request: Request, _: Reader) -> FileResponse:
    record = services(request).store.artifacts.find(operation_id, device_id)
    if record is None:
        raise NotFound(f"device {device_id!r} has uploaded no artifact for operation {operation_id!r}")
    return FileResponse(
        record.path,
        media_type=record.content_type,
        filename=f"{device_id}-{record.command_id}",
        headers={"X-Content-SHA256": record.sha256},
    )

"""Artifacts: a device uploads a command's file with its one-time token; operators download it with an API key."""

import hashlib
import logging
import os
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from controller.api.auth import Reader
from controller.api.contract import errors
from controller.api.deps import services
from controller.errors import NotFound, TooLarge, Unauthorized
from controller.store.space import is_full
from shared.topics import validate_id

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v0")

ARTIFACT_PATH = "/operations/{operation_id}/devices/{device_id}/artifact"
CHUNK = 1024 * 1024
ANY_FILE = {"*/*": {"schema": {"type": "string", "format": "binary"}}}

upload_token = HTTPBearer(
    auto_error=False, scheme_name="UploadToken", description="The one-time upload token the device's command carried."
)


class ArtifactOut(BaseModel):
    size_bytes: int
    sha256: str
    content_type: str


@router.put(
    ARTIFACT_PATH,
    status_code=201,
    summary="Upload a command's file (called by the agent)",
    responses=errors(401, 413, 507),
    openapi_extra={"requestBody": {"content": ANY_FILE, "required": False}},
)
async def upload_artifact(
    operation_id: str,
    device_id: str,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(upload_token)],
) -> ArtifactOut:
    """Called by the agent with the token its command carried; the file is streamed to disk and hashed."""
    found = services(request)
    command_id = None
    if credentials is not None:
        token = credentials.credentials
        command_id = await found.database.read(
            lambda store: store.artifacts.command_for_token(operation_id, device_id, token)
        )
    if command_id is None:
        raise Unauthorized("invalid or already used artifact upload token")
    validate_id(command_id, "command id")
    final = found.artifact_dir / command_id
    partial = final.with_suffix(".part")
    digest, size = hashlib.sha256(), 0
    try:
        found.artifact_dir.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as file:
            async for chunk in request.stream():
                size += len(chunk)
                if size > found.max_artifact_bytes:
                    raise TooLarge(f"artifact exceeds the {found.max_artifact_bytes}-byte limit")
                digest.update(chunk)
                file.write(chunk)
        os.replace(partial, final)
    except OSError as err:
        if not is_full(err):
            raise
        raise found.space.full(err) from err
    finally:
        partial.unlink(missing_ok=True)
    content_type = request.headers.get("content-type", "application/octet-stream")
    uploaded = command_id
    await found.database.write(
        lambda store: store.artifacts.record_upload(
            uploaded, path=str(final), size_bytes=size, sha256=digest.hexdigest(), content_type=content_type
        )
    )
    return ArtifactOut(size_bytes=size, sha256=digest.hexdigest(), content_type=content_type)


SHA256_HEADER = {"X-Content-SHA256": {"description": "The file's SHA-256, hex.", "schema": {"type": "string"}}}


@router.get(
    ARTIFACT_PATH,
    response_class=FileResponse,
    summary="Download the file a device uploaded",
    responses={200: {"content": ANY_FILE, "headers": SHA256_HEADER}, **errors(401, 404)},
)
async def download_artifact(operation_id: str, device_id: str, request: Request, _: Reader) -> FileResponse:
    record = await services(request).database.read(lambda store: store.artifacts.find(operation_id, device_id))
    if record is None:
        raise NotFound(f"device {device_id!r} has uploaded no artifact for operation {operation_id!r}")
    try:
        # Stat here, not in FileResponse: a file removed from disk is then a 404, not an error mid-response.
        found = os.stat(record.path)
    except OSError as err:
        log.warning("the artifact of command %s is missing from disk: %s", record.command_id, err)
        raise NotFound(
            f"the artifact device {device_id!r} uploaded for operation {operation_id!r} is no longer on the "
            "controller's disk"
        ) from err
    return FileResponse(
        record.path,
        media_type=record.content_type,
        filename=f"{device_id}-{record.command_id}",
        headers={"X-Content-SHA256": record.sha256},
        stat_result=found,
    )

"""Uploads a command's artifact to the controller over HTTP, with the one-time token the command carried."""

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from agent.errors import HandlerError
from shared.messages import ArtifactUpload

UPLOAD_TIMEOUT_S = 300.0


async def upload_artifact(spec: ArtifactUpload, path: Path, content_type: str) -> dict[str, Any]:
    """PUT the file and return what the controller stored (size and sha256) plus its download path."""

    def put() -> dict[str, Any]:
        size = path.stat().st_size
        if size > spec.max_bytes:
            raise HandlerError(f"the artifact is {size} bytes; the controller accepts at most {spec.max_bytes}")
        with path.open("rb") as body:
            request = urllib.request.Request(
                str(spec.url),
                data=body,
                method="PUT",
                headers={
                    "Authorization": f"Bearer {spec.token}",
                    "Content-Type": content_type,
                    "Content-Length": str(size),
                },
            )
            with urllib.request.urlopen(request, timeout=UPLOAD_TIMEOUT_S) as response:
                stored: dict[str, Any] = json.load(response)
                return stored

    try:
        stored = await asyncio.to_thread(put)
    except urllib.error.HTTPError as err:
        raise HandlerError(f"artifact upload failed: HTTP {err.code}: {_message(err)}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise HandlerError(f"artifact upload to {spec.url.host} failed: {reason}") from err
    return {**stored, "download_path": spec.url.path}


def _message(err: urllib.error.HTTPError) -> str:
    try:
        return str(json.load(err).get("message", err.reason))
    except (ValueError, AttributeError, OSError):
        return str(err.reason)

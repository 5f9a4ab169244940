"""CAPTURE_SCREENSHOT, COLLECT_LOGS, REQUEST_DPCLOG and REQUEST_BUGREPORT: make a file on the device and upload it
to the controller."""

import asyncio
import gzip
import shutil
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, ClassVar, Protocol

from agent.errors import HandlerError
from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import AgentLog, Logs, Screenshots
from agent.upload import upload_artifact
from shared.arguments import NoArguments
from shared.arguments.diagnostics import LogsArguments
from shared.messages import ArtifactUpload
from shared.operations import OperationType

MAGIC_TYPES = ((b"\x89PNG", "image/png"), (b"\x1f\x8b", "application/gzip"), (b"PK\x03\x04", "application/zip"))


def content_type(path: Path) -> str | None:
    """Known by the file's first bytes, since the platform decides the format (zip on Android, tar.gz on Linux).

    None if there is no file or it is empty.
    """
    try:
        with path.open("rb") as file:
            head = file.read(8)
    except FileNotFoundError:
        return None
    if not head:
        return None
    return next((kind for magic, kind in MAGIC_TYPES if head.startswith(magic)), "application/octet-stream")


def gzip_file(source: Path, target: Path) -> None:
    with source.open("rb") as plain, gzip.open(target, "wb") as packed:
        shutil.copyfileobj(plain, packed)


def _upload_spec(context: HandlerContext[Any]) -> ArtifactUpload:
    """Checked before any work is done: without somewhere to send the file, making it would be pointless."""
    spec = context.command.artifact_upload
    if spec is None:
        raise HandlerError(
            f"{context.command.operation_type} needs an artifact upload URL, which only commands sent by the "
            "controller carry"
        )
    return spec


class LogWriter(Protocol):
    """`collect_logs` or `collect_agent_log`: writes `since_minutes` of a log, at most `max_lines` lines, as text."""

    def __call__(self, destination: Path, *, since_minutes: int, max_lines: int) -> Awaitable[None]: ...


async def _send_log(
    context: HandlerContext[Any], name: str, arguments: LogsArguments, write_log: LogWriter
) -> dict[str, Any]:
    """Write the log to `name` in the work directory, gzip it and upload it."""
    spec = _upload_spec(context)
    text = context.work_dir / name
    await write_log(text, since_minutes=arguments.since_minutes, max_lines=arguments.max_lines)
    packed = context.work_dir / f"{name}.gz"
    await asyncio.to_thread(gzip_file, text, packed)
    return await _send(context, spec, packed)


async def _send(context: HandlerContext[Any], spec: ArtifactUpload, path: Path) -> dict[str, Any]:
    kind = await asyncio.to_thread(content_type, path)
    if kind is None:
        raise HandlerError(f"{context.command.operation_type} produced no file")
    return {"artifact": await upload_artifact(spec, path, kind)}


class ScreenshotHandler(Handler[NoArguments, Screenshots]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.CAPTURE_SCREENSHOT})
    cancellable: ClassVar[bool] = True

    async def run(self, arguments: NoArguments, context: HandlerContext[Screenshots]) -> dict[str, Any]:
        spec = _upload_spec(context)
        path = context.work_dir / "screenshot.png"
        await context.platform.capture_screenshot(path)
        return await _send(context, spec, path)


class LogsHandler(Handler[LogsArguments, Logs]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.COLLECT_LOGS})
    cancellable: ClassVar[bool] = True

    async def run(self, arguments: LogsArguments, context: HandlerContext[Logs]) -> dict[str, Any]:
        return await _send_log(context, "logs.txt", arguments, context.platform.collect_logs)


class AgentLogHandler(Handler[LogsArguments, AgentLog]):
    """The agent's own log (its unit's journal), as COLLECT_LOGS sends the system's."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.REQUEST_DPCLOG})
    cancellable: ClassVar[bool] = True

    async def run(self, arguments: LogsArguments, context: HandlerContext[AgentLog]) -> dict[str, Any]:
        return await _send_log(context, "agent-log.txt", arguments, context.platform.collect_agent_log)


class BugreportHandler(Handler[NoArguments, Logs]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.REQUEST_BUGREPORT})
    cancellable: ClassVar[bool] = True

    async def run(self, arguments: NoArguments, context: HandlerContext[Logs]) -> dict[str, Any]:
        spec = _upload_spec(context)
        destination = context.work_dir / "bugreport"
        await context.platform.bugreport(destination)
        return await _send(context, spec, destination)

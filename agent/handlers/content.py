"""SYNC_CONTENT and INSTALL_OTA: files fetched over HTTP(S), kept in the content directory or installed."""

from pathlib import Path
from typing import Any, ClassVar

from agent.download import DOWNLOAD_TIMEOUT_S, MAX_DOWNLOAD_BYTES, fetch, file_name
from agent.errors import HandlerError
from agent.handlers.base import Handler, HandlerContext, PlatformTools
from agent.platforms.contract import SystemUpdate
from shared.arguments.apps import OtaArguments, SyncContentArguments
from shared.operations import OperationType, Platform


class SyncContentHandler(Handler[SyncContentArguments, object]):
    """Keeps files under `content_dir`, by default `<state_dir>/content` (work dirs are `<state_dir>/work/<id>`)."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SYNC_CONTENT})
    cancellable: ClassVar[bool] = True

    def __init__(
        self,
        content_dir: Path | None = None,
        *,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        download_timeout_s: float = DOWNLOAD_TIMEOUT_S,
    ) -> None:
        self.content_dir = content_dir
        self.max_download_bytes = max_download_bytes
        self.download_timeout_s = download_timeout_s

    def supports(self, platform: PlatformTools) -> bool:
        # The content directory is the agent's own; it is on the device only when the agent runs there.
        return platform.kind is Platform.LINUX

    async def run(self, arguments: SyncContentArguments, context: HandlerContext[object]) -> dict[str, Any]:
        content_dir = (self.content_dir or context.state_dir / "content").resolve()
        destination = content_dir / arguments.path
        # The arguments refuse `..`; this also catches a symbolic link inside the directory that leads out of it,
        # before mkdir could follow one.
        if not destination.resolve().is_relative_to(content_dir):
            raise HandlerError(f"path {arguments.path!r} leads outside the content directory {content_dir}")
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise HandlerError(f"cannot create {destination.parent}: {err.strerror or err}") from err
        fetched = await fetch(
            arguments.file, destination, max_bytes=self.max_download_bytes, timeout_s=self.download_timeout_s
        )
        return {"path": str(fetched.path), "size_bytes": fetched.size_bytes, "sha256": fetched.sha256}


class InstallOtaHandler(Handler[OtaArguments, SystemUpdate]):
    """INSTALL_OTA, and DEPLOY_SYSTEM_OTA, which on a device Tether manages is the same: a system update bundle."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset(
        {OperationType.INSTALL_OTA, OperationType.DEPLOY_SYSTEM_OTA}
    )

    def __init__(
        self, *, max_download_bytes: int = MAX_DOWNLOAD_BYTES, download_timeout_s: float = DOWNLOAD_TIMEOUT_S
    ) -> None:
        self.max_download_bytes = max_download_bytes
        self.download_timeout_s = download_timeout_s

    async def run(self, arguments: OtaArguments, context: HandlerContext[SystemUpdate]) -> dict[str, Any]:
        fetched = await fetch(
            arguments.file,
            context.work_dir / file_name(arguments.file),
            max_bytes=self.max_download_bytes,
            timeout_s=self.download_timeout_s,
        )
        try:
            await context.platform.install_update(fetched.path)
        finally:
            fetched.path.unlink(missing_ok=True)  # bundles are large; the work directory is kept
        return {"file": fetched.path.name, "size_bytes": fetched.size_bytes, "sha256": fetched.sha256}

"""INSTALL, INSTALL_APP, UNINSTALL, UNINSTALL_APP and REFRESH_APPLIST: packages and apps on the device."""

from typing import Any, ClassVar, cast

from agent.download import DOWNLOAD_TIMEOUT_S, MAX_DOWNLOAD_BYTES, fetch, file_name
from agent.errors import UnsupportedOperation
from agent.handlers.base import Handler, HandlerContext, PlatformTools
from agent.platforms.contract import AppFiles, PackageInstall, PackageListing, PackageRemoval
from shared.arguments.apps import InstallAppArguments, InstallArguments, PackageSpec, UninstallArguments
from shared.operations import OperationType

LISTED_PACKAGES = 5000
"""At most this many packages travel in a result or the inventory; `count` always says how many there are."""


def _specs(packages: list[PackageSpec]) -> list[dict[str, str | None]]:
    return [{"name": spec.name, "version": spec.version} for spec in packages]


class InstallHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.INSTALL})
    needs: ClassVar[type[Any]] = PackageInstall

    async def run(self, arguments: InstallArguments, context: HandlerContext) -> dict[str, Any]:
        await cast(PackageInstall, context.platform).install_packages(arguments.packages)
        return {"installed": _specs(arguments.packages)}


class InstallAppHandler(Handler):
    """INSTALL_APP by name from the package manager, or from a downloaded file checked against its SHA-256."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.INSTALL_APP})
    needs: ClassVar[type[Any]] = AppFiles

    def __init__(
        self, *, max_download_bytes: int = MAX_DOWNLOAD_BYTES, download_timeout_s: float = DOWNLOAD_TIMEOUT_S
    ) -> None:
        self.max_download_bytes = max_download_bytes
        self.download_timeout_s = download_timeout_s

    def supports(self, platform: PlatformTools) -> bool:
        return isinstance(platform, AppFiles | PackageInstall)

    async def run(self, arguments: InstallAppArguments, context: HandlerContext) -> dict[str, Any]:
        platform = context.platform
        if arguments.packages is not None:
            if not isinstance(platform, PackageInstall):
                raise UnsupportedOperation(f"installing apps by name is not supported on {platform.kind}; send a file")
            await platform.install_packages(arguments.packages)
            return {"installed": _specs(arguments.packages)}
        if not isinstance(platform, AppFiles):
            raise UnsupportedOperation(f"installing an app from a file is not supported on {platform.kind}")
        assert arguments.file is not None  # InstallAppArguments holds exactly one of the two
        fetched = await fetch(
            arguments.file,
            context.work_dir / file_name(arguments.file),
            max_bytes=self.max_download_bytes,
            timeout_s=self.download_timeout_s,
        )
        try:
            await platform.install_app_file(fetched.path)
        finally:
            fetched.path.unlink(missing_ok=True)
        return {"file": fetched.path.name, "size_bytes": fetched.size_bytes, "sha256": fetched.sha256}


class UninstallHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset(
        {OperationType.UNINSTALL, OperationType.UNINSTALL_APP}
    )
    needs: ClassVar[type[Any]] = PackageRemoval

    async def run(self, arguments: UninstallArguments, context: HandlerContext) -> dict[str, Any]:
        await cast(PackageRemoval, context.platform).remove_packages(arguments.packages)
        return {"removed": list(arguments.packages)}


class RefreshAppListHandler(Handler):
    """REFRESH_APPLIST: report what is installed, and put it into the device's inventory."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.REFRESH_APPLIST})
    needs: ClassVar[type[Any]] = PackageListing

    async def run(self, arguments: object, context: HandlerContext) -> dict[str, Any]:
        packages = await cast(PackageListing, context.platform).list_packages()
        listed = packages[:LISTED_PACKAGES]
        await context.update_inventory({"packages": listed, "package_count": len(packages)})
        return {"packages": listed, "count": len(packages), "truncated": len(listed) < len(packages)}

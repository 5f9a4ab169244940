"""INSTALL, INSTALL_APP, UNINSTALL, UNINSTALL_APP and REFRESH_APPLIST: packages and apps on the device."""

from dataclasses import dataclass
from typing import Any, ClassVar

from agent.download import DOWNLOAD_TIMEOUT_S, MAX_DOWNLOAD_BYTES, fetch, file_name, without_query
from agent.errors import HandlerError, UnsupportedOperation
from agent.handlers.base import ArgumentsT, Handler, HandlerContext, PlatformT, PlatformTools
from agent.platforms.contract import AppFiles, PackageInstall, PackageListing, PackageRemoval
from shared.arguments import NoArguments
from shared.arguments.apps import (
    InstallAppArguments,
    InstallArguments,
    PackageSpec,
    SimpleInstallArguments,
    UninstallArguments,
)
from shared.operations import OperationType

LISTED_PACKAGES = 5000
"""At most this many packages travel in a result or the inventory; `count` always says how many there are."""

REPOSITORY = "repository"
"""Where a package without a `url` came from, in its outcome."""


@dataclass(slots=True)
class _Outcome:
    """What became of one package of an install."""

    spec: PackageSpec
    reason: str | None = None
    """Why nothing (or not the package asked for) is installed; None while all is well."""
    sha256: str | None = None
    installed_version: str | None = None

    def fail(self, err: HandlerError) -> None:
        self.reason = self.reason or str(err)

    def shown(self) -> dict[str, Any]:
        spec = self.spec
        shown: dict[str, Any] = {
            "name": spec.name,
            "version": spec.version,
            "software_type": spec.software_type,
            "source": REPOSITORY if spec.url is None else without_query(str(spec.url)),
            "status": "SUCCESSFUL" if self.reason is None else "FAILED",
            "installed_version": self.installed_version,
        }
        if self.sha256 is not None:
            shown["sha256"] = self.sha256
        if self.reason is not None:
            shown["reason"] = self.reason
        return shown


class _PackageInstaller(Handler[ArgumentsT, PlatformT]):
    """Installs packages from the repositories or, those with a `url`, from a downloaded file."""

    def __init__(
        self, *, max_download_bytes: int = MAX_DOWNLOAD_BYTES, download_timeout_s: float = DOWNLOAD_TIMEOUT_S
    ) -> None:
        self.max_download_bytes = max_download_bytes
        self.download_timeout_s = download_timeout_s

    async def install(
        self, platform: PackageInstall, packages: list[PackageSpec], context: HandlerContext[Any]
    ) -> dict[str, Any]:
        """Install each package and say what happened to each, as the result.

        A package that fails (a software type the device lacks, a failed download, a file that holds another package
        or version) has nothing installed for it and does not stop the others; any failure fails the command, with
        the outcomes riding along.
        """
        outcomes = [_Outcome(spec) for spec in packages]
        for outcome in outcomes:
            try:
                platform.check_software_type(outcome.spec.software_type)
            except HandlerError as err:
                outcome.fail(err)
        from_repositories = [outcome for outcome in outcomes if outcome.spec.url is None and outcome.reason is None]
        # One run per software type, so that one package manager failing fails only its own packages.
        for software_type in dict.fromkeys(outcome.spec.software_type for outcome in from_repositories):
            batch = [outcome for outcome in from_repositories if outcome.spec.software_type == software_type]
            try:
                await platform.install_packages([outcome.spec for outcome in batch])
            except HandlerError as err:
                for outcome in batch:
                    outcome.fail(err)
        for outcome in outcomes:
            if outcome.spec.url is not None and outcome.reason is None:
                try:
                    await self._install_file(platform, outcome, context)
                except HandlerError as err:
                    outcome.fail(err)
        await self._check_installed(platform, [outcome for outcome in outcomes if outcome.reason is None])
        result = {"installed": [outcome.shown() for outcome in outcomes]}
        failed = [outcome for outcome in outcomes if outcome.reason is not None]
        if failed:
            reasons = "; ".join(f"{outcome.spec.name}: {outcome.reason}" for outcome in failed)
            count = f"{len(failed)} of {len(outcomes)} packages failed: " if len(outcomes) > 1 else ""
            raise HandlerError(count + reasons, result=result)
        return result

    async def _install_file(self, platform: PackageInstall, outcome: _Outcome, context: HandlerContext[Any]) -> None:
        file = outcome.spec.file()
        assert file is not None  # only a package with a url comes here
        fetched = await fetch(
            file,
            context.work_dir / file_name(file),
            max_bytes=self.max_download_bytes,
            timeout_s=self.download_timeout_s,
        )
        outcome.sha256 = fetched.sha256
        try:
            await platform.install_package_file(fetched.path, outcome.spec)
        finally:
            fetched.path.unlink(missing_ok=True)

    async def _check_installed(self, platform: PackageInstall, outcomes: list[_Outcome]) -> None:
        """Read back what the package managers installed; a file's package must be there, at the version asked for.

        From the repositories the package manager itself holds to the name and pinned version, and a name may be a
        virtual one that installs another package (or dnf's `jq-1.6` installs 1.6-2), so only a file's is checked.
        """
        for software_type in dict.fromkeys(outcome.spec.software_type for outcome in outcomes):
            same_type = [outcome for outcome in outcomes if outcome.spec.software_type == software_type]
            try:
                versions = await platform.installed_versions(software_type)
            except HandlerError as err:
                for outcome in same_type:
                    if outcome.spec.url is not None:
                        outcome.reason = f"cannot read back what is installed: {err}"
                continue
            for outcome in same_type:
                spec = outcome.spec
                outcome.installed_version = versions.get(spec.name)
                if spec.url is None:
                    continue
                if outcome.installed_version is None:
                    outcome.reason = "not installed, though the package manager succeeded"
                elif spec.version not in (None, outcome.installed_version):
                    outcome.reason = f"installed version is {outcome.installed_version}, not {spec.version}"


class InstallHandler(_PackageInstaller[InstallArguments, PackageInstall]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.INSTALL})

    async def run(self, arguments: InstallArguments, context: HandlerContext[PackageInstall]) -> dict[str, Any]:
        return await self.install(context.platform, arguments.packages, context)


class InstallAppHandler(_PackageInstaller[InstallAppArguments | SimpleInstallArguments, PlatformTools]):
    """INSTALL_APP by name from the package manager, or from a downloaded file checked against its SHA-256;
    SIMPLE_INSTALL, from a file only."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset(
        {OperationType.INSTALL_APP, OperationType.SIMPLE_INSTALL}
    )

    def supports(self, platform: PlatformTools) -> bool:
        return isinstance(platform, AppFiles | PackageInstall)

    async def run(
        self, arguments: InstallAppArguments | SimpleInstallArguments, context: HandlerContext[PlatformTools]
    ) -> dict[str, Any]:
        platform = context.platform
        if isinstance(arguments, InstallAppArguments) and arguments.packages is not None:
            if not isinstance(platform, PackageInstall):
                raise UnsupportedOperation(f"installing apps by name is not supported on {platform.kind}; send a file")
            return await self.install(platform, arguments.packages, context)
        if not isinstance(platform, AppFiles):
            raise UnsupportedOperation(f"installing an app from a file is not supported on {platform.kind}")
        assert arguments.file is not None  # InstallAppArguments holds exactly one of `packages` and `file`
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


class UninstallHandler(Handler[UninstallArguments, PackageRemoval]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset(
        {OperationType.UNINSTALL, OperationType.UNINSTALL_APP}
    )

    async def run(self, arguments: UninstallArguments, context: HandlerContext[PackageRemoval]) -> dict[str, Any]:
        await context.platform.remove_packages(arguments.packages, arguments.software_type)
        return {"removed": list(arguments.packages)}


class RefreshAppListHandler(Handler[NoArguments, PackageListing]):
    """REFRESH_APPLIST: report what is installed, and put it into the device's inventory."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.REFRESH_APPLIST})

    async def run(self, arguments: NoArguments, context: HandlerContext[PackageListing]) -> dict[str, Any]:
        packages = await context.platform.list_packages()
        listed = packages[:LISTED_PACKAGES]
        await context.update_inventory({"packages": listed, "package_count": len(packages)})
        return {"packages": listed, "count": len(packages), "truncated": len(listed) < len(packages)}

"""Linux packages through whichever package manager is on PATH, package files, and system update bundles."""

import asyncio
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import process
from agent.errors import HandlerError, UnsupportedOperation
from agent.platforms.contract import PendingUpdates
from agent.platforms.linux_pending_updates import PendingUpdate, parse_apk, parse_apt, parse_dnf, parse_zypper
from agent.platforms.linux_tools import LinuxTools
from shared.arguments.apps import PackageSpec, SoftwareType

PACKAGE_TIMEOUT_S = 30 * 60.0
"""Package managers download and unpack: minutes, not the seconds a system tool gets."""
LIST_OUTPUT_LIMIT = 16 * 1024 * 1024
"""Room for the listing of about 200,000 packages; a longer one is refused rather than cut."""
APT_OPTIONS = (
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
    # Wait for unattended-upgrades rather than failing at once on the dpkg lock; older apt ignores the option.
    "-o",
    "DPkg::Lock::Timeout=300",
)


def _tab_separated(text: str) -> list[dict[str, str]]:
    """`name<TAB>version[<TAB>status]` lines; a dpkg status other than `installed` (say, config-files) is skipped."""
    packages = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0] and (len(fields) < 3 or fields[2] == "installed"):
            packages.append({"name": fields[0], "version": fields[1]})
    return packages


def _apk_lines(text: str) -> list[dict[str, str]]:
    """`apk info -v` lines: `name-version-rN`, where the name itself may hold hyphens."""
    packages = []
    for line in text.splitlines():
        parts = line.strip().rsplit("-", 2)
        if len(parts) == 3 and parts[0] and parts[2].startswith("r"):
            packages.append({"name": parts[0], "version": f"{parts[1]}-{parts[2]}"})
    return packages


@dataclass(frozen=True, slots=True)
class PackageManager:
    """How one package manager installs, removes and lists; argv prefixes, names (and paths) go last."""

    tool: str
    software_types: tuple[SoftwareType, ...]
    """The `software_type` values this manager answers to."""
    install: tuple[str, ...]
    pin: str
    """What joins a name and a version in an install request."""
    remove: tuple[str, ...]
    listing: tuple[str, ...]
    parse: Callable[[str], list[dict[str, str]]]
    file_suffix: str
    install_file: tuple[str, ...]
    pending: tuple[str, ...]
    """Lists the upgrades waiting (NOTIFY_OTA), for `parse_pending`."""
    parse_pending: Callable[[str], list[PendingUpdate]]
    inspect_file: tuple[str, ...] = ()
    """Prints a package file's `name<TAB>version`; without it a file cannot be checked before it is installed."""
    refresh: tuple[str, ...] = ()
    """Run before installing from the repositories, so a stale index cannot make a package unknown."""
    env: dict[str, str] = field(default_factory=dict)
    refresh_lists: tuple[str, ...] = ()
    """Fetches the repositories' package lists before `pending` reads them (dnf's `--refresh` does it itself)."""
    tells_security: bool = False
    """Whether `parse_pending` knows which updates come from a security repository."""
    pending_exits: Mapping[int, bool | None] = field(default_factory=lambda: {0: None})
    """The exit codes of `pending` that are no failure, each with whether it says updates are waiting (None: either)."""


RPM_FILE_FIELDS = ("rpm", "-q", "--package", "--queryformat", "%{NAME}\t%{VERSION}-%{RELEASE}\n")

MANAGERS: tuple[PackageManager, ...] = (
    PackageManager(
        tool="apt-get",
        software_types=(SoftwareType.APT, SoftwareType.DEBIAN),
        install=("apt-get", "install", "-y", "--no-install-recommends", *APT_OPTIONS),
        pin="=",
        remove=("apt-get", "remove", "-y", *APT_OPTIONS),
        listing=("dpkg-query", "-W", "-f", "${binary:Package}\t${Version}\t${db:Status-Status}\n"),
        parse=_tab_separated,
        file_suffix=".deb",
        # apt-get rather than dpkg -i: it brings in the file's dependencies, or installs nothing when it cannot, where
        # dpkg -i leaves the package unconfigured and a later `apt-get -f install` may remove it again.
        install_file=("apt-get", "install", "-y", "--no-install-recommends", *APT_OPTIONS),
        inspect_file=("dpkg-deb", "--show", "--showformat=${Package}\t${Version}\n"),
        refresh=("apt-get", "update", "-q"),
        env={"DEBIAN_FRONTEND": "noninteractive"},
        refresh_lists=("apt-get", "update", "-q"),
        # apt-get's simulation rather than `apt list --upgradable`, whose output apt says is no interface for scripts.
        pending=("apt-get", "-s", "-q", "upgrade"),
        parse_pending=parse_apt,
        tells_security=True,
    ),
    PackageManager(
        tool="dnf",
        software_types=(SoftwareType.DNF, SoftwareType.RPM),
        install=("dnf", "install", "-y"),
        pin="-",
        remove=("dnf", "remove", "-y"),
        listing=("rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"),
        parse=_tab_separated,
        file_suffix=".rpm",
        install_file=("dnf", "install", "-y"),
        inspect_file=RPM_FILE_FIELDS,
        pending=("dnf", "check-update", "-q", "--refresh"),
        parse_pending=parse_dnf,
        pending_exits={0: False, 100: True},
    ),
    PackageManager(
        tool="zypper",
        software_types=(SoftwareType.ZYPPER, SoftwareType.RPM),
        install=("zypper", "--non-interactive", "install", "--no-recommends"),
        pin="=",
        remove=("zypper", "--non-interactive", "remove"),
        listing=("rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"),
        parse=_tab_separated,
        file_suffix=".rpm",
        # The file's SHA-256 was checked against the command's before it got here.
        install_file=("zypper", "--non-interactive", "install", "--allow-unsigned-rpm"),
        inspect_file=RPM_FILE_FIELDS,
        refresh_lists=("zypper", "--non-interactive", "refresh"),
        pending=("zypper", "--non-interactive", "list-updates"),
        parse_pending=parse_zypper,
    ),
    PackageManager(
        tool="apk",
        software_types=(SoftwareType.APK,),
        install=("apk", "add"),
        pin="=",
        remove=("apk", "del"),
        listing=("apk", "info", "-v"),
        parse=_apk_lines,
        file_suffix=".apk",
        # As for zypper: a local file carries no repository signature, and its SHA-256 is already checked.
        install_file=("apk", "add", "--allow-untrusted"),
        refresh_lists=("apk", "update"),
        pending=("apk", "version", "-l", "<"),
        parse_pending=parse_apk,
    ),
)

UPDATE_TOOLS: dict[str, tuple[str, ...]] = {".raucb": ("rauc", "install"), ".swu": ("swupdate", "-i")}
"""Whole-system update bundles by file suffix: RAUC and SWUpdate, each taking the bundle's path last."""
UPDATE_PACKAGES = (".deb", ".rpm")


def _file_argument(path: Path) -> str:
    """`path` made absolute: apt-get reads an argument without a slash as a package name, not a file."""
    return os.path.abspath(path)


def package_manager(software_type: SoftwareType | None = None) -> PackageManager:
    """The first of MANAGERS on PATH now that answers to `software_type` (any, if none).

    Looked up on every use: a device may gain or lose a package manager while the agent runs.
    """
    present = [manager for manager in MANAGERS if shutil.which(manager.tool)]
    if not present:
        names = ", ".join(manager.tool for manager in MANAGERS)
        raise UnsupportedOperation(f"no supported package manager ({names}) found on PATH")
    for manager in present:
        if software_type is None or software_type in manager.software_types:
            return manager
    supported = ", ".join(dict.fromkeys(kind.value for manager in present for kind in manager.software_types))
    raise UnsupportedOperation(f"software type '{software_type}' is not supported on this device, only {supported}")


class LinuxPackages(LinuxTools):
    """Packages, AppFiles and SystemUpdate on Linux; package operations get `package_timeout` seconds each."""

    def __init__(self, *args: Any, package_timeout: float = PACKAGE_TIMEOUT_S, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.package_timeout = package_timeout

    def check_software_type(self, software_type: SoftwareType | None) -> None:
        package_manager(software_type)

    async def install_packages(self, packages: Sequence[PackageSpec]) -> None:
        """From the repositories, whatever each spec's `url`: one run of each package manager the specs' types name."""
        batches: dict[str, tuple[PackageManager, list[PackageSpec]]] = {}
        for spec in packages:
            manager = package_manager(spec.software_type)
            batches.setdefault(manager.tool, (manager, []))[1].append(spec)
        for manager, specs in batches.values():
            if manager.refresh:
                await self._package_tool(manager, manager.refresh)
            requests = [
                spec.name if spec.version is None else f"{spec.name}{manager.pin}{spec.version}" for spec in specs
            ]
            await self._package_tool(manager, (*manager.install, *requests))

    async def install_package_file(self, path: Path, spec: PackageSpec) -> None:
        """Install the package file at `path` if it is `spec`'s package (at its version, if given); else nothing."""
        manager = package_manager(spec.software_type)
        if not manager.inspect_file:
            raise UnsupportedOperation(
                f"{manager.tool} cannot check a package file here: install from the repositories"
            )
        # apt-get and zypper tell a file from a package name by its suffix, so the file is linked under one.
        named = path if path.suffix.lower() == manager.file_suffix else path.with_name(path.name + manager.file_suffix)
        if named != path:
            try:
                await asyncio.to_thread(os.link, path, named)
            except OSError as err:
                raise HandlerError(
                    f"cannot name {path} as a {manager.file_suffix} file: {err.strerror or err}"
                ) from err
        try:
            name, version = await self._package_file_fields(manager, named)
            if name != spec.name or (spec.version is not None and version != spec.version):
                wanted = spec.name if spec.version is None else f"{spec.name} {spec.version}"
                raise HandlerError(f"the file is {name} {version}, not {wanted}; nothing installed")
            await self._package_tool(manager, (*manager.install_file, _file_argument(named)))
        finally:
            if named != path:
                named.unlink(missing_ok=True)

    async def installed_versions(self, software_type: SoftwareType | None) -> dict[str, str]:
        """Name -> version of what `software_type`'s manager has installed; a name also without its `:arch`."""
        listed = await self._listing(package_manager(software_type))
        versions = {package["name"].split(":")[0]: package["version"] for package in listed}
        return versions | {package["name"]: package["version"] for package in listed}

    async def remove_packages(self, names: Sequence[str], software_type: SoftwareType | None = None) -> None:
        manager = package_manager(software_type)
        await self._package_tool(manager, (*manager.remove, *names))

    async def list_packages(self) -> list[dict[str, str]]:
        return await self._listing(package_manager())

    async def pending_updates(self) -> PendingUpdates:
        """Refresh the package lists, then read the upgrades waiting; versions the tool leaves out are read from what
        is installed."""
        manager = package_manager()
        if manager.refresh_lists:
            await self._package_tool(manager, manager.refresh_lists)
        result = await process.check(
            manager.pending,
            timeout=self.package_timeout,
            env={**os.environ, **manager.env, "LC_ALL": "C"},  # the parsers read the C locale's words
            output_limit=LIST_OUTPUT_LIMIT,
            ok_returncodes=tuple(manager.pending_exits),
        )
        if result.stdout_truncated:
            raise HandlerError(f"{manager.tool} listed more than {LIST_OUTPUT_LIMIT} bytes of updates")
        updates = manager.parse_pending(result.stdout_tail)
        waiting = manager.pending_exits[result.returncode]
        if waiting is not None and waiting != bool(updates):
            listed = f"listed {len(updates)} updates"
            raise HandlerError(f"{manager.tool} {result.exit_description} but {listed}: cannot tell what is waiting")
        installed: dict[str, str] = {}
        if any(update.current is None for update in updates):
            installed = {package["name"]: package["version"] for package in await self._listing(manager)}
        return PendingUpdates(
            manager=manager.tool,
            packages=[
                {
                    "name": update.name,
                    "current": update.current or installed.get(update.name),
                    "available": update.available,
                }
                for update in sorted(updates, key=lambda update: (update.name, update.available))
            ],
            security=sum(update.security for update in updates) if manager.tells_security else None,
        )

    async def _listing(self, manager: PackageManager) -> list[dict[str, str]]:
        result = await process.check(manager.listing, timeout=self.tool_timeout, output_limit=LIST_OUTPUT_LIMIT)
        if result.stdout_truncated:
            raise HandlerError(f"{manager.listing[0]} listed more than {LIST_OUTPUT_LIMIT} bytes of packages")
        return sorted(manager.parse(result.stdout_tail), key=lambda package: (package["name"], package["version"]))

    async def install_app_file(self, path: Path) -> None:
        manager = package_manager()
        if path.suffix.lower() != manager.file_suffix:
            raise HandlerError(
                f"{path.name} is not a {manager.file_suffix} file, the only kind {manager.tool} installs on this device"
            )
        await self._package_tool(manager, (*manager.install_file, _file_argument(path)))

    async def install_update(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix in UPDATE_PACKAGES:
            await self.install_app_file(path)
        elif suffix in UPDATE_TOOLS:
            await self.tool(*UPDATE_TOOLS[suffix], _file_argument(path), limit_s=self.package_timeout)
        else:
            kinds = ", ".join((*UPDATE_PACKAGES, *UPDATE_TOOLS))
            raise HandlerError(f"cannot install {path.name} as an update: supported kinds are {kinds}")

    async def _package_file_fields(self, manager: PackageManager, path: Path) -> tuple[str, str]:
        result = await process.check((*manager.inspect_file, _file_argument(path)), timeout=self.tool_timeout)
        fields = result.stdout_tail.strip().split("\t")
        if len(fields) != 2 or not all(fields):
            raise HandlerError(f"{manager.inspect_file[0]} cannot read a package name and version from {path.name}")
        return fields[0], fields[1]

    async def _package_tool(self, manager: PackageManager, argv: Sequence[str]) -> None:
        env = {**os.environ, **manager.env} if manager.env else None
        await process.check(argv, timeout=self.package_timeout, env=env)

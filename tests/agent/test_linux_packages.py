"""Package, certificate, content and update handlers on the Linux platform, against recording fake tools.

PATH holds nothing but the fakes' directory: this machine has a real apt-get, and detection must only ever see fakes.
"""

import asyncio
import base64
import hashlib
import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent import process
from agent.errors import HandlerError, InvalidArguments, ToolFailed, ToolNotFound, ToolTimeout, UnsupportedOperation
from agent.handlers import capabilities, handler_for
from agent.handlers import packages as packages_module
from agent.handlers.base import Handler, HandlerContext
from agent.handlers.certificates import InstallCertificateHandler, UninstallCertificateHandler
from agent.handlers.content import InstallOtaHandler, SyncContentHandler
from agent.handlers.packages import InstallAppHandler, InstallHandler, RefreshAppListHandler, UninstallHandler
from agent.platforms import LinuxPlatform
from agent.platforms.linux_packages import APT_OPTIONS
from shared.arguments import ArgumentsError, validate_arguments
from shared.messages import Command
from shared.operations import OperationType, Platform
from tests.agent.file_server import Server, file_server
from tests.fakes import FakeTools

__all__ = ["file_server"]  # the fixture, imported for pytest

APT_INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", *APT_OPTIONS]
INSTALL_ARGV = {
    "apt-get": APT_INSTALL,
    "dnf": ["dnf", "install", "-y"],
    "zypper": ["zypper", "--non-interactive", "install", "--no-recommends"],
    "apk": ["apk", "add"],
}
PINNED = {"apt-get": "jq=1.6-2", "dnf": "jq-1.6-2", "zypper": "jq=1.6-2", "apk": "jq=1.6-2"}
REMOVE_ARGV = {
    "apt-get": ["apt-get", "remove", "-y", *APT_OPTIONS],
    "dnf": ["dnf", "remove", "-y"],
    "zypper": ["zypper", "--non-interactive", "remove"],
    "apk": ["apk", "del"],
}
FILE_ARGV = {
    "apt-get": ("tool_1.0_amd64.deb", APT_INSTALL),
    "dnf": ("tool-1.0.x86_64.rpm", ["dnf", "install", "-y"]),
    "zypper": ("tool-1.0.x86_64.rpm", ["zypper", "--non-interactive", "install", "--allow-unsigned-rpm"]),
    "apk": ("tool-1.0-r0.apk", ["apk", "add", "--allow-untrusted"]),
}
MANAGERS = list(INSTALL_ARGV)
LISTERS = {
    "apt-get": ("dpkg-query", "curl:amd64\t7.88.1-10\tinstalled\njq\t1.6-2\tinstalled\n"),
    "dnf": ("rpm", "curl\t7.88.1-10\njq\t1.6-2\n"),
    "zypper": ("rpm", "curl\t7.88.1-10\njq\t1.6-2\n"),
    "apk": ("apk", "curl-7.88.1-r10\njq-1.6-r2\n"),
}
"""The tool that lists what each manager installed, and a listing that holds curl and jq."""


def add_manager(tools: FakeTools, manager: str, **behaviour: Any) -> None:
    """Fake `manager` and its lister, which lists curl and jq as installed."""
    lister, listing = LISTERS[manager]
    if lister != manager:
        tools.add(lister, stdout=listing)
        tools.add(manager, **behaviour)
    else:
        tools.add(manager, **{"stdout": listing, **behaviour})


def repository_outcome(name: str, version: str | None, installed: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "software_type": None,
        "source": "repository",
        "status": "SUCCESSFUL",
        "installed_version": installed,
    }


REQUIRE_FILE = 'for a; do last=$a; done; test -f "$last" || exit 9'
"""A fake's script that fails unless its last argument is an existing file."""

DER = b"\x30\x82\x01\x0a" + bytes(range(200))
CERT = "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(DER).decode() + "-----END CERTIFICATE-----\n"


@pytest.fixture(autouse=True)
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    tools = FakeTools.on_path(tmp_path / "fake-bin", monkeypatch)
    # Fakes that sleep need the real `sleep`, and nothing else from the system directories.
    utilities = tmp_path / "utilities"
    utilities.mkdir()
    (utilities / "sleep").symlink_to(shutil.which("sleep") or "/bin/sleep")
    monkeypatch.setenv("PATH", f"{tools.directory}{os.pathsep}{utilities}")
    return tools


@pytest.fixture(autouse=True)
def short_graces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)


@pytest.fixture
def platform(tmp_path: Path) -> LinuxPlatform:
    return LinuxPlatform(
        boot_id_path=tmp_path / "boot_id",
        tool_timeout=5,
        package_timeout=5,
        debian_ca_dir=tmp_path / "debian-ca",
        rhel_ca_dir=tmp_path / "rhel-ca",
    )


class Inventory:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    async def __call__(self, keys: Mapping[str, Any]) -> bool:
        self.updates.append(dict(keys))
        return True


@pytest.fixture
def inventory() -> Inventory:
    return Inventory()


@pytest.fixture
def context(platform: LinuxPlatform, tmp_path: Path, inventory: Inventory) -> HandlerContext:
    work_dir = tmp_path / "state" / "work" / "cmd-1"
    work_dir.mkdir(parents=True)
    command = Command(
        command_id="cmd-1",
        operation_id="op-1",
        device_id="dev-1",
        operation_type=OperationType.INSTALL,
        issued_at=datetime.now(UTC),
    )
    return HandlerContext(command=command, platform=platform, work_dir=work_dir, update_inventory=inventory)


def parse(operation_type: OperationType, arguments: dict[str, Any]) -> Any:
    try:
        return validate_arguments(operation_type, arguments)
    except ArgumentsError as err:
        raise InvalidArguments(str(err)) from err


def execute(handler: Handler, operation_type: OperationType, arguments: dict[str, Any], context: HandlerContext) -> Any:
    return asyncio.run(handler.run(parse(operation_type, arguments), context))


def download(server: Server, name: str, body: bytes = b"package bytes") -> dict[str, Any]:
    server.files[name] = body
    return {"url": server.url(f"/files/{name}?sig=1"), "sha256": hashlib.sha256(body).hexdigest()}


# --- INSTALL, INSTALL_APP ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("manager", MANAGERS)
@pytest.mark.parametrize("operation_type", [OperationType.INSTALL, OperationType.INSTALL_APP])
def test_install_from_the_package_manager(
    fake_tools: FakeTools, context: HandlerContext, manager: str, operation_type: OperationType
) -> None:
    add_manager(fake_tools, manager)
    handler = InstallHandler() if operation_type is OperationType.INSTALL else InstallAppHandler()
    arguments = {"packages": [{"name": "curl"}, {"name": "jq", "version": "1.6-2"}]}

    result = execute(handler, operation_type, arguments, context)

    curl, jq = ("7.88.1-r10", "1.6-r2") if manager == "apk" else ("7.88.1-10", "1.6-2")
    assert result == {"installed": [repository_outcome("curl", None, curl), repository_outcome("jq", "1.6-2", jq)]}
    refresh = [["apt-get", "update", "-q"]] if manager == "apt-get" else []
    listing = LISTINGS.get(manager, LISTINGS["dnf"])[1]  # zypper's lister is rpm, as dnf's
    assert fake_tools.calls() == [*refresh, [*INSTALL_ARGV[manager], "curl", PINNED[manager]], listing]


def test_apt_runs_noninteractive(fake_tools: FakeTools, context: HandlerContext, tmp_path: Path) -> None:
    add_manager(fake_tools, "apt-get", script=f'echo "$DEBIAN_FRONTEND" >> {tmp_path}/frontend')

    execute(InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "curl"}]}, context)

    assert (tmp_path / "frontend").read_text() == "noninteractive\nnoninteractive\n"


def test_apt_get_is_preferred_over_dnf(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("dnf")
    add_manager(fake_tools, "apt-get")

    execute(InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "curl"}]}, context)

    assert [argv[0] for argv in fake_tools.calls()] == ["apt-get", "apt-get", "dpkg-query"]


def test_no_package_manager(context: HandlerContext) -> None:
    with pytest.raises(HandlerError) as caught:
        execute(InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "curl"}]}, context)

    assert str(caught.value) == "curl: no supported package manager (apt-get, dnf, zypper, apk) found on PATH"


def test_install_failure_names_the_tool(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("dnf", exit_code=1, stderr="Error: Unable to find a match: nope\n")

    with pytest.raises(HandlerError) as caught:
        execute(InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "nope"}]}, context)

    reason = "dnf exited 1: Error: Unable to find a match: nope"
    assert str(caught.value) == f"nope: {reason}"
    assert caught.value.result == {
        "installed": [
            {**repository_outcome("nope", None, ""), "installed_version": None, "status": "FAILED", "reason": reason}
        ]
    }
    assert fake_tools.calls("rpm") == []


def test_failed_apt_update_stops_the_install(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("apt-get", exit_code=100, stderr="E: Could not get lock /var/lib/apt/lists/lock\n")

    with pytest.raises(
        HandlerError, match=r"^curl: apt-get exited 100: E: Could not get lock /var/lib/apt/lists/lock$"
    ):
        execute(InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "curl"}]}, context)
    assert fake_tools.calls() == [["apt-get", "update", "-q"]]


def test_package_operations_have_their_own_timeout(
    fake_tools: FakeTools, context: HandlerContext, tmp_path: Path
) -> None:
    # Only `apk add` is slow: listing what is installed afterwards is a system tool's job, with its timeout.
    add_manager(fake_tools, "apk", script='[ "$1" = add ] && sleep 0.5')
    slow_tools = LinuxPlatform(boot_id_path=tmp_path / "boot_id", tool_timeout=0.1, package_timeout=5)
    assert slow_tools.package_timeout == 5

    execute(InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "curl"}]}, _with(context, slow_tools))


def test_install_timeout(fake_tools: FakeTools, context: HandlerContext, tmp_path: Path) -> None:
    fake_tools.add("dnf", sleep=30)
    hurried = LinuxPlatform(boot_id_path=tmp_path / "boot_id", package_timeout=0.3)

    with pytest.raises(HandlerError, match=r"^curl: dnf timed out after 0.3s$"):
        execute(InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "curl"}]}, _with(context, hurried))


def test_default_package_timeout_is_half_an_hour(tmp_path: Path) -> None:
    assert LinuxPlatform(boot_id_path=tmp_path / "boot_id").package_timeout == 1800


@pytest.mark.parametrize("manager", MANAGERS)
def test_install_app_from_a_file(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext, manager: str
) -> None:
    name, argv = FILE_ARGV[manager]
    fake_tools.add(manager, script=REQUIRE_FILE)
    body = b"a package"

    result = execute(
        InstallAppHandler(), OperationType.INSTALL_APP, {"file": download(file_server, name, body)}, context
    )

    assert result == {"file": name, "size_bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert fake_tools.calls() == [[*argv, str(context.work_dir / name)]]
    assert list(context.work_dir.iterdir()) == []


def test_install_app_file_of_the_wrong_kind(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    fake_tools.add("apt-get")

    with pytest.raises(HandlerError) as caught:
        execute(InstallAppHandler(), OperationType.INSTALL_APP, {"file": download(file_server, "tool.rpm")}, context)

    assert str(caught.value) == "tool.rpm is not a .deb file, the only kind apt-get installs on this device"
    assert fake_tools.calls() == []
    assert list(context.work_dir.iterdir()) == []


def test_install_app_file_with_a_bad_hash_installs_nothing(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    fake_tools.add("apt-get")
    file = {**download(file_server, "tool.deb"), "sha256": "f" * 64}

    with pytest.raises(HandlerError, match=r"^sha256 mismatch: expected f{64}, got [0-9a-f]{64}$"):
        execute(InstallAppHandler(), OperationType.INSTALL_APP, {"file": file}, context)
    assert fake_tools.calls() == []


def test_install_app_file_failure_still_removes_the_file(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    fake_tools.add("apt-get", exit_code=100, stderr="E: Sub-process /usr/bin/dpkg returned an error code (1)\n")

    with pytest.raises(ToolFailed, match=r"^apt-get exited 100: E: Sub-process /usr/bin/dpkg returned"):
        execute(InstallAppHandler(), OperationType.INSTALL_APP, {"file": download(file_server, "t.deb")}, context)
    assert list(context.work_dir.iterdir()) == []


def test_install_app_by_name_where_only_files_install(context: HandlerContext, tmp_path: Path) -> None:
    files_only = FilesOnlyPlatform()

    assert InstallAppHandler().supports(files_only)
    assert not InstallHandler().supports(files_only)
    with pytest.raises(
        UnsupportedOperation, match=r"^installing apps by name is not supported on android; send a file$"
    ):
        execute(
            InstallAppHandler(), OperationType.INSTALL_APP, {"packages": [{"name": "a"}]}, _with(context, files_only)
        )


# --- UNINSTALL, UNINSTALL_APP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("manager", MANAGERS)
@pytest.mark.parametrize("operation_type", [OperationType.UNINSTALL, OperationType.UNINSTALL_APP])
def test_uninstall(fake_tools: FakeTools, context: HandlerContext, manager: str, operation_type: OperationType) -> None:
    fake_tools.add(manager)

    result = execute(UninstallHandler(), operation_type, {"packages": ["curl", "jq"]}, context)

    assert result == {"removed": ["curl", "jq"]}
    assert fake_tools.calls() == [[*REMOVE_ARGV[manager], "curl", "jq"]]


def test_uninstall_failure(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("apk", exit_code=1, stderr="ERROR: No such package: nope\n")

    with pytest.raises(ToolFailed, match=r"^apk exited 1: ERROR: No such package: nope$"):
        execute(UninstallHandler(), OperationType.UNINSTALL, {"packages": ["nope"]}, context)


def test_uninstall_without_a_package_manager(context: HandlerContext) -> None:
    with pytest.raises(UnsupportedOperation, match=r"^no supported package manager "):
        execute(UninstallHandler(), OperationType.UNINSTALL_APP, {"packages": ["curl"]}, context)


# --- REFRESH_APPLIST ------------------------------------------------------------------------------------------------

LISTINGS = {
    "apt-get": (
        "dpkg-query",
        ["dpkg-query", "-W", "-f", "${binary:Package}\t${Version}\t${db:Status-Status}\n"],
        "zlib1g:amd64\t1:1.2.13.dfsg-1\tinstalled\nbash\t5.2.15-2+b2\tinstalled\nold-tool\t1.0\tconfig-files\n",
    ),
    "dnf": (
        "rpm",
        ["rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"],
        "zlib1g:amd64\t1:1.2.13.dfsg-1\nbash\t5.2.15-2+b2\n",
    ),
    "apk": ("apk", ["apk", "info", "-v"], "zlib1g:amd64-1:1.2.13.dfsg-r1\nbash-5.2.15-r2\nWARNING: noise\n"),
}
LISTED = {
    "apt-get": [{"name": "bash", "version": "5.2.15-2+b2"}, {"name": "zlib1g:amd64", "version": "1:1.2.13.dfsg-1"}],
    "apk": [{"name": "bash", "version": "5.2.15-r2"}, {"name": "zlib1g:amd64", "version": "1:1.2.13.dfsg-r1"}],
}
LISTED["dnf"] = LISTED["apt-get"]


@pytest.mark.parametrize("manager", list(LISTINGS))
def test_refresh_applist(fake_tools: FakeTools, context: HandlerContext, inventory: Inventory, manager: str) -> None:
    lister, argv, stdout = LISTINGS[manager]
    fake_tools.add(manager)
    fake_tools.add(lister, stdout=stdout)

    result = execute(RefreshAppListHandler(), OperationType.REFRESH_APPLIST, {}, context)

    expected = LISTED[manager]
    assert result == {"packages": expected, "count": 2, "truncated": False}
    assert inventory.updates == [{"packages": expected, "package_count": 2}]
    assert fake_tools.calls(lister) == [argv]


def test_refresh_applist_cuts_a_long_list(
    fake_tools: FakeTools, context: HandlerContext, inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packages_module, "LISTED_PACKAGES", 2)
    fake_tools.add("dnf")
    fake_tools.add("rpm", stdout="c\t3-1\na\t1-1\nb\t2-1\n")

    result = execute(RefreshAppListHandler(), OperationType.REFRESH_APPLIST, {}, context)

    assert result == {
        "packages": [{"name": "a", "version": "1-1"}, {"name": "b", "version": "2-1"}],
        "count": 3,
        "truncated": True,
    }
    assert inventory.updates[0]["package_count"] == 3


def test_refresh_applist_without_the_lister(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("apt-get")

    with pytest.raises(ToolNotFound, match=r"^dpkg-query not found on PATH$"):
        execute(RefreshAppListHandler(), OperationType.REFRESH_APPLIST, {}, context)


def test_refresh_applist_lister_fails(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("dnf")
    fake_tools.add("rpm", exit_code=1, stderr="error: rpmdb: damaged\n")

    with pytest.raises(ToolFailed, match=r"^rpm exited 1: error: rpmdb: damaged$"):
        execute(RefreshAppListHandler(), OperationType.REFRESH_APPLIST, {}, context)


def test_refresh_applist_lister_times_out(fake_tools: FakeTools, context: HandlerContext, tmp_path: Path) -> None:
    fake_tools.add("apk", sleep=30)
    hurried = LinuxPlatform(boot_id_path=tmp_path / "boot_id", tool_timeout=0.3)

    with pytest.raises(ToolTimeout, match=r"^apk timed out after 0.3s$"):
        execute(RefreshAppListHandler(), OperationType.REFRESH_APPLIST, {}, _with(context, hurried))


def test_refresh_applist_takes_no_arguments() -> None:
    with pytest.raises(InvalidArguments, match=r"^invalid arguments: all: Extra inputs are not permitted$"):
        parse(OperationType.REFRESH_APPLIST, {"all": True})


# --- INSTALL_CERTIFICATE, UNINSTALL_CERTIFICATE ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "argv", "directory", "file"),
    [
        ("update-ca-certificates", ["update-ca-certificates"], "debian-ca", "tether-corp-root.crt"),
        ("update-ca-trust", ["update-ca-trust", "extract"], "rhel-ca", "tether-corp-root.pem"),
    ],
)
def test_install_certificate(
    fake_tools: FakeTools,
    context: HandlerContext,
    tmp_path: Path,
    tool: str,
    argv: list[str],
    directory: str,
    file: str,
) -> None:
    fake_tools.add(tool)
    pem = "\n" + CERT.replace("\n", "\r\n") + "\n" + CERT

    result = execute(
        InstallCertificateHandler(),
        OperationType.INSTALL_CERTIFICATE,
        {"name": "corp-root", "certificate": pem},
        context,
    )

    path = tmp_path / directory / file
    stored = path.read_bytes()
    assert stored == (CERT + CERT).encode()
    assert result == {"name": "corp-root", "path": str(path), "sha256": hashlib.sha256(stored).hexdigest()}
    assert path.stat().st_mode & 0o777 == 0o644
    assert fake_tools.calls() == [argv]


def test_reinstalling_a_certificate_replaces_it(fake_tools: FakeTools, context: HandlerContext, tmp_path: Path) -> None:
    fake_tools.add("update-ca-certificates")
    path = tmp_path / "debian-ca" / "tether-root.crt"
    path.parent.mkdir()
    path.write_text("old")

    execute(
        InstallCertificateHandler(), OperationType.INSTALL_CERTIFICATE, {"name": "root", "certificate": CERT}, context
    )

    assert path.read_text() == CERT
    assert sorted(p.name for p in path.parent.iterdir()) == ["tether-root.crt"]


@pytest.mark.parametrize("previous", [None, "old certificate"])
def test_failed_trust_update_puts_back_what_was_there(
    fake_tools: FakeTools, context: HandlerContext, tmp_path: Path, previous: str | None
) -> None:
    fake_tools.add("update-ca-certificates", exit_code=1, stderr="cannot write /etc/ssl/certs\n")
    path = tmp_path / "debian-ca" / "tether-root.crt"
    path.parent.mkdir()
    if previous is not None:
        path.write_text(previous)

    with pytest.raises(ToolFailed, match=r"^update-ca-certificates exited 1: cannot write /etc/ssl/certs$"):
        execute(
            InstallCertificateHandler(),
            OperationType.INSTALL_CERTIFICATE,
            {"name": "root", "certificate": CERT},
            context,
        )

    assert (path.read_text() if path.exists() else None) == previous
    assert [p.name for p in path.parent.iterdir()] == ([] if previous is None else ["tether-root.crt"])


def test_install_certificate_without_a_trust_tool(context: HandlerContext, tmp_path: Path) -> None:
    with pytest.raises(ToolNotFound) as caught:
        execute(
            InstallCertificateHandler(),
            OperationType.INSTALL_CERTIFICATE,
            {"name": "root", "certificate": CERT},
            context,
        )

    assert str(caught.value) == "no CA trust store tool (update-ca-certificates, update-ca-trust) found on PATH"
    assert not (tmp_path / "debian-ca").exists()


def test_install_certificate_trust_update_times_out(
    fake_tools: FakeTools, context: HandlerContext, tmp_path: Path
) -> None:
    fake_tools.add("update-ca-trust", sleep=30)
    hurried = LinuxPlatform(boot_id_path=tmp_path / "boot_id", tool_timeout=0.3, rhel_ca_dir=tmp_path / "rhel-ca")

    with pytest.raises(ToolTimeout, match=r"^update-ca-trust timed out after 0.3s$"):
        execute(
            InstallCertificateHandler(),
            OperationType.INSTALL_CERTIFICATE,
            {"name": "root", "certificate": CERT},
            _with(context, hurried),
        )
    assert list((tmp_path / "rhel-ca").iterdir()) == []


KEY = "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("certificate", "problem"),
    [
        (CERT + KEY, "contains a private key; only CA certificates may be installed"),
        (KEY.replace("PRIVATE KEY", "RSA PRIVATE KEY"), "contains a private key"),
        (KEY.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"), "contains a private key"),
        ("not a certificate", "must hold at least one -----BEGIN CERTIFICATE----- block"),
        ("subject=CN=root\n" + CERT, "has text outside its -----BEGIN CERTIFICATE----- blocks"),
        (CERT + "trailer", "has text outside its -----BEGIN CERTIFICATE----- blocks"),
        (CERT.replace("CERTIFICATE", "PUBLIC KEY"), "has a PUBLIC KEY block; only CERTIFICATE blocks"),
        (CERT.replace("END CERTIFICATE", "END X509 CRL"), "has a CERTIFICATE block; only CERTIFICATE blocks"),
        ("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n", "certificate 1 is not valid base64"),
        ("-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n", "certificate 1 is not an X.509"),
        (CERT + CERT.replace("MII", "aaa", 1), "certificate 2 is not an X.509 certificate"),
    ],
)
def test_install_certificate_refuses_anything_but_certificates(certificate: str, problem: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(OperationType.INSTALL_CERTIFICATE, {"name": "root", "certificate": certificate})

    assert caught.value.field == "arguments.certificate"
    assert str(caught.value).startswith(f"invalid arguments: certificate: Value error, {problem}")


@pytest.mark.parametrize(
    ("operation_type", "arguments", "field"),
    [
        (OperationType.INSTALL_CERTIFICATE, {"certificate": CERT}, "arguments.name"),
        (OperationType.INSTALL_CERTIFICATE, {"name": "../etc/passwd", "certificate": CERT}, "arguments.name"),
        (OperationType.INSTALL_CERTIFICATE, {"name": "a/b", "certificate": CERT}, "arguments.name"),
        (OperationType.INSTALL_CERTIFICATE, {"name": "root"}, "arguments.certificate"),
        (OperationType.INSTALL_CERTIFICATE, {"name": "root", "certificate": CERT, "x": 1}, "arguments.x"),
        (OperationType.UNINSTALL_CERTIFICATE, {}, "arguments.name"),
        (OperationType.UNINSTALL_CERTIFICATE, {"name": ".hidden"}, "arguments.name"),
    ],
)
def test_certificate_arguments(operation_type: OperationType, arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(operation_type, arguments)

    assert caught.value.field == field


def test_uninstall_certificate(fake_tools: FakeTools, context: HandlerContext, tmp_path: Path) -> None:
    fake_tools.add("update-ca-certificates")
    path = tmp_path / "debian-ca" / "tether-root.crt"
    path.parent.mkdir()
    path.write_text(CERT)

    result = execute(UninstallCertificateHandler(), OperationType.UNINSTALL_CERTIFICATE, {"name": "root"}, context)

    assert result == {"name": "root", "removed": True}
    assert not path.exists()
    assert fake_tools.calls() == [["update-ca-certificates"]]


def test_uninstall_a_certificate_that_is_not_there(
    fake_tools: FakeTools, context: HandlerContext, tmp_path: Path
) -> None:
    fake_tools.add("update-ca-trust")

    with pytest.raises(HandlerError) as caught:
        execute(UninstallCertificateHandler(), OperationType.UNINSTALL_CERTIFICATE, {"name": "root"}, context)

    assert (
        str(caught.value)
        == f"no certificate named 'root' is installed ({tmp_path}/rhel-ca/tether-root.pem does not exist)"
    )
    assert fake_tools.calls() == []


def test_uninstall_certificate_update_fails(fake_tools: FakeTools, context: HandlerContext, tmp_path: Path) -> None:
    fake_tools.add("update-ca-trust", exit_code=2, stderr="p11-kit: failed\n")
    (tmp_path / "rhel-ca").mkdir()
    (tmp_path / "rhel-ca" / "tether-root.pem").write_text(CERT)

    with pytest.raises(ToolFailed, match=r"^update-ca-trust exited 2: p11-kit: failed$"):
        execute(UninstallCertificateHandler(), OperationType.UNINSTALL_CERTIFICATE, {"name": "root"}, context)


# --- SYNC_CONTENT ---------------------------------------------------------------------------------------------------


def test_sync_content_into_the_default_directory(file_server: Server, context: HandlerContext) -> None:
    body = b"<html>menu</html>"

    result = execute(
        SyncContentHandler(),
        OperationType.SYNC_CONTENT,
        {"file": download(file_server, "menu.html", body), "path": "signage/menu.html"},
        context,
    )

    path = context.work_dir.parent.parent / "content" / "signage" / "menu.html"
    assert result == {"path": str(path), "size_bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert path.read_bytes() == body


def test_sync_content_into_a_configured_directory(file_server: Server, context: HandlerContext, tmp_path: Path) -> None:
    result = execute(
        SyncContentHandler(tmp_path / "media"),
        OperationType.SYNC_CONTENT,
        {"file": download(file_server, "a.mp4"), "path": "a.mp4"},
        context,
    )

    assert result["path"] == str(tmp_path / "media" / "a.mp4")


@pytest.mark.parametrize("path", ["../escape", "a/../../escape", "a//b", "./a", "a/.", "/etc/passwd", "a/b/"])
def test_sync_content_refuses_paths_leaving_the_directory(path: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(
            OperationType.SYNC_CONTENT, {"file": {"url": "https://x/f", "sha256": "0" * 64}, "path": path}
        )

    assert caught.value.field == "arguments.path"


def test_sync_content_refuses_a_symlink_out_of_the_directory(
    file_server: Server, context: HandlerContext, tmp_path: Path
) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "media" / "link").symlink_to(tmp_path / "outside")

    with pytest.raises(HandlerError) as caught:
        execute(
            SyncContentHandler(tmp_path / "media"),
            OperationType.SYNC_CONTENT,
            {"file": download(file_server, "x"), "path": "link/sub/x"},
            context,
        )

    assert str(caught.value) == f"path 'link/sub/x' leads outside the content directory {tmp_path / 'media'}"
    assert list((tmp_path / "outside").iterdir()) == []


def test_sync_content_failed_download_leaves_nothing(
    file_server: Server, context: HandlerContext, tmp_path: Path
) -> None:
    file = {"url": file_server.url("/missing"), "sha256": "0" * 64}

    with pytest.raises(HandlerError, match=r"^download failed: HTTP 404 from http://127\.0\.0\.1:\d+/missing$"):
        execute(
            SyncContentHandler(tmp_path / "media"), OperationType.SYNC_CONTENT, {"file": file, "path": "f"}, context
        )
    assert list((tmp_path / "media").iterdir()) == []


def test_sync_content_only_where_the_agent_runs(platform: LinuxPlatform) -> None:
    assert SyncContentHandler().supports(platform)
    assert not SyncContentHandler().supports(FilesOnlyPlatform())


# --- INSTALL_OTA ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manager", "name", "argv"),
    [
        ("rauc", "system-2.0.raucb", ["rauc", "install"]),
        ("swupdate", "system-2.0.swu", ["swupdate", "-i"]),
        ("apt-get", "system-2.0.deb", APT_INSTALL),
        ("dnf", "system-2.0.rpm", ["dnf", "install", "-y"]),
    ],
)
def test_install_ota(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext, manager: str, name: str, argv: list[str]
) -> None:
    fake_tools.add(manager, script=REQUIRE_FILE)
    body = b"bundle"

    result = execute(
        InstallOtaHandler(), OperationType.INSTALL_OTA, {"file": download(file_server, name, body)}, context
    )

    assert result == {"file": name, "size_bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert fake_tools.calls() == [[*argv, str(context.work_dir / name)]]
    assert list(context.work_dir.iterdir()) == []


def test_install_ota_of_an_unknown_kind(fake_tools: FakeTools, file_server: Server, context: HandlerContext) -> None:
    with pytest.raises(HandlerError) as caught:
        execute(InstallOtaHandler(), OperationType.INSTALL_OTA, {"file": download(file_server, "update.zip")}, context)

    assert str(caught.value) == "cannot install update.zip as an update: supported kinds are .deb, .rpm, .raucb, .swu"
    assert fake_tools.calls() == []
    assert list(context.work_dir.iterdir()) == []


def test_install_ota_without_rauc(file_server: Server, context: HandlerContext) -> None:
    with pytest.raises(ToolNotFound, match=r"^rauc not found on PATH$"):
        execute(InstallOtaHandler(), OperationType.INSTALL_OTA, {"file": download(file_server, "u.raucb")}, context)


def test_install_ota_rpm_without_a_package_manager(file_server: Server, context: HandlerContext) -> None:
    with pytest.raises(UnsupportedOperation, match=r"^no supported package manager"):
        execute(InstallOtaHandler(), OperationType.INSTALL_OTA, {"file": download(file_server, "u.rpm")}, context)


def test_install_ota_failure(fake_tools: FakeTools, file_server: Server, context: HandlerContext) -> None:
    fake_tools.add("rauc", exit_code=1, stderr="rauc: Installation error: Compatible mismatch\n")

    with pytest.raises(ToolFailed, match=r"^rauc exited 1: rauc: Installation error: Compatible mismatch$"):
        execute(InstallOtaHandler(), OperationType.INSTALL_OTA, {"file": download(file_server, "u.raucb")}, context)
    assert list(context.work_dir.iterdir()) == []


def test_install_ota_timeout(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext, tmp_path: Path
) -> None:
    fake_tools.add("swupdate", sleep=30)
    hurried = LinuxPlatform(boot_id_path=tmp_path / "boot_id", package_timeout=0.3)

    with pytest.raises(ToolTimeout, match=r"^swupdate timed out after 0.3s$"):
        execute(
            InstallOtaHandler(),
            OperationType.INSTALL_OTA,
            {"file": download(file_server, "u.swu")},
            _with(context, hurried),
        )


# --- arguments and the registry -------------------------------------------------------------------------------------

FILE = {"url": "https://updates.example.com/u.deb", "sha256": "a" * 64}


@pytest.mark.parametrize(
    ("operation_type", "arguments", "field"),
    [
        (OperationType.INSTALL, {}, "arguments.packages"),
        (OperationType.INSTALL, {"packages": []}, "arguments.packages"),
        (OperationType.INSTALL, {"packages": [{"name": "-o"}]}, "arguments.packages.0.name"),
        (OperationType.INSTALL, {"packages": [{"name": "jq", "version": "1 2"}]}, "arguments.packages.0.version"),
        (OperationType.INSTALL, {"packages": [{"name": "jq", "arch": "amd64"}]}, "arguments.packages.0.arch"),
        (OperationType.INSTALL, {"file": FILE}, "arguments.packages"),
        (OperationType.INSTALL_APP, {}, "arguments"),
        (OperationType.INSTALL_APP, {"packages": [{"name": "jq"}], "file": FILE}, "arguments"),
        (OperationType.INSTALL_APP, {"packages": []}, "arguments.packages"),
        (OperationType.INSTALL_APP, {"file": {**FILE, "sha256": "abc"}}, "arguments.file.sha256"),
        (OperationType.INSTALL_APP, {"file": {**FILE, "url": "ftp://x/u.deb"}}, "arguments.file.url"),
        (OperationType.INSTALL_APP, {"file": {**FILE, "size_bytes": 0}}, "arguments.file.size_bytes"),
        (OperationType.UNINSTALL, {"packages": []}, "arguments.packages"),
        (OperationType.UNINSTALL, {"packages": ["--purge"]}, "arguments.packages.0"),
        (OperationType.UNINSTALL_APP, {"packages": "jq"}, "arguments.packages"),
        (OperationType.SYNC_CONTENT, {"file": FILE}, "arguments.path"),
        (OperationType.SYNC_CONTENT, {"path": "a"}, "arguments.file"),
        (OperationType.INSTALL_OTA, {}, "arguments.file"),
        (OperationType.INSTALL_OTA, {"file": {**FILE, "url": "file:///etc/shadow"}}, "arguments.file.url"),
    ],
)
def test_bad_arguments_name_the_field(operation_type: OperationType, arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(operation_type, arguments)

    assert caught.value.field == field


def test_install_app_problem_reads_well() -> None:
    with pytest.raises(InvalidArguments) as caught:
        parse(OperationType.INSTALL_APP, {})

    assert str(caught.value) == "invalid arguments: arguments: Value error, give exactly one of 'packages' or 'file'"


def test_linux_offers_every_package_operation(platform: LinuxPlatform) -> None:
    offered = capabilities(platform)
    for operation_type in (
        OperationType.INSTALL,
        OperationType.INSTALL_APP,
        OperationType.UNINSTALL,
        OperationType.UNINSTALL_APP,
        OperationType.REFRESH_APPLIST,
        OperationType.INSTALL_CERTIFICATE,
        OperationType.UNINSTALL_CERTIFICATE,
        OperationType.SYNC_CONTENT,
        OperationType.INSTALL_OTA,
    ):
        assert operation_type in offered
    assert isinstance(handler_for(OperationType.UNINSTALL_APP, platform), UninstallHandler)


class FilesOnlyPlatform:
    """Installs app files and nothing else, as an Android device over adb does."""

    kind = Platform.ANDROID

    async def boot_id(self) -> str:
        return "boot"

    async def install_app_file(self, path: Path) -> None:
        raise AssertionError("not expected")


def _with(context: HandlerContext, platform: Any) -> HandlerContext:
    return HandlerContext(context.command, platform, context.work_dir, context.update_inventory)

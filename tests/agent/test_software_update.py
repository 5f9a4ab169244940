"""INSTALL and UNINSTALL honour each package's software type and url (what c8y_SoftwareUpdate sends), on Linux.

Recording fake package tools on PATH, as in test_linux_packages; package files come from a real HTTP(S) server.
"""

import hashlib
import ssl
from pathlib import Path
from typing import Any

import pytest

from agent.errors import HandlerError, UnsupportedOperation
from agent.handlers.base import HandlerContext
from agent.handlers.packages import InstallAppHandler, InstallHandler, UninstallHandler
from agent.platforms.linux_packages import APT_OPTIONS
from shared.arguments import ArgumentsError, validate_arguments
from shared.operations import OperationType
from tests.agent.file_server import Server, file_server
from tests.agent.test_linux_packages import context, execute, fake_tools, inventory, platform, short_graces
from tests.certs import ThrowawayCa
from tests.fakes import FakeTools

__all__ = ["context", "fake_tools", "file_server", "inventory", "platform", "short_graces"]  # fixtures, for pytest

APT_INSTALL = ["apt-get", "install", "-y", "--no-install-recommends", *APT_OPTIONS]
DPKG_LISTING = ["dpkg-query", "-W", "-f", "${binary:Package}\t${Version}\t${db:Status-Status}\n"]
DPKG_DEB = ["dpkg-deb", "--show", "--showformat=${Package}\t${Version}\n"]
REQUIRE_FILE = 'for a; do last=$a; done; case "$last" in */*) test -f "$last" || exit 9;; esac'
"""A fake's script that fails when its last argument is a path but no existing file."""


def apt(tools: FakeTools, listing: str = "curl\t7.88.1-10\tinstalled\n", deb: str = "tool\t1.0\n") -> None:
    """apt-get, dpkg-query listing `listing`, and dpkg-deb reading `deb` from any existing file."""
    tools.add("apt-get", script=REQUIRE_FILE)
    tools.add("dpkg-query", stdout=listing)
    tools.add("dpkg-deb", stdout=deb, script=REQUIRE_FILE)


def outcome(name: str, **fields: Any) -> dict[str, Any]:
    shown = {
        "name": name,
        "version": None,
        "software_type": None,
        "source": "repository",
        "status": "SUCCESSFUL",
        "installed_version": None,
    }
    return shown | fields


def served(server: Server, name: str, body: bytes = b"a package") -> tuple[str, str]:
    """(url with a query, as a signed URL has, sha256) of `body` served as `name`."""
    server.files[name] = body
    return server.url(f"/files/{name}?signature=secret"), hashlib.sha256(body).hexdigest()


# --- software types -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("software_type", "tool"),
    [(None, "apt-get"), ("apt", "apt-get"), ("debian", "apt-get"), ("dnf", "dnf"), ("rpm", "dnf")],
)
def test_the_software_type_picks_the_package_manager(
    fake_tools: FakeTools, context: HandlerContext, software_type: str | None, tool: str
) -> None:
    fake_tools.add("apt-get")
    fake_tools.add("dnf")
    fake_tools.add("dpkg-query", stdout="curl\t7.88.1-10\tinstalled\n")
    fake_tools.add("rpm", stdout="curl\t7.88.2-1\n")
    package = {"name": "curl", "software_type": software_type} if software_type else {"name": "curl"}

    result = execute(InstallHandler(), OperationType.INSTALL, {"packages": [package]}, context)

    if tool == "apt-get":
        calls = [["apt-get", "update", "-q"], [*APT_INSTALL, "curl"], DPKG_LISTING]
        installed = "7.88.1-10"
    else:
        calls = [["dnf", "install", "-y", "curl"], ["rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"]]
        installed = "7.88.2-1"
    assert fake_tools.calls() == calls
    assert result == {"installed": [outcome("curl", software_type=software_type, installed_version=installed)]}


def test_a_software_type_the_device_lacks_fails_that_package_only(
    fake_tools: FakeTools, context: HandlerContext
) -> None:
    apt(fake_tools)
    packages = [{"name": "curl"}, {"name": "tool", "version": "1.0", "software_type": "dnf"}]

    with pytest.raises(HandlerError) as caught:
        execute(InstallHandler(), OperationType.INSTALL, {"packages": packages}, context)

    reason = "software type 'dnf' is not supported on this device, only apt, debian"
    assert str(caught.value) == f"1 of 2 packages failed: tool: {reason}"
    assert caught.value.result == {
        "installed": [
            outcome("curl", installed_version="7.88.1-10"),
            outcome("tool", version="1.0", software_type="dnf", status="FAILED", reason=reason),
        ]
    }
    assert fake_tools.calls() == [["apt-get", "update", "-q"], [*APT_INSTALL, "curl"], DPKG_LISTING]


def test_one_package_manager_failing_fails_only_its_packages(fake_tools: FakeTools, context: HandlerContext) -> None:
    apt(fake_tools)
    fake_tools.add("dnf", exit_code=1, stderr="Error: Unable to find a match: tool\n")
    packages = [{"name": "curl"}, {"name": "tool", "software_type": "dnf"}]

    with pytest.raises(HandlerError) as caught:
        execute(InstallHandler(), OperationType.INSTALL, {"packages": packages}, context)

    reason = "dnf exited 1: Error: Unable to find a match: tool"
    assert str(caught.value) == f"1 of 2 packages failed: tool: {reason}"
    assert caught.value.result == {
        "installed": [
            outcome("curl", installed_version="7.88.1-10"),
            outcome("tool", software_type="dnf", status="FAILED", reason=reason),
        ]
    }
    assert fake_tools.calls() == [
        ["apt-get", "update", "-q"],
        [*APT_INSTALL, "curl"],
        ["dnf", "install", "-y", "tool"],
        DPKG_LISTING,
    ]


@pytest.mark.parametrize(
    ("package", "field"),
    [
        ({"name": "tool", "software_type": "docker"}, "arguments.packages.0.software_type"),
        ({"name": "tool", "software_type": "APT"}, "arguments.packages.0.software_type"),
        ({"name": "tool", "url": "http://example.com/tool.deb"}, "arguments.packages.0"),
        ({"name": "tool", "sha256": "a" * 64}, "arguments.packages.0"),
        ({"name": "tool", "url": "ftp://example.com/tool.deb", "sha256": "a" * 64}, "arguments.packages.0.url"),
        ({"name": "tool", "url": "file:///tmp/tool.deb"}, "arguments.packages.0.url"),
        ({"name": "tool", "url": "https://example.com/tool.deb", "sha256": "abc"}, "arguments.packages.0.sha256"),
    ],
)
def test_bad_packages_name_the_field(package: dict[str, Any], field: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(OperationType.INSTALL, {"packages": [package]})

    assert caught.value.field == field


def test_plain_http_needs_a_checksum() -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(OperationType.INSTALL, {"packages": [{"name": "t", "url": "http://example.com/t.deb"}]})

    assert str(caught.value).endswith("an http url needs a sha256 to check the file against; use https or give sha256")


# --- from a url -----------------------------------------------------------------------------------------------------


def test_install_from_a_url(fake_tools: FakeTools, file_server: Server, context: HandlerContext) -> None:
    apt(fake_tools, listing="tool:amd64\t1.0\tinstalled\n", deb="tool\t1.0\n")
    url, sha256 = served(file_server, "tool_1.0_amd64.deb")
    package = {"name": "tool", "version": "1.0", "software_type": "apt", "url": url, "sha256": sha256}

    result = execute(InstallHandler(), OperationType.INSTALL, {"packages": [package]}, context)

    path = str(context.work_dir / "tool_1.0_amd64.deb")
    assert fake_tools.calls() == [[*DPKG_DEB, path], [*APT_INSTALL, path], DPKG_LISTING]
    source = file_server.url("/files/tool_1.0_amd64.deb")  # without the query, which may hold a token
    assert result == {
        "installed": [
            outcome("tool", version="1.0", software_type="apt", source=source, sha256=sha256, installed_version="1.0")
        ]
    }
    assert list(context.work_dir.iterdir()) == []


def test_a_file_not_named_deb_is_installed_as_one(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    apt(fake_tools, listing="tool\t1.0\tinstalled\n")
    url, sha256 = served(file_server, "binary-42")

    execute(
        InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "tool", "url": url, "sha256": sha256}]}, context
    )

    path = str(context.work_dir / "binary-42.deb")
    assert fake_tools.calls() == [[*DPKG_DEB, path], [*APT_INSTALL, path], DPKG_LISTING]
    assert list(context.work_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("deb", "package", "reason"),
    [
        ("tool\t2.0\n", {"name": "tool", "version": "1.0"}, "the file is tool 2.0, not tool 1.0; nothing installed"),
        ("other\t1.0\n", {"name": "tool"}, "the file is other 1.0, not tool; nothing installed"),
    ],
)
def test_a_file_of_another_package_or_version_is_not_installed(
    fake_tools: FakeTools,
    file_server: Server,
    context: HandlerContext,
    deb: str,
    package: dict[str, Any],
    reason: str,
) -> None:
    apt(fake_tools, deb=deb)
    url, sha256 = served(file_server, "tool.deb")

    with pytest.raises(HandlerError) as caught:
        execute(
            InstallHandler(), OperationType.INSTALL, {"packages": [{**package, "url": url, "sha256": sha256}]}, context
        )

    assert str(caught.value) == f"tool: {reason}"
    assert caught.value.result is not None
    assert caught.value.result["installed"][0]["status"] == "FAILED"
    assert fake_tools.calls("apt-get") == []
    assert list(context.work_dir.iterdir()) == []


def test_an_installed_version_other_than_asked_fails(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    # The file says 1.0, but what dpkg has installed afterwards is 1.1 (say, a hold or a newer one already there).
    apt(fake_tools, listing="tool\t1.1\tinstalled\n", deb="tool\t1.0\n")
    url, sha256 = served(file_server, "tool.deb")
    package = {"name": "tool", "version": "1.0", "url": url, "sha256": sha256}

    with pytest.raises(HandlerError) as caught:
        execute(InstallHandler(), OperationType.INSTALL, {"packages": [package]}, context)

    assert str(caught.value) == "tool: installed version is 1.1, not 1.0"
    assert caught.value.result is not None
    assert caught.value.result["installed"][0]["installed_version"] == "1.1"


def test_a_name_from_the_repositories_that_lists_as_another_package_still_succeeds(
    fake_tools: FakeTools, context: HandlerContext
) -> None:
    # apt installs the one provider of a virtual package, which dpkg lists under its own name.
    apt(fake_tools, listing="exim4-daemon-light\t4.96-15\tinstalled\n")

    result = execute(InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "mail-transport-agent"}]}, context)

    assert result == {"installed": [outcome("mail-transport-agent")]}


def test_a_file_whose_package_is_not_listed_afterwards_fails(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    apt(fake_tools, listing="curl\t7.88.1-10\tinstalled\n")
    url, sha256 = served(file_server, "tool.deb")

    with pytest.raises(HandlerError) as caught:
        execute(
            InstallHandler(),
            OperationType.INSTALL,
            {"packages": [{"name": "tool", "url": url, "sha256": sha256}]},
            context,
        )

    assert str(caught.value) == "tool: not installed, though the package manager succeeded"


def test_when_the_listing_fails_only_a_files_package_is_unconfirmed(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    apt(fake_tools)
    fake_tools.add("dpkg-query", exit_code=2, stderr="dpkg-query: error: parsing file '/var/lib/dpkg/status'\n")
    url, sha256 = served(file_server, "tool.deb")
    packages = [{"name": "curl"}, {"name": "tool", "url": url, "sha256": sha256}]

    with pytest.raises(HandlerError) as caught:
        execute(InstallHandler(), OperationType.INSTALL, {"packages": packages}, context)

    error = "dpkg-query exited 2: dpkg-query: error: parsing file '/var/lib/dpkg/status'"
    reason = f"cannot read back what is installed: {error}"
    assert str(caught.value) == f"1 of 2 packages failed: tool: {reason}"
    assert caught.value.result is not None
    assert [(entry["status"], entry["installed_version"]) for entry in caught.value.result["installed"]] == [
        ("SUCCESSFUL", None),
        ("FAILED", None),
    ]


def test_a_failed_download_fails_that_package_only(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    apt(fake_tools)
    missing = {"name": "tool", "url": file_server.url("/missing.deb?token=secret"), "sha256": "0" * 64}

    with pytest.raises(HandlerError) as caught:
        execute(InstallHandler(), OperationType.INSTALL, {"packages": [missing, {"name": "curl"}]}, context)

    reason = f"download failed: HTTP 404 from {file_server.url('/missing.deb')}"
    assert str(caught.value) == f"1 of 2 packages failed: tool: {reason}"
    assert caught.value.result is not None
    assert [entry["status"] for entry in caught.value.result["installed"]] == ["FAILED", "SUCCESSFUL"]
    assert fake_tools.calls() == [["apt-get", "update", "-q"], [*APT_INSTALL, "curl"], DPKG_LISTING]
    assert list(context.work_dir.iterdir()) == []


def test_a_file_over_the_size_limit_is_not_installed(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    apt(fake_tools)
    url, sha256 = served(file_server, "tool.deb", b"x" * 11)

    with pytest.raises(HandlerError) as caught:
        execute(
            InstallHandler(max_download_bytes=10),
            OperationType.INSTALL,
            {"packages": [{"name": "tool", "url": url, "sha256": sha256}]},
            context,
        )

    shown = file_server.url("/files/tool.deb")
    assert str(caught.value) == f"tool: download refused: {shown} is 11 bytes, more than the limit of 10"
    assert fake_tools.calls() == []
    assert list(context.work_dir.iterdir()) == []


def test_a_file_with_a_bad_checksum_is_not_installed(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    apt(fake_tools)
    url, _ = served(file_server, "tool.deb")

    with pytest.raises(HandlerError, match=r"^tool: sha256 mismatch: expected f{64}, got [0-9a-f]{64}$"):
        execute(
            InstallHandler(),
            OperationType.INSTALL,
            {"packages": [{"name": "tool", "url": url, "sha256": "f" * 64}]},
            context,
        )
    assert fake_tools.calls() == []


def test_a_package_file_apk_cannot_check_is_refused(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    fake_tools.add("apk")
    url, sha256 = served(file_server, "tool-1.0-r0.apk")

    with pytest.raises(HandlerError) as caught:
        execute(
            InstallHandler(),
            OperationType.INSTALL,
            {"packages": [{"name": "tool", "url": url, "sha256": sha256}]},
            context,
        )

    assert str(caught.value) == "tool: apk cannot check a package file here: install from the repositories"
    assert fake_tools.calls() == []


def test_install_app_by_name_honours_the_url_too(
    fake_tools: FakeTools, file_server: Server, context: HandlerContext
) -> None:
    apt(fake_tools, listing="tool\t1.0\tinstalled\n")
    url, sha256 = served(file_server, "tool.deb")

    result = execute(
        InstallAppHandler(),
        OperationType.INSTALL_APP,
        {"packages": [{"name": "tool", "url": url, "sha256": sha256}]},
        context,
    )

    assert result["installed"][0]["source"] == file_server.url("/files/tool.deb")
    assert [argv[0] for argv in fake_tools.calls()] == ["dpkg-deb", "apt-get", "dpkg-query"]


@pytest.fixture
def https_server(file_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The file server behind TLS, with a certificate from a CA the agent trusts through SSL_CERT_FILE."""
    ca = ThrowawayCa(tmp_path / "ca")
    certificate, key = ca.issue("127.0.0.1", server=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate, key)
    file_server.httpd.socket = tls.wrap_socket(file_server.httpd.socket, server_side=True)
    file_server.base = file_server.base.replace("http://", "https://")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    return file_server


def test_https_needs_no_checksum(fake_tools: FakeTools, https_server: Server, context: HandlerContext) -> None:
    apt(fake_tools, listing="tool\t1.0\tinstalled\n")
    url, sha256 = served(https_server, "tool.deb")

    result = execute(InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "tool", "url": url}]}, context)

    assert result["installed"] == [
        outcome("tool", source=https_server.url("/files/tool.deb"), sha256=sha256, installed_version="1.0")
    ]


def test_https_needs_no_checksum_through_redirects_that_stay_on_https(
    fake_tools: FakeTools, https_server: Server, context: HandlerContext
) -> None:
    """Only a redirect to plain http is refused without a checksum (tests/e2e/attacks/test_package_mirrors.py)."""
    apt(fake_tools, listing="tool\t1.0\tinstalled\n")
    _, sha256 = served(https_server, "tool.deb")
    https_server.redirects["moved.deb"] = https_server.url("/files/tool.deb")
    url = https_server.url("/files/moved.deb")

    result = execute(InstallHandler(), OperationType.INSTALL, {"packages": [{"name": "tool", "url": url}]}, context)

    assert result["installed"] == [outcome("tool", source=url, sha256=sha256, installed_version="1.0")]


# --- UNINSTALL ------------------------------------------------------------------------------------------------------


def test_uninstall_through_the_software_types_manager(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("apt-get")
    fake_tools.add("dnf")

    execute(UninstallHandler(), OperationType.UNINSTALL, {"packages": ["tool"], "software_type": "rpm"}, context)

    assert fake_tools.calls() == [["dnf", "remove", "-y", "tool"]]


def test_uninstall_of_a_software_type_the_device_lacks(fake_tools: FakeTools, context: HandlerContext) -> None:
    fake_tools.add("apk")

    with pytest.raises(UnsupportedOperation) as caught:
        execute(UninstallHandler(), OperationType.UNINSTALL, {"packages": ["tool"], "software_type": "apt"}, context)

    assert str(caught.value) == "software type 'apt' is not supported on this device, only apk"
    assert fake_tools.calls() == []

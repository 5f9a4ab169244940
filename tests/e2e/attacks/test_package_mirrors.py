"""Someone on the network path to a plain-HTTP package mirror, where an HTTPS download server sends devices (as
mirror redirectors do): they swap the package, which the agent installs as root. Without a sha256, TLS is all that
vouches for a package, so such a download may not leave HTTPS; with one, the checksum vouches wherever it came from."""

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.file_server import Server, file_server
from tests.certs import ThrowawayCa
from tests.e2e.harness import Agent, Controller, wait_for

__all__ = ["file_server"]  # the fixture, imported for pytest
pytestmark = pytest.mark.e2e

PACKAGE = "tool_1.0_all.deb"
SWAPPED = b"a package swapped on its way from the mirror"


@pytest.fixture
def download_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """An HTTPS server with a certificate from a CA the agent trusts (SSL_CERT_FILE, which the agent inherits)."""
    ca = ThrowawayCa(tmp_path / "ca")
    certificate, key = ca.issue("127.0.0.1", server=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificate, key)
    server = Server()
    server.httpd.socket = tls.wrap_socket(server.httpd.socket, server_side=True)
    server.base = server.base.replace("http://", "https://")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    server.thread.start()
    yield server
    server.release.set()
    server.httpd.shutdown()
    server.httpd.server_close()


def test_a_package_without_sha256_is_never_fetched_from_the_plain_http_url_its_https_url_redirects_to(
    tmp_path: Path, mosquitto_url: str, file_server: Server, download_server: Server
) -> None:
    mirror = file_server
    mirror.files[PACKAGE] = SWAPPED
    download_server.redirects[PACKAGE] = mirror.url(f"/files/{PACKAGE}")
    url = download_server.url(f"/files/{PACKAGE}")
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "1234")
    agent.tools.add("apt-get")
    agent.tools.add("dpkg-deb", stdout="tool\t1.0\n")  # the swapped package names itself as the one asked for
    agent.tools.add("dpkg-query", stdout="tool\t1.0\tinstalled\n")
    client = httpx.Client(base_url=f"http://127.0.0.1:{controller.http_port}", auth=("ops", controller.key))

    def install(entry: dict[str, str]) -> dict[str, Any]:
        body = {"deviceId": "1234", "c8y_SoftwareUpdate": [{"name": "tool", "version": "1.0", **entry}]}
        created = client.post("/devicecontrol/operations", json=body)
        assert created.status_code == 201, created.text

        def finished() -> dict[str, Any] | None:
            shown: dict[str, Any] = client.get(created.headers["location"]).json()
            return shown if shown["status"] in ("SUCCESSFUL", "FAILED") else None

        return wait_for("the operation to finish", finished)

    try:
        controller.wait_online("1234")
        refused = install({"softwareType": "apt", "url": url, "action": "install"})
        assert refused["status"] == "FAILED"
        assert refused["failureReason"] == (
            f"tool: download failed: {url} redirected to an http URL, where nothing checks the file: give its sha256"
        )
        assert (agent.tools.calls("dpkg-deb"), agent.tools.calls("apt-get")) == ([], [])

        # With a checksum the mirror may be plain HTTP: what arrives is checked before anything runs.
        checked = install(
            {"softwareType": "apt", "url": url, "sha256": hashlib.sha256(SWAPPED).hexdigest(), "action": "install"}
        )
        assert checked["status"] == "SUCCESSFUL", checked
        (installed,) = agent.tools.calls("apt-get")
        assert Path(installed[-1]).name == PACKAGE
    finally:
        client.close()
        agent.stop()
        controller.stop()

"""Broker URLs and TLS settings: parsed strictly, and a password never shown."""

from pathlib import Path

import pytest

from shared.transport import BrokerUrl, TlsFiles
from tests.certs import ThrowawayCa


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt://broker", BrokerUrl("broker", 1883)),
        ("mqtts://broker", BrokerUrl("broker", 8883, tls=True)),
        ("mqtts://dev-a:s%40cret@broker:9883", BrokerUrl("broker", 9883, "dev-a", "s@cret", tls=True)),
    ],
)
def test_urls_parse_with_the_default_port_of_their_scheme(text: str, expected: BrokerUrl) -> None:
    assert BrokerUrl.parse(text) == expected


def test_a_url_shows_its_scheme_and_user_but_never_the_password() -> None:
    assert str(BrokerUrl.parse("mqtts://dev-a:hunter2@broker:8883")) == "mqtts://dev-a@broker:8883"


@pytest.mark.parametrize("text", ["http://dev-a:hunter2@broker", "mqtt://dev-a:hunter2@broker:99999", "mqtts://:1/x"])
def test_a_bad_url_is_refused_without_showing_its_password(text: str) -> None:
    with pytest.raises(ValueError, match="broker URL") as refused:
        BrokerUrl.parse(text)
    assert "hunter2" not in str(refused.value)


def test_tls_files_build_a_verifying_context_or_name_the_file_at_fault(tmp_path: Path) -> None:
    ca = ThrowawayCa(tmp_path)
    cert, key = ca.issue("dev-a")
    context = TlsFiles(ca.ca_file, cert, key).context()
    assert context.check_hostname
    with pytest.raises(ValueError, match="cannot use the CA file /nonexistent"):
        TlsFiles(Path("/nonexistent")).context()
    with pytest.raises(ValueError, match="needs both"):
        TlsFiles(ca.ca_file, cert_file=cert).context()
    with pytest.raises(ValueError, match=f"cannot use the certificate {cert} with the key {ca.ca_file}"):
        TlsFiles(ca.ca_file, cert, ca.ca_file).context()

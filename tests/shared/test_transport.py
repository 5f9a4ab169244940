"""Broker URLs and TLS settings: parsed strictly, and a password never shown."""

from pathlib import Path

import pytest

from shared.transport import BROKER_PASSWORD_ENV, BrokerUrl, TlsFiles, with_password
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


@pytest.mark.parametrize(
    "text",
    [
        "http://dev-a:hunter2@broker",
        "mqtt://dev-a:hunter2@broker:99999",
        "mqtts://:1/x",
        "mqtt://dev-a:hun/ter2@broker:1883",  # unencoded: the '/' ends what urlsplit takes for the host
        "mqtt://dev-a:hun#ter2@broker:1883",
        "mqtt://dev-a:hun?ter2@broker:1883",
        "mqtt://dev-a:hun@ter2@broker:x",
        "dev-a:hunter2@broker:1883",
    ],
)
def test_a_bad_url_is_refused_without_showing_its_password(text: str) -> None:
    with pytest.raises(ValueError, match="broker URL") as refused:
        BrokerUrl.parse(text)
    assert "hun" not in str(refused.value)
    assert "ter2" not in str(refused.value)


def test_a_url_with_a_password_does_not_show_it_in_its_repr_either() -> None:
    """A repr ends up in tracebacks and debug logs."""
    assert "hunter2" not in repr(BrokerUrl.parse("mqtt://dev-a:hunter2@broker:1883"))


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


def test_a_password_comes_from_the_url_a_file_or_the_environment(tmp_path: Path) -> None:
    url = BrokerUrl.parse("mqtt://kiosk@h:1")
    (tmp_path / "password").write_text("from-file\nignored second line\n")
    assert with_password(url, None, {}) == url
    assert with_password(url, tmp_path / "password", {}).password == "from-file"
    assert with_password(url, None, {BROKER_PASSWORD_ENV: "from-env"}).password == "from-env"
    assert with_password(BrokerUrl.parse("mqtt://kiosk:in-url@h:1"), None, {BROKER_PASSWORD_ENV: ""}).password == (
        "in-url"
    )


@pytest.mark.parametrize(
    ("url", "file_text", "env", "problem"),
    [
        ("mqtt://kiosk:in-url@h:1", "from-file", {}, "given twice, in the broker URL and in the file"),
        ("mqtt://kiosk@h:1", "from-file", {BROKER_PASSWORD_ENV: "from-env"}, f"and in {BROKER_PASSWORD_ENV}"),
        ("mqtt://kiosk@h:1", "", {}, "is empty"),
        ("mqtt://kiosk@h:1", None, {}, "cannot read the broker password file"),
        ("mqtts://h:1", "from-file", {}, "needs a user name in the broker URL: mqtts://USER@h"),
    ],
)
def test_a_password_given_twice_unreadable_or_without_a_user_is_refused_without_showing_it(
    tmp_path: Path, url: str, file_text: str | None, env: dict[str, str], problem: str
) -> None:
    if file_text is not None:
        (tmp_path / "password").write_text(file_text)
    with pytest.raises(ValueError, match=problem) as raised:
        with_password(BrokerUrl.parse(url), tmp_path / "password", env)
    assert not any(secret in str(raised.value) for secret in ("in-url", "from-file", "from-env"))

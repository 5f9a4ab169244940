"""MQTT connection settings both programs use: the broker URL and a client tuned for Tether's traffic."""

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiomqtt

DEFAULT_MQTT_PORT = 1883
DEFAULT_MQTTS_PORT = 8883
MAX_INFLIGHT = 1000
"""Unacknowledged QoS 1 publishes per client: enough to pipeline, far below the 65,535 packet ids MQTT has."""


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int = DEFAULT_MQTT_PORT
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, text: str) -> "BrokerUrl":
        """Parse `mqtt[s]://[user:pass@]host[:port]`; raise ValueError with a readable message otherwise."""
        parts = urlsplit(text)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"broker URL {_redacted(text)!r} must start with mqtt:// or mqtts:// (TLS)")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (DEFAULT_MQTTS_PORT if tls else DEFAULT_MQTT_PORT)
        except ValueError as err:
            raise ValueError(f"broker URL {_redacted(text)!r} has an invalid port") from err
        if not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"broker URL {_redacted(text)!r} must look like mqtt[s]://[user:pass@]host:port")
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def __str__(self) -> str:
        # Never show the password: this string goes into logs.
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def _redacted(text: str) -> str:
    """A URL as given, but with any password replaced, for error messages."""
    parts = urlsplit(text)
    if parts.password is None:
        return text
    return text.replace(f":{parts.password}@", ":***@", 1)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """What a client needs for TLS beyond the system's CAs: a CA bundle, and a certificate and key for mutual TLS."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        """A verifying client context; ValueError naming the file for one that cannot be used."""
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both its certificate file and its key file")
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as err:
            raise ValueError(f"cannot use the CA file {self.ca_file}: {err}") from err
        if self.cert_file is not None and self.key_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as err:
                raise ValueError(
                    f"cannot use the certificate {self.cert_file} with the key {self.key_file}: {err}"
                ) from err
        return context


def make_client(
    url: BrokerUrl,
    *,
    identifier: str,
    will: aiomqtt.Will | None = None,
    clean_session: bool = False,
    keepalive: int = 30,
    tls: TlsFiles | None = None,
) -> aiomqtt.Client:
    """A client with TCP_NODELAY (Nagle added ~44 ms per hop) and a bounded in-flight window; TLS for mqtts://."""
    return aiomqtt.Client(
        url.host,
        url.port,
        username=url.username,
        password=url.password,
        identifier=identifier,
        will=will,
        clean_session=clean_session,
        keepalive=keepalive,
        timeout=10,
        max_inflight_messages=MAX_INFLIGHT,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        tls_context=(tls or TlsFiles()).context() if url.tls else None,
    )

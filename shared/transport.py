"""MQTT connection settings both programs use: the broker URL and a client tuned for Tether's traffic."""

import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiomqtt

DEFAULT_MQTT_PORT = 1883
MAX_INFLIGHT = 1000
"""Unacknowledged QoS 1 publishes per client: enough to pipeline, far below the 65,535 packet ids MQTT has."""


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int = DEFAULT_MQTT_PORT
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> "BrokerUrl":
        """Parse `mqtt://[user:pass@]host[:port]`; raise ValueError with a readable message otherwise."""
        parts = urlsplit(text)
        if parts.scheme != "mqtt":
            raise ValueError(f"broker URL {text!r} must start with mqtt://")
        try:
            port = parts.port or DEFAULT_MQTT_PORT
        except ValueError as err:
            raise ValueError(f"broker URL {text!r} has an invalid port") from err
        if not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"broker URL {text!r} must look like mqtt://[user:pass@]host:port")
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def __str__(self) -> str:
        # Never show the password: this string goes into logs.
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"


def make_client(
    url: BrokerUrl,
    *,
    identifier: str,
    will: aiomqtt.Will | None = None,
    clean_session: bool = False,
    keepalive: int = 30,
) -> aiomqtt.Client:
    """A client with TCP_NODELAY (Nagle added ~44 ms per hop) and a bounded in-flight window."""
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
    )

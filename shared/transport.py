"""MQTT connection settings both programs use: the broker URL, its password and TLS files (no MQTT library here)."""

import dataclasses
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_MQTT_PORT = 1883
DEFAULT_MQTTS_PORT = 8883
BROKER_PASSWORD_ENV = "TETHER_BROKER_PASSWORD"
"""Where both programs look for the broker login's password when neither the URL nor a file gives one."""
ARGV_PASSWORD_WARNING = (
    "the broker password in --broker is visible to every local user in ps: put it in a file "
    f"(--broker-password-file) or in {BROKER_PASSWORD_ENV}, and only the user name in the URL"
)


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int = DEFAULT_MQTT_PORT
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
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

    @property
    def scheme(self) -> str:
        return "mqtts" if self.tls else "mqtt"

    def __str__(self) -> str:
        # Never show the password: this string goes into logs.
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"


def with_password(url: BrokerUrl, password_file: Path | None, environ: Mapping[str, str]) -> BrokerUrl:
    """`url` with the password of its login from the one place it was given: the URL itself, `password_file` (its
    first line) or $TETHER_BROKER_PASSWORD. ValueError, never showing the password, if it was given in two places, the
    file cannot be read or the URL names no user."""
    places = [
        place
        for place, given in [
            ("the broker URL", url.password is not None),
            (f"the file {password_file}", password_file is not None),
            (BROKER_PASSWORD_ENV, bool(environ.get(BROKER_PASSWORD_ENV))),
        ]
        if given
    ]
    if len(places) > 1:
        raise ValueError(f"the broker password is given twice, in {places[0]} and in {places[1]}: give it once")
    if password_file is not None:
        try:
            password = password_file.read_text().partition("\n")[0].rstrip("\r")
        except OSError as err:
            raise ValueError(f"cannot read the broker password file {password_file}: {err.strerror}") from err
        if not password:
            raise ValueError(f"the broker password file {password_file} is empty")
    elif environ.get(BROKER_PASSWORD_ENV):
        password = environ[BROKER_PASSWORD_ENV]
    else:
        return url
    if url.username is None:
        raise ValueError(f"a broker password needs a user name in the broker URL: {url.scheme}://USER@{url.host}")
    return dataclasses.replace(url, password=password)


def _redacted(text: str) -> str:
    """A URL as given, but with any password replaced, for error messages.

    Not by urlsplit: a password pasted unencoded (base64 holds '/') ends what it reads as the host early, and it
    then sees no password at all. Everything between the user's ':' and the last '@' is taken for the password.
    """
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    userinfo, at, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not at or not colon:
        return text
    return f"{scheme}{separator}{user}:***@{host}"


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

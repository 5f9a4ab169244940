"""Who may do what on the broker: a pattern ACL that confines each device to its own topics, and the password file
its users log in with (`tether broker acl`, docs/security.md#broker-acl). Mosquitto reads the files; the embedded
amqtt broker applies the same rules through `BrokerAuth`.

Devices log in with their device id as username, so one ACL of `%u` patterns serves every device, present and
future: adding a device only adds a password line.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path
from urllib.parse import quote

from shared.errors import TetherProtocolError
from shared.topics import TopicKind, Topics, agent_client_id, validate_id

DEFAULT_CONTROLLER_USER = "tether-controller"
CONTROLLER_SECRET = "controller.secret"
"""`<user> <password>` of the controller's own login, beside the password file, for a controller that embeds the
broker and must log in to it (mode 0600)."""
PBKDF2_ITERATIONS = 101
"""What `mosquitto_passwd` uses for its `$7$` (PBKDF2-SHA512) hashes."""
SALT_BYTES = 12


def acl_text(topics: Topics, controller_user: str) -> str:
    """The ACL file: the controller may read and write everything under the prefix; a device, only its own topics,
    and only in the direction the protocol sends them."""
    device = f"{topics.prefix}/devices/%u"
    rules = [
        f"read {device}/{TopicKind.COMMAND}/+",
        f"read {device}/{TopicKind.CANCEL}/+",
        f"write {device}/{TopicKind.STATUS}/+",
        f"write {device}/{TopicKind.ANNOUNCE}",
        f"write {device}/{TopicKind.PRESENCE}",
    ]
    lines = [
        "# Written by `tether broker acl`. Devices log in with their device id as username.",
        f"user {validate_id(controller_user, 'controller user')}",
        f"topic readwrite {topics.prefix}/#",
        "",
        *(f"pattern {rule}" for rule in rules),
    ]
    return "\n".join(lines) + "\n"


def password_line(user: str, password: str, salt: bytes | None = None) -> str:
    """One line of a Mosquitto password file, hashed as `mosquitto_passwd` hashes (`$7$`, PBKDF2-SHA512)."""
    salt = salt or secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    encoded = f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    return f"{user}:{encoded}"


def users_in(password_file_text: str) -> set[str]:
    return {line.split(":", 1)[0] for line in password_file_text.splitlines() if ":" in line}


def new_credentials(existing_users: set[str], wanted: Iterable[str]) -> dict[str, str]:
    """A fresh random password for every wanted user not already in the file; existing ones keep theirs."""
    return {
        validate_id(user, "user"): secrets.token_urlsafe(24)
        for user in dict.fromkeys(wanted)
        if user not in existing_users
    }


def mosquitto_settings(password_file: str, acl_file: str) -> str:
    """The lines to include in mosquitto.conf."""
    return (
        "# Written by `tether broker acl`: every client logs in, and the ACL decides what it may do.\n"
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        f"password_file {password_file}\n"
        f"acl_file {acl_file}\n"
    )


def verify_password(encoded: str, password: str) -> bool:
    """Whether `password` matches a `$7$` hash of a Mosquitto password file."""
    try:
        _, kind, iterations, salt, digest = encoded.split("$")
        if kind != "7":
            return False
        expected = base64.b64decode(digest)
        derived = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(derived, expected)


class Access(StrEnum):
    SUBSCRIBE = "subscribe"
    PUBLISH = "publish"
    RECEIVE = "receive"


class Refusal(IntEnum):
    """Why a CONNECT is refused, as its CONNACK return code (MQTT 3.1.1, 3.2.2.3)."""

    IDENTIFIER_REJECTED = 2
    NOT_AUTHORIZED = 5


@dataclass(frozen=True, slots=True)
class BrokerAuth:
    """The rules `acl_text` writes for Mosquitto, applied in code: the controller's login may do anything under the
    prefix; a device's, only read its own commands and cancellations and write its own status, announcement and
    presence. Nobody else gets in."""

    directory: Path
    """Where `tether broker acl` wrote acl, passwords and the controller's secret."""
    passwords: Mapping[str, str]
    """user -> `$7$` hash."""
    topics: Topics
    controller_user: str
    controller_password: str

    @classmethod
    def load(cls, directory: Path, topics: Topics) -> "BrokerAuth":
        """From what `tether broker acl` wrote in `directory`; OSError or ValueError if it is not there."""
        passwords = dict(
            line.split(":", 1) for line in (directory / "passwords").read_text().splitlines() if ":" in line
        )
        user, _, password = (directory / CONTROLLER_SECRET).read_text().strip().partition(" ")
        if not password:
            raise ValueError(f"{directory / CONTROLLER_SECRET} must read '<user> <password>'")
        return cls(directory, passwords, topics, user, password)

    def login_url(self, url: str) -> str:
        """`url` (mqtt://host:port) with the controller's login in it."""
        return url.replace(
            "://", f"://{quote(self.controller_user, safe='')}:{quote(self.controller_password, safe='')}@", 1
        )

    def admits(self, user: str | None, password: str | None) -> bool:
        encoded = self.passwords.get(user or "")
        return encoded is not None and password is not None and verify_password(encoded, password)

    def may_use_client_id(self, user: str, client_id: str) -> bool:
        """The controller's login may use any client id (it may read and write everything anyway); a device's, only
        the one its agent uses: the client id names the session, so another one's would take that session over."""
        return user == self.controller_user or client_id == agent_client_id(user)

    def refusal(self, user: str | None, password: str | None, client_id: str, will_topic: str | None) -> Refusal | None:
        """Why a CONNECT is refused, or None to accept it: a login the password file does not admit, a client id
        that is not the login's own, or a last will the login could not publish itself."""
        if user is None or not self.admits(user, password):
            return Refusal.NOT_AUTHORIZED
        if not self.may_use_client_id(user, client_id):
            return Refusal.IDENTIFIER_REJECTED
        if will_topic is not None and not self.permits(user, Access.PUBLISH, will_topic):
            return Refusal.NOT_AUTHORIZED
        return None

    def permits(self, user: str | None, access: Access, topic: str) -> bool:
        """Whether `user` may subscribe to the filter `topic`, publish to it, or receive a message on it."""
        if user is None:
            return False
        if user == self.controller_user:
            return topic == self.topics.prefix or topic.startswith(f"{self.topics.prefix}/")
        own = self.topics.device_root(user) if _valid_device(user) else None
        if own is None or not topic.startswith(f"{own}/"):
            return False
        rest = topic.removeprefix(f"{own}/").split("/")
        if access is Access.PUBLISH:
            return (len(rest) == 2 and rest[0] == TopicKind.STATUS and _is_level(rest[1])) or (
                len(rest) == 1 and rest[0] in (TopicKind.ANNOUNCE, TopicKind.PRESENCE)
            )
        readable = (TopicKind.COMMAND, TopicKind.CANCEL)
        if access is Access.SUBSCRIBE:
            return len(rest) == 2 and rest[0] in readable and (rest[1] == "+" or _is_level(rest[1]))
        return len(rest) == 2 and rest[0] in readable and _is_level(rest[1])

    def may_retain(self, user: str | None, topic: str) -> bool:
        """Whether the broker keeps what `user` published on `topic` (already permitted) for later subscribers: the
        controller's commands, and a device's own announcement and presence, which agents retain. Not a device's
        statuses: it may name any command id, so each one kept would hold memory for good."""
        if user == self.controller_user:
            return True
        return (
            user is not None
            and _valid_device(user)
            and topic
            in (
                self.topics.announce(user),
                self.topics.presence(user),
            )
        )


def _is_level(level: str) -> bool:
    return bool(level) and "+" not in level and "#" not in level


def _valid_device(user: str) -> bool:
    try:
        validate_id(user)
    except TetherProtocolError:
        return False
    return True

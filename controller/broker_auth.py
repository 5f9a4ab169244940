"""Who may do what on a Mosquitto broker: a pattern ACL that confines each device to its own topics, and the
password file entries its users log in with (`tether broker acl`, docs/security.md#broker-acl).

Devices log in with their device id as username, so one ACL of `%u` patterns serves every device, present and
future: adding a device only adds a password line.
"""

import base64
import hashlib
import secrets
from collections.abc import Iterable

from shared.topics import TopicKind, Topics, validate_id

DEFAULT_CONTROLLER_USER = "tether-controller"
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

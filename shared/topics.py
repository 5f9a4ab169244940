"""The only place MQTT topics are built or parsed.

Every device owns the subtree `<prefix>/devices/<device_id>/`, so one broker ACL pattern per direction confines a
device to its own commands, statuses, announcement and presence. The controller alone publishes under
`<prefix>/operations/`: events about whole operations, for integrations.
"""

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from shared.errors import TopicError

DEFAULT_PREFIX = "tether/v1"
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
"""Device and command ids: no `/`, `+`, `#` or spaces, so they are always exactly one topic level."""
ID_RULE = "use 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"


class TopicKind(StrEnum):
    COMMAND = "commands"
    STATUS = "status"
    ANNOUNCE = "announce"
    PRESENCE = "presence"
    CANCEL = "cancel"


_WITH_COMMAND_ID = frozenset({TopicKind.COMMAND, TopicKind.STATUS, TopicKind.CANCEL})
_KIND_OF_LEVEL = {str(kind): kind for kind in TopicKind}
"""A dict lookup: the controller parses every status's topic, and `TopicKind(level)` costs five times as much."""


class ParsedTopic(NamedTuple):
    """A named tuple, not a frozen dataclass: built for every message the controller receives, it costs a third."""

    kind: TopicKind
    device_id: str
    command_id: str | None = None


def agent_client_id(device_id: str) -> str:
    """The MQTT client id of a device's connection; a broker under `tether broker acl` lets a device's login use no
    other (docs/security.md#broker-acl)."""
    return f"tetherd-{device_id}"


def validate_id(value: str, what: str = "id") -> str:
    """Return `value` if it can be one topic level; raise TopicError naming `what` otherwise."""
    if not ID_PATTERN.fullmatch(value):  # match() would let `$` accept a trailing newline
        raise TopicError(f"invalid {what} {value!r}: {ID_RULE}")
    return value


_ID_LEVEL = ID_PATTERN.pattern.removeprefix("^").removesuffix("$")
_KIND_LEVEL = "|".join(re.escape(level) for level in _KIND_OF_LEVEL)


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic builder and parser for one prefix (default `tether/v1`)."""

    prefix: str = DEFAULT_PREFIX
    _device_topic: re.Pattern[str] = field(init=False, repr=False, compare=False)
    """Any well-formed topic a device's subtree holds, in one match: the controller parses every status's topic."""

    def __post_init__(self) -> None:
        levels = self.prefix.split("/")
        if not self.prefix or any(not level or "+" in level or "#" in level for level in levels):
            raise TopicError(f"invalid topic prefix {self.prefix!r}: non-empty levels without wildcards")
        pattern = rf"{re.escape(self.prefix)}/devices/({_ID_LEVEL})/({_KIND_LEVEL})(?:/({_ID_LEVEL}))?"
        object.__setattr__(self, "_device_topic", re.compile(pattern))

    def device_root(self, device_id: str) -> str:
        return f"{self.prefix}/devices/{validate_id(device_id, 'device id')}"

    def command(self, device_id: str, command_id: str) -> str:
        return f"{self.device_root(device_id)}/{TopicKind.COMMAND}/{validate_id(command_id, 'command id')}"

    def status(self, device_id: str, command_id: str) -> str:
        return f"{self.device_root(device_id)}/{TopicKind.STATUS}/{validate_id(command_id, 'command id')}"

    def cancel(self, device_id: str, command_id: str) -> str:
        return f"{self.device_root(device_id)}/{TopicKind.CANCEL}/{validate_id(command_id, 'command id')}"

    def announce(self, device_id: str) -> str:
        return f"{self.device_root(device_id)}/{TopicKind.ANNOUNCE}"

    def presence(self, device_id: str) -> str:
        return f"{self.device_root(device_id)}/{TopicKind.PRESENCE}"

    def device_commands_filter(self, device_id: str) -> str:
        return f"{self.device_root(device_id)}/{TopicKind.COMMAND}/+"

    def device_filters(self, device_id: str) -> list[str]:
        """What an agent subscribes to, in one SUBSCRIBE: its own commands and their cancellations, nothing else.

        One SUBSCRIBE matters: a cancellation published after its command's retained message was cleared then always
        reaches an agent that received the command.
        """
        return [self.device_commands_filter(device_id), f"{self.device_root(device_id)}/{TopicKind.CANCEL}/+"]

    def operation_events(self, operation_id: str) -> str:
        return f"{self.prefix}/operations/{validate_id(operation_id, 'operation id')}/events"

    def operation_events_filter(self) -> str:
        """Every operation's events, for an integration that watches the whole fleet."""
        return f"{self.prefix}/operations/+/events"

    def fleet_filter(self, kind: TopicKind) -> str:
        """What the controller subscribes to for one kind of device-published message."""
        suffix = "/+" if kind in _WITH_COMMAND_ID else ""
        return f"{self.prefix}/devices/+/{kind}{suffix}"

    def parse(self, topic: str) -> ParsedTopic:
        """Split a topic under this prefix into its kind and ids; raise TopicError for anything else."""
        match = self._device_topic.fullmatch(topic)
        if match is not None:
            device_id, level, command_id = match.groups()
            kind = _KIND_OF_LEVEL[level]
            if (command_id is not None) == (kind in _WITH_COMMAND_ID):
                return ParsedTopic(kind, device_id, command_id)
        return self._parse_level_by_level(topic)

    def _parse_level_by_level(self, topic: str) -> ParsedTopic:
        """`parse` the long way, which says what is wrong with a topic that is not well formed."""
        head = f"{self.prefix}/devices/"
        if not topic.startswith(head):
            raise TopicError(f"topic {topic!r} is not under {head!r}")
        levels = topic[len(head) :].split("/")
        kind = _KIND_OF_LEVEL.get(levels[1]) if len(levels) > 1 else None
        if kind is None:
            raise TopicError(f"topic {topic!r} has no known kind")
        expected_levels = 3 if kind in _WITH_COMMAND_ID else 2
        if len(levels) != expected_levels:
            raise TopicError(f"topic {topic!r} has {len(levels)} levels after the prefix, expected {expected_levels}")
        device_id = validate_id(levels[0], "device id")
        command_id = validate_id(levels[2], "command id") if kind in _WITH_COMMAND_ID else None
        return ParsedTopic(kind, device_id, command_id)

"""Topic building and parsing round-trips, and everything the parser refuses."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import TopicError
from shared.topics import ID_PATTERN, ParsedTopic, TopicKind, Topics, validate_id

T = Topics()


@pytest.mark.parametrize("prefix", ["tether/v1", "acme/fleet/tether", "x"])
def test_round_trips(prefix: str) -> None:
    topics = Topics(prefix)
    assert topics.parse(topics.command("dev-1", "c1")) == ParsedTopic(TopicKind.COMMAND, "dev-1", "c1")
    assert topics.parse(topics.status("dev-1", "c1")) == ParsedTopic(TopicKind.STATUS, "dev-1", "c1")
    assert topics.parse(topics.announce("dev-1")) == ParsedTopic(TopicKind.ANNOUNCE, "dev-1")
    assert topics.parse(topics.presence("dev-1")) == ParsedTopic(TopicKind.PRESENCE, "dev-1")


def test_layout_is_per_device() -> None:
    assert T.command("kiosk-1", "c-9") == "tether/v1/devices/kiosk-1/commands/c-9"
    assert T.status("kiosk-1", "c-9") == "tether/v1/devices/kiosk-1/status/c-9"
    assert T.announce("kiosk-1") == "tether/v1/devices/kiosk-1/announce"
    assert T.presence("kiosk-1") == "tether/v1/devices/kiosk-1/presence"
    assert T.device_commands_filter("kiosk-1") == "tether/v1/devices/kiosk-1/commands/+"
    assert T.fleet_filter(TopicKind.STATUS) == "tether/v1/devices/+/status/+"
    assert T.fleet_filter(TopicKind.ANNOUNCE) == "tether/v1/devices/+/announce"
    assert T.fleet_filter(TopicKind.PRESENCE) == "tether/v1/devices/+/presence"


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/devices/d/announce",
        "tether/v1/devices/d",
        "tether/v1/devices/d/unknown",
        "tether/v1/devices/d/commands",
        "tether/v1/devices/d/commands/c/extra",
        "tether/v1/devices/d/announce/extra",
        "tether/v1/devices//announce",
        "tether/v1/devices/d d/announce",
        "tether/v1/devices/d/status/-bad",
        "tether/v1/devicesX/d/announce",
        "tether/v1/devices/d/status/c\n",
        "tether/v1/devices/d\n/announce",
    ],
)
def test_parse_refuses(topic: str) -> None:
    with pytest.raises(TopicError):
        T.parse(topic)


@pytest.mark.parametrize("value", ["", "a/b", "a+b", "a#", " a", "-a", "a" * 129, "é", "a\n"])
def test_invalid_ids(value: str) -> None:
    with pytest.raises(TopicError, match="invalid device id"):
        validate_id(value, "device id")


@pytest.mark.parametrize("value", ["a", "A-1", "dev_1.2:3", "0", "a" * 128, "3f2b6c1e-9d7a-4c1b-8e4f-0a1b2c3d4e5f"])
def test_valid_ids(value: str) -> None:
    assert validate_id(value) == value


@pytest.mark.parametrize("prefix", ["", "/a", "a/", "a//b", "a/+/b", "a/#"])
def test_invalid_prefix(prefix: str) -> None:
    with pytest.raises(TopicError):
        Topics(prefix)


def test_builders_refuse_wildcards_in_ids() -> None:
    with pytest.raises(TopicError):
        T.command("+", "c1")
    with pytest.raises(TopicError):
        T.status("d", "#")


def _built(parsed: ParsedTopic) -> str:
    """The topic the builders make for `parsed`."""
    if parsed.command_id is None:
        build_device_topic = {TopicKind.ANNOUNCE: T.announce, TopicKind.PRESENCE: T.presence}[parsed.kind]
        return build_device_topic(parsed.device_id)
    build = {TopicKind.COMMAND: T.command, TopicKind.STATUS: T.status, TopicKind.CANCEL: T.cancel}[parsed.kind]
    return build(parsed.device_id, parsed.command_id)


_LEVELS = st.one_of(
    st.sampled_from([*(str(kind) for kind in TopicKind), "d-1", "c:2", "", "-x", "a b", "a\n", "+", "#", "x" * 129]),
    st.text(max_size=4),
)


@given(st.lists(_LEVELS, min_size=1, max_size=4))
def test_parse_accepts_only_what_the_builders_make(levels: list[str]) -> None:
    topic = "tether/v1/devices/" + "/".join(levels)
    try:
        parsed = T.parse(topic)
    except TopicError:
        return
    assert _built(parsed) == topic


_IDS = st.from_regex(ID_PATTERN, fullmatch=True)


@given(_IDS, _IDS, st.sampled_from(list(TopicKind)))
def test_parse_accepts_everything_the_builders_make(device_id: str, command_id: str, kind: TopicKind) -> None:
    with_command = kind in (TopicKind.COMMAND, TopicKind.STATUS, TopicKind.CANCEL)
    parsed = ParsedTopic(kind, device_id, command_id if with_command else None)
    assert T.parse(_built(parsed)) == parsed

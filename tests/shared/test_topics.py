"""Topic building and parsing round-trips, and everything the parser refuses."""

import pytest

from shared.errors import TopicError
from shared.topics import ParsedTopic, TopicKind, Topics, validate_id

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
    ],
)
def test_parse_refuses(topic: str) -> None:
    with pytest.raises(TopicError):
        T.parse(topic)


@pytest.mark.parametrize("value", ["", "a/b", "a+b", "a#", " a", "-a", "a" * 129, "é"])
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

"""Wire models: what they accept, what they refuse, and that encode/decode round-trips."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import Field

from shared.errors import PayloadError
from shared.messages import (
    MAX_PAYLOAD_BYTES,
    Announcement,
    ArtifactUpload,
    Command,
    CommandBatch,
    Presence,
    StatusReport,
    _Message,
    decode,
    encode,
)
from shared.operations import DeviceStatus, OperationType, Platform, PresenceState
from shared.signing import canonical

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_all_91_operation_types() -> None:
    assert len(OperationType) == 91
    assert {"CONVERGE", "RUN_SHELL_SCRIPT", "DECLARATIVE_MANAGEMENT", "SET_PFN"} <= set(OperationType)


def test_command_round_trip() -> None:
    command = Command(
        command_id="c1",
        operation_id="op",
        device_id="d1",
        operation_type=OperationType.RUN_SHELL_SCRIPT,
        arguments={"script": "echo hi"},
        issued_at=NOW,
    )
    encoded = encode(command)
    assert b'"issued_at":"2026-11-22T12:00:00Z"' in encoded
    assert b"signature" not in encoded
    assert decode(Command, encoded) == command


def test_status_round_trip() -> None:
    report = StatusReport(
        command_id="c1", device_id="d1", status=DeviceStatus.SUCCESSFUL, timestamp=NOW, result={"exit_code": 0}
    )
    assert decode(StatusReport, encode(report)) == report


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        (b"not json", "payload"),
        (b'{"command_id":"c1","device_id":"d1","status":"DONE","timestamp":"2026-11-22T12:00:00Z"}', "status"),
        (b'{"command_id":"c1","device_id":"d1","status":"PENDING","timestamp":"2026-11-22T12:00:00"}', "timestamp"),
        (b'{"command_id":"c/1","device_id":"d1","status":"PENDING","timestamp":"2026-11-22T12:00:00Z"}', "command_id"),
        (b'{"device_id":"d1","status":"PENDING","timestamp":"2026-11-22T12:00:00Z"}', "command_id"),
        (b'{"command_id":"c1","device_id":"d1","status":"FAILED","timestamp":"2026-11-22T12:00:00Z"}', "payload"),
        (
            b'{"command_id":"c1","device_id":"d1","status":"EXECUTING","timestamp":"2026-11-22T12:00:00Z",'
            b'"progress":101}',
            "progress",
        ),
    ],
)
def test_status_refuses(payload: bytes, where: str) -> None:
    with pytest.raises(PayloadError, match=f"invalid StatusReport.*{where}"):
        decode(StatusReport, payload)


def test_an_invalid_id_is_worded_as_the_topic_rules_word_it() -> None:
    payload = b'{"command_id":"c 1","device_id":"d1","status":"PENDING","timestamp":"2026-11-22T12:00:00Z"}'
    with pytest.raises(PayloadError) as refused:
        decode(StatusReport, payload)
    assert str(refused.value) == (
        "invalid StatusReport (1 errors): command_id: invalid id 'c 1': "
        "use 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"
    )
    assert StatusReport(command_id="a" * 128, device_id="d:1.x_y-z", status=DeviceStatus.PENDING, timestamp=NOW)
    with pytest.raises(ValueError, match="String should match pattern"):
        StatusReport(command_id="a" * 129, device_id="d1", status=DeviceStatus.PENDING, timestamp=NOW)


def test_other_patterns_keep_their_own_wording() -> None:
    class Labelled(_Message):
        label: str = Field(pattern=r"^[a-z]+$")

    with pytest.raises(PayloadError, match="label: String should match pattern"):
        decode(Labelled, b'{"label": "Not an id rule"}')


def test_failed_needs_reason_and_success_refuses_one() -> None:
    with pytest.raises(ValueError, match="needs a failure_reason"):
        StatusReport(command_id="c", device_id="d", status=DeviceStatus.FAILED, timestamp=NOW)
    with pytest.raises(ValueError, match="cannot carry a failure_reason"):
        StatusReport(command_id="c", device_id="d", status=DeviceStatus.SUCCESSFUL, timestamp=NOW, failure_reason="x")


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadError, match="exceeds"):
        decode(Presence, b" " * (MAX_PAYLOAD_BYTES + 1))


def test_announcement_validates_time_zone_and_capabilities() -> None:
    base = {
        "device_id": "d1",
        "platform": "linux",
        "agent_version": "0.1.0",
        "announced_at": "2026-11-22T12:00:00Z",
    }
    ok = Announcement.model_validate({**base, "time_zone": "Asia/Tokyo", "capabilities": ["REBOOT"]})
    assert ok.platform is Platform.LINUX
    assert ok.capabilities == [OperationType.REBOOT]
    # A device's tz database may be newer than the controller's: a zone shaped like a name registers the device.
    for zone in ("Mars/Olympus_Mons", "America", "Etc/GMT+5"):
        assert Announcement.model_validate({**base, "time_zone": zone}).time_zone == zone
    for zone in ("../etc/passwd", "/etc/localtime", "", "Europe/", "x" * 65, "Europe/Berlin\n"):
        with pytest.raises(ValueError, match="unknown IANA time zone"):
            Announcement.model_validate({**base, "time_zone": zone})
    with pytest.raises(ValueError, match="capabilities"):
        Announcement.model_validate({**base, "capabilities": ["TELEPORT"]})
    with pytest.raises(ValueError, match="platform"):
        Announcement.model_validate({**base, "platform": "ios"})


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    presence = decode(Presence, b'{"device_id":"d1","state":"online","future":1}')
    assert presence.state is PresenceState.ONLINE


@pytest.mark.parametrize(
    "per_device",
    [
        {},
        {"start_before": datetime(2026, 12, 2, 10, 0, 0, 123000, tzinfo=UTC)},
        {"schedule": {"start_datetime": "2026-12-01T02:00:00+05:30", "device_time_zone": "Asia/Tokyo"}},
        {
            "artifact_upload": ArtifactUpload(url="http://controller:8080/v0/x", token="t" * 20, max_bytes=10),
            "start_before": datetime(2026, 12, 2, tzinfo=UTC),
        },
    ],
)
def test_a_command_batch_encodes_what_a_command_model_would(per_device: dict[str, Any]) -> None:
    shared = {
        "operation_id": "op-1",
        "operation_type": OperationType.RUN_SHELL_SCRIPT,
        "arguments": {"script": "uptime", "timeout_s": 60},
        "issued_at": datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
    }
    batch = CommandBatch(Command(command_id="first", device_id="d0", **shared))

    payload = batch.encode("cmd-7", "kiosk-7", **per_device)

    expected = Command(command_id="cmd-7", device_id="kiosk-7", **shared, **per_device)
    assert decode(Command, payload) == expected
    assert json.loads(payload) == json.loads(encode(expected))
    assert payload == canonical(json.loads(payload))  # what a signature covers, as it is

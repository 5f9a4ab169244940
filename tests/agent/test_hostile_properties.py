"""Property-based hostile input to the agent's MQTT entry point, with a real session, runner and journal: nothing
it receives crashes it, and with trusted keys nothing unsigned is ever queued to run, only refused."""

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from agent.journal import Stage
from agent.session import Session
from shared.messages import Announcement, utc_now
from shared.operations import DeviceStatus, OperationType, Platform
from shared.signing import Verifier
from shared.topics import Topics
from shared.transport import BrokerUrl
from tests.agent.test_runner import Bench
from tests.fakes import FakeTools

HOSTILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

LEVEL = st.text(alphabet=st.characters(blacklist_characters="/\0#+"), min_size=1, max_size=10)
OWN_TOPICS = st.builds(
    lambda kind, command: f"tether/v1/devices/d1/{kind}/{command}", st.sampled_from(["commands", "cancel"]), LEVEL
)
ANY_TOPIC = st.text(alphabet=st.characters(blacklist_characters="\0#+"), min_size=1, max_size=40)
"""What a broker can deliver: any topic name, never a wildcard."""
TOPICS = st.one_of(OWN_TOPICS, ANY_TOPIC, st.builds(lambda d: f"tether/v1/devices/{d}/commands/c", LEVEL))
COMMANDS = st.fixed_dictionaries(
    {
        "command_id": LEVEL,
        "operation_id": st.text(min_size=1, max_size=10),
        "device_id": st.sampled_from(["d1", "d2"]),
        "operation_type": st.sampled_from([str(t) for t in OperationType][:20]) | st.text(max_size=8),
        "arguments": st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6), max_size=3),
        "issued_at": st.just("2026-12-01T10:00:00Z"),
    },
    optional={
        "start_before": st.sampled_from(["2099-01-01T00:00:00Z", "2000-01-01T00:00:00Z", "tomorrow"]),
        "signature": st.text(max_size=40),
        "reason": st.text(max_size=10),
        "requested_at": st.just("2026-12-01T10:00:00Z"),
    },
)
PAYLOADS = st.one_of(st.binary(max_size=200), COMMANDS.map(lambda body: json.dumps(body).encode()))


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    return Bench(tmp_path, FakeTools(tmp_path / "bin"))


def session(bench: Bench) -> Session:
    announcement = Announcement(device_id="d1", platform=Platform.LINUX, agent_version="0", announced_at=utc_now())
    return Session(
        urls=[BrokerUrl.parse("mqtt://127.0.0.1:1")],
        device_id="d1",
        topics=Topics(),
        announcement=announcement,
        runner=bench.runner,
        verifier=Verifier([SigningKey.generate().verify_key]),
    )


def message(topic: str, payload: bytes) -> Any:
    return aiomqtt.Message(topic, payload, qos=1, retain=True, mid=1, properties=None)


@HOSTILE
@given(topic=TOPICS, payload=PAYLOADS)
def test_nothing_received_crashes_the_agent_or_runs_unsigned(bench: Bench, topic: str, payload: bytes) -> None:
    before = len(bench.published)
    asyncio.run(session(bench)._on_message(message(topic, payload)))  # the entry point under test
    assert bench.runner._queue.empty()  # nothing was queued to run
    assert bench.journal.in_stage(Stage.QUEUED) == []
    assert bench.journal.in_stage(Stage.EXECUTING) == []
    for report in bench.published[before:]:  # a well-formed command for this device is refused, never started
        assert report.status is DeviceStatus.FAILED
        assert report.failure_reason is not None
        assert report.failure_reason.startswith(("signature invalid", "expired"))
    assert bench.tools.calls() == []


VALID_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,15}", fullmatch=True)


@HOSTILE
@given(
    command_id=VALID_ID,
    operation_type=st.sampled_from(list(OperationType)),
    arguments=st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6), max_size=3),
    signature=st.none()
    | st.text(max_size=60)
    | st.from_regex(r"ed25519:[0-9a-f]{16}:[A-Za-z0-9_-]{86}", fullmatch=True),
    start_before=st.sampled_from([None, "2099-01-01T00:00:00Z", "2000-01-01T00:00:00Z"]),
)
def test_a_well_formed_command_that_is_not_genuinely_signed_is_refused_with_the_reason(
    bench: Bench,
    command_id: str,
    operation_type: OperationType,
    arguments: dict[str, Any],
    signature: str | None,
    start_before: str | None,
) -> None:
    body: dict[str, Any] = {
        "command_id": command_id,
        "operation_id": "op",
        "device_id": "d1",
        "operation_type": str(operation_type),
        "arguments": arguments,
        "issued_at": "2026-12-01T10:00:00Z",
    }
    if signature is not None:
        body["signature"] = signature
    if start_before is not None:
        body["start_before"] = start_before
    before = len(bench.published)
    seen = bench.journal.get(command_id) is not None
    asyncio.run(
        session(bench)._on_message(message(f"tether/v1/devices/d1/commands/{command_id}", json.dumps(body).encode()))
    )
    assert bench.runner._queue.empty()
    if not seen:  # a command id seen before is a duplicate: its first outcome is re-sent
        (refusal,) = bench.published[before:]
        assert refusal.command_id == command_id
        assert refusal.status is DeviceStatus.FAILED
        assert refusal.failure_reason is not None
        assert refusal.failure_reason.startswith("signature invalid")
    assert bench.tools.calls() == []

"""Property-based hostile input to the controller's entry points, on a real store: whatever arrives on MQTT or over
HTTP, nothing crashes, each refusal is a log line or a 4xx, and operations still end."""

import json
import logging
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.completion import finish_if_done
from controller.fastmqtt.codec import Publish
from controller.ingest import Ingest
from controller.store import Store
from shared.messages import MAX_PAYLOAD_BYTES, StatusReport, utc_now
from shared.operations import DeviceStatus, OperationState
from tests.controller.api_harness import Api
from tests.controller.test_control import commands, operation
from tests.controller.test_counts import recount

HOSTILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

TEXT = st.text(max_size=20) | st.text(st.sampled_from(["a", "é", "\ud800", "\udfff"]), max_size=4)
"""Sometimes with lone surrogates: JSON carries them as escapes, UTF-8 cannot encode them."""
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)
LEVELS = st.text(alphabet=st.characters(blacklist_characters="/\0"), max_size=12)
TOPICS = st.one_of(
    st.text(max_size=60),
    st.builds(lambda levels: "tether/v1/devices/" + "/".join(levels), st.lists(LEVELS, max_size=4)),
    st.builds(
        lambda d, k, c: f"tether/v1/devices/{d}/{k}/{c}", LEVELS, st.sampled_from(["status", "commands"]), LEVELS
    ),
    st.builds(lambda d, k: f"tether/v1/devices/{d}/{k}", LEVELS, st.sampled_from(["announce", "presence", "health"])),
)
PAYLOADS = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.builds(lambda n: b"{" * n, st.integers(0, 5000)),
    st.just(b"x" * (MAX_PAYLOAD_BYTES + 1)),
)


def status_of(store: Store, command_id: str) -> DeviceStatus:
    row = store.conn.execute("SELECT status FROM device_operations WHERE command_id = ?", (command_id,)).fetchone()
    return DeviceStatus(row[0])


@HOSTILE
@given(topic=TOPICS, payload=PAYLOADS)
def test_anything_on_any_topic_is_parsed_or_skipped_with_a_log_line(
    ingest: Ingest, caplog: pytest.LogCaptureFixture, topic: str, payload: bytes
) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="controller.ingest"):
        done = ingest.on_message(Publish(topic, payload, qos=1, retain=False, dup=False, packet_id=1))
    if done and payload:
        assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped a message on ")]


STATUS_CHOICES = st.sampled_from(list(DeviceStatus))


@HOSTILE
@given(data=st.data())
def test_any_sequence_of_statuses_keeps_the_counts_and_never_leaves_an_operation_stuck(
    store: Store, data: st.DataObject
) -> None:
    operation_id = operation(store, [f"d{n}" for n in range(4)])
    ids = list(commands(store, operation_id).items())
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    reports = []
    for _ in range(data.draw(st.integers(0, 30))):
        device, command = rng.choice(ids)
        topic_device = device if rng.random() < 0.8 else rng.choice(ids)[0]  # some come on another device's topic
        status = data.draw(STATUS_CHOICES)
        body = {
            "command_id": command if rng.random() < 0.9 else "never-sent",
            "device_id": device if rng.random() < 0.9 else "someone-else",
            "status": str(status),
            "timestamp": "2026-12-01T10:00:00Z",
            **({"failure_reason": "boom"} if status is DeviceStatus.FAILED else {}),
        }
        reports.append((topic_device, body))
    before = {command: status_of(store, command) for _, command in ids}
    store.commands.apply_statuses([(device, StatusReport.model_validate(body)) for device, body in reports])
    assert store.operations.stats(operation_id) == recount(store.conn)[operation_id]
    order = [DeviceStatus.PENDING, DeviceStatus.EXECUTING]
    for _, command in ids:
        after, was = status_of(store, command), before[command]
        if was.is_terminal:
            assert after == was  # the first final status stands
        elif after in order:
            assert order.index(after) >= order.index(was)  # never backwards
    # Whatever came before, the devices' final statuses end the operation.
    finals = [
        (
            device,
            StatusReport(command_id=command, device_id=device, status=DeviceStatus.SUCCESSFUL, timestamp=utc_now()),
        )
        for device, command in ids
    ]
    store.commands.apply_statuses(finals)
    finish_if_done(store, operation_id)
    assert store.operations.get(operation_id).state is OperationState.COMPLETED


@HOSTILE
@given(body=JSON_VALUES, path=st.sampled_from(["/v0/operations/", "/devicecontrol/operations"]))
def test_any_json_body_is_created_or_refused_with_a_4xx_naming_the_problem(api: Api, body: Any, path: str) -> None:
    content = json.dumps(body).encode()  # with escapes: the client encodes any text
    answer = api.request("POST", path, content=content, headers={"Content-Type": "application/json"})
    assert answer.status_code in (201, 400, 415), answer.text
    if answer.status_code == 400:
        assert answer.json()["message"]


@HOSTILE
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_body_are_refused_with_a_4xx(api: Api, raw: bytes) -> None:
    answer = api.request("POST", "/v0/operations/", content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500, answer.text

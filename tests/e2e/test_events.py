"""Operation events on a running controller: published on MQTT for integrations, and streamed as server-sent events."""

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from shared.events import OperationEvent
from shared.lifecycle import OPERATION_TRANSITIONS
from shared.operations import OperationState
from tests.e2e.harness import Agent, Controller, tether, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["mosquitto", "amqtt"])
def controller(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Controller]:
    external = request.getfixturevalue("mosquitto_url") if request.param == "mosquitto" else None
    started = Controller(tmp_path, broker_url=external)
    agents = [Agent(tmp_path, started.broker_url, device_id, "--tag", "lab") for device_id in ("e1", "e2")]
    try:
        started.wait_online("e1", "e2")
        yield started
    finally:
        for agent in agents:
            agent.stop()
        started.stop()


class EventTopic:
    """A third-party integration: a plain MQTT client on every operation's events topic."""

    def __init__(self, broker_url: str) -> None:
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        self.events: list[OperationEvent] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"integration-{time.monotonic_ns()}")
        self._client.on_message = lambda _c, _u, message: self.events.append(
            OperationEvent.model_validate_json(message.payload)
        )
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(host, int(port))
        self._client.loop_start()
        self._client.subscribe("tether/v1/operations/+/events", qos=1)
        assert self._subscribed.wait(5)

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def sse(controller: Controller, operation_id: str, **headers: str) -> list[tuple[str, OperationEvent]]:
    """Read an event stream to its end: (SSE event name, parsed event)."""
    frames = []
    with controller.http.stream("GET", f"/v0/operations/{operation_id}/events", headers=headers, timeout=30) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in answer.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                assert name is not None
                frames.append((name, OperationEvent.model_validate_json(line.removeprefix("data: "))))
    return frames


def assert_states_follow_the_lifecycle(events: list[OperationEvent]) -> None:
    states = [e.state for e in events]
    for before, after in itertools.pairwise(states):
        assert after == before or after in OPERATION_TRANSITIONS[before], states


def test_integrations_see_every_step_of_an_operation_on_mqtt(controller: Controller) -> None:
    integration = EventTopic(controller.broker_url)
    try:
        operation = controller.create(
            {
                "operation_type": "RUN_SHELL_SCRIPT",
                "operation_device_query": {"tags": "lab"},
                "arguments": {"script": "sleep 0.5; echo done"},
            }
        )
        controller.wait_finished(operation["id"])
        ours = wait_for(
            "the final event on MQTT",
            lambda: (
                [e for e in integration.events if e.operation_id == operation["id"]]
                if any(e.ended for e in integration.events)
                else None
            ),
        )
    finally:
        integration.stop()

    steps = [e.activity.operation_state for e in ours if e.activity]
    assert steps == [
        "CREATED",
        "QUERY INITIATED",
        "QUERY RESOLVED",
        "DISPATCHING",
        "DISPATCHED",
        "PROCESSING",
        "SUCCESS",
    ]
    assert_states_follow_the_lifecycle(ours)
    assert ours[-1].state is OperationState.COMPLETED
    assert ours[-1].devices.successful == 2
    assert ours[-1].operation_stats.device_operation_statuses_count.success_device_count == 2
    assert sum(e.ended for e in ours) == 1
    stored = controller.get(f"/v0/operations/{operation['id']}/")
    assert [a["operation_state"] for a in stored["operation_activity"]] == steps


def test_an_event_stream_runs_from_a_snapshot_to_the_end_and_closes(controller: Controller) -> None:
    operation = controller.create(
        {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"tags": "lab"},
            "arguments": {"script": "sleep 1.5; echo done"},
        }
    )

    frames = sse(controller, operation["id"])

    names = [name for name, _ in frames]
    events = [event for _, event in frames]
    assert names[0] == "snapshot"
    assert set(names[1:]) <= {"activity", "stats"}
    assert [e.event for e in events] == names
    assert_states_follow_the_lifecycle(events)
    seqs = [e.activity.seq for e in events if e.activity]
    assert seqs == sorted(seqs)  # nothing older than the snapshot is replayed after it
    assert events[-1].ended
    assert events[-1].activity is not None
    assert events[-1].activity.operation_state == "SUCCESS"
    assert events[-1].devices.successful == 2
    assert any(e.devices.executing for e in events)  # it saw the devices running, not only the end


def test_an_ended_operation_streams_its_snapshot_only(controller: Controller) -> None:
    operation = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "e1"}})
    controller.wait_finished(operation["id"])

    ((name, only),) = sse(controller, operation["id"])

    assert (name, only.state, only.devices.successful) == ("snapshot", OperationState.COMPLETED, 1)


def test_the_event_stream_needs_a_key_and_a_known_operation(controller: Controller, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{controller.http_port}/v0/operations/nope/events"
    assert httpx.get(url).status_code == 401
    assert controller.http.get("/v0/operations/nope/events").status_code == 404
    reader = tether("keys", "create", "--name", "auditor", "--role", "read", "--db", str(controller.db)).strip()
    operation = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "e1"}})
    controller.wait_finished(operation["id"])
    answer = httpx.get(f"{url.replace('nope', operation['id'])}", headers={"Authorization": f"Bearer {reader}"})
    assert answer.status_code == 200
    assert json.loads(answer.text.split("data: ", 1)[1])["state"] == "COMPLETED"


def test_stopping_the_controller_ends_open_streams_at_once(controller: Controller) -> None:
    operation = controller.create(
        {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"device_id": "e1"},
            "arguments": {"script": "sleep 60"},
        }
    )
    with controller.http.stream("GET", f"/v0/operations/{operation['id']}/events", timeout=30) as answer:
        lines = answer.iter_lines()
        assert next(lines) == "event: snapshot"
        started = time.monotonic()
        controller.process.popen.terminate()
        assert controller.process.popen.wait(10) == 0
        assert time.monotonic() - started < 5
        list(lines)  # returns: the stream ended rather than hanging

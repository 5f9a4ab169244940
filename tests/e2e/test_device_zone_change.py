"""Device time follows the device: a device whose zone changes after its operation resolved runs in its new zone."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.harness import Agent, Controller, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def running(tmp_path: Path, mosquitto_url: str) -> Iterator[tuple[Controller, Agent]]:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "roamer", "--time-zone", "Pacific/Honolulu")
    agent.tools.add("timedatectl")
    try:
        controller.wait_online("roamer")
        yield controller, agent
    except BaseException:
        print(f"--- agent ---\n{agent.process.output()[-3000:]}")
        print(f"--- controller ---\n{controller.process.output()[-3000:]}")
        raise
    finally:
        agent.stop()
        controller.stop()


@pytest.mark.parametrize(
    ("operation_type", "arguments"),
    [("SET_TIMEZONE", {"timezone": "Asia/Tokyo"}), ("UPDATE_DEVICE_CONFIG", {"time_zone": "Asia/Tokyo"})],
)
def test_a_device_moved_to_where_its_window_is_open_runs_at_once(
    running: tuple[Controller, Agent], operation_type: str, arguments: dict[str, Any]
) -> None:
    controller, agent = running
    # The next 30 minutes of Tokyo's wall clock, written as UTC: 19 hours away in Honolulu (UTC-10).
    start = datetime.now(ZoneInfo("Asia/Tokyo")).replace(microsecond=0, tzinfo=UTC) - timedelta(minutes=1)
    window = controller.create(
        {
            "operation_type": "LOCK",
            "operation_device_query": {"device_id": "roamer"},
            "schedule_type": "WINDOW",
            "schedule_args": {
                "start_datetime": start.isoformat(),
                "end_datetime": (start + timedelta(minutes=30)).isoformat(),
                "time_type": "device",
            },
        }
    )
    waiting = controller.device_results(window["id"])["roamer"]
    assert (waiting["status"], waiting["dispatch_state"]) == ("PENDING", "waiting")
    assert timedelta(hours=18) < datetime.fromisoformat(waiting["not_before"]) - datetime.now(UTC) < timedelta(hours=20)

    moved = controller.create(
        {"operation_type": operation_type, "operation_device_query": {"device_id": "roamer"}, "arguments": arguments}
    )
    assert controller.wait_finished(moved["id"])["state"] == "COMPLETED"
    assert controller.device_results(moved["id"])["roamer"]["status"] == "SUCCESSFUL"
    wait_for("the new zone announced", lambda: controller.get("/v0/devices/roamer/")["time_zone"] == "Asia/Tokyo")

    ended = controller.wait_finished(window["id"], timeout=30)
    ran = controller.device_results(window["id"])["roamer"]
    assert (ended["state"], ran["status"]) == ("COMPLETED", "SUCCESSFUL")
    # Planned again in Tokyo, where the window had opened a minute before it was created: due as it was planned.
    opened_in_tokyo = start - timedelta(hours=9)
    assert opened_in_tokyo < datetime.fromisoformat(ran["not_before"]) < opened_in_tokyo + timedelta(minutes=30)
    assert agent.locks() == [["loginctl", "lock-sessions"]]
    expected = [["timedatectl", "set-timezone", "Asia/Tokyo"]] if operation_type == "SET_TIMEZONE" else []
    assert agent.tools.calls("timedatectl") == expected

"""A device whose time zone changes after its device-time operation resolved is planned again in its new zone."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.clock import to_iso
from controller.ingest import store_received
from controller.store.commands import Deadline
from shared.messages import Announcement, utc_now
from shared.operations import Platform
from shared.schedule import WINDOW_ENDED
from tests.controller.api_harness import Api

DEVICE_WINDOW = {"start_datetime": "2030-06-01T02:00Z", "end_datetime": "2030-06-03T03:00Z", "time_type": "device"}
"""02:00-03:00 of each device's own clock, 1-3 June 2030: 12:00Z in Honolulu (UTC-10), 17:00Z the day before in
Tokyo (UTC+9)."""


def announcement(device_id: str, zone: str | None) -> Announcement:
    return Announcement(
        device_id=device_id, platform=Platform.LINUX, agent_version="0.1.0", announced_at=utc_now(), time_zone=zone
    )


def announce(api: Api, device_id: str, zone: str | None) -> None:
    """As ingest stores an announcement."""
    store_received(api.store, [], [announcement(device_id, zone)], [])


def create(api: Api, schedule_args: dict[str, Any]) -> str:
    body = {
        "operation_type": "LOCK",
        "operation_device_query": {"all": True},
        "schedule_type": "WINDOW",
        "schedule_args": schedule_args,
    }
    response = api.request("POST", "/v0/operations/", json=body)
    assert response.status_code == 201, response.text
    operation_id: str = response.json()["content"]["id"]
    return operation_id


def plan(api: Api, operation_id: str) -> dict[str, tuple[Any, ...]]:
    rows = api.store.conn.execute(
        """SELECT device_id, not_before, window_end, window_zone, deadline_at, status FROM device_operations
           WHERE operation_id = ?""",
        (operation_id,),
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def test_announcements_name_the_known_devices_whose_zone_changed(api: Api) -> None:
    record = api.store.devices.record_announcements
    assert record([announcement("d1", "Pacific/Honolulu"), announcement("d2", None)]) == []  # new
    assert record([announcement("d1", "Pacific/Honolulu")]) == []  # the same
    assert record([announcement("d2", "UTC"), announcement("d1", "Asia/Tokyo")]) == ["d1", "d2"]
    # A batch's last announcement of a device is the one in force.
    assert record([announcement("d1", "UTC"), announcement("d1", "Asia/Tokyo")]) == []
    assert record([announcement("d1", None)]) == ["d1"]


def test_a_waiting_command_opens_in_the_new_zone(api: Api) -> None:
    announce(api, "d1", "Pacific/Honolulu")
    operation_id = create(api, DEVICE_WINDOW)
    assert plan(api, operation_id)["d1"] == (
        "2030-06-01T12:00:00.000Z", "2030-06-03T13:00:00.000Z", "Pacific/Honolulu", None, "PENDING",
    )  # fmt: skip
    announce(api, "d1", "Asia/Tokyo")
    assert plan(api, operation_id)["d1"] == (
        "2030-05-31T17:00:00.000Z", "2030-06-02T18:00:00.000Z", "Asia/Tokyo", None, "PENDING",
    )  # fmt: skip
    operation = api.request("GET", f"/v0/operations/{operation_id}/").json()["content"]
    assert operation["next_dispatch_at"] == "2030-05-31T17:00:00.000Z"


def test_a_dispatched_command_must_start_by_the_new_zones_end(api: Api) -> None:
    announce(api, "d1", "Asia/Tokyo")
    operation_id = create(api, DEVICE_WINDOW)
    ((command_id,),) = api.store.conn.execute("SELECT command_id FROM device_operations").fetchall()
    api.store.commands.mark_dispatched([(command_id, Deadline("2030-06-02T18:00:00.000Z", WINDOW_ENDED))])
    announce(api, "d1", "Pacific/Honolulu")  # west: its window ends 19 hours later
    assert plan(api, operation_id)["d1"] == (
        "2030-06-01T12:00:00.000Z", "2030-06-03T13:00:00.000Z", "Pacific/Honolulu", "2030-06-03T13:00:00.000Z",
        "PENDING",
    )  # fmt: skip


def test_console_time_and_other_devices_are_left_alone(api: Api) -> None:
    announce(api, "d1", "Pacific/Honolulu")
    announce(api, "d2", "Pacific/Honolulu")
    console = create(api, {**DEVICE_WINDOW, "time_type": "console"})
    device = create(api, DEVICE_WINDOW)
    before = plan(api, console), plan(api, device)["d2"]
    announce(api, "d1", "Asia/Tokyo")
    assert (plan(api, console), plan(api, device)["d2"]) == before
    assert plan(api, device)["d1"][2] == "Asia/Tokyo"


def test_a_move_past_the_windows_end_leaves_it_to_end_failed(api: Api) -> None:
    """Two hours of wall clock from now, written as UTC: ahead in Honolulu, already over in Tokyo."""
    announce(api, "d1", "Pacific/Honolulu")
    wall_now = datetime.now(UTC).replace(second=0, microsecond=0)
    end = wall_now + timedelta(hours=2)
    operation_id = create(
        api, {"start_datetime": wall_now.isoformat(), "end_datetime": end.isoformat(), "time_type": "device"}
    )
    announce(api, "d1", "Asia/Tokyo")
    not_before, window_end, zone, deadline, status = plan(api, operation_id)["d1"]
    assert (window_end, zone, deadline, status) == (to_iso(end - timedelta(hours=9)), "Asia/Tokyo", None, "PENDING")
    assert not_before <= to_iso(datetime.now(UTC))  # dispatched at once, and failed at its end, which has passed


@pytest.mark.parametrize("zone", ["Asia/Tokyo", None])
def test_a_device_with_no_zone_before_is_planned_when_it_gains_one(api: Api, zone: str | None) -> None:
    announce(api, "d1", None)
    operation_id = create(api, DEVICE_WINDOW)
    assert plan(api, operation_id)["d1"][:3] == ("2030-06-01T02:00:00.000Z", "2030-06-03T03:00:00.000Z", None)
    announce(api, "d1", zone)
    expected = ("2030-05-31T17:00:00.000Z", "2030-06-02T18:00:00.000Z", "Asia/Tokyo") if zone else (
        "2030-06-01T02:00:00.000Z", "2030-06-03T03:00:00.000Z", None)  # fmt: skip
    assert plan(api, operation_id)["d1"][:3] == expected

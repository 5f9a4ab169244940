"""One operation across Linux and Android devices at once, on real processes: capabilities decide who runs it."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Agent, Controller, wait_for
from tests.fake_adb import FakeAdb

pytestmark = pytest.mark.e2e

PHONE, TABLET = "R58M123ABC", "emulator-5554"


class Fleet:
    def __init__(self, controller: Controller, host: Agent, bridge: Agent, adb: FakeAdb) -> None:
        self.controller, self.host, self.bridge, self.adb = controller, host, bridge, adb


@pytest.fixture
def fleet(mosquitto_url: str, tmp_path: Path) -> Iterator[Fleet]:
    """A Linux device `kiosk`, and a bridge host (not a device itself) with a phone and a tablet on its fake adb."""
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    host = Agent(tmp_path, mosquitto_url, "kiosk", "--tag", "store-12")
    adb = FakeAdb(tmp_path / "bridge" / "bin")
    adb.attach(PHONE, credential="Pin")  # a PIN is set, so LOCK locks them
    adb.attach(TABLET, props={"persist.sys.timezone": "Asia/Tokyo"}, credential="Pin")
    bridge = Agent(tmp_path, mosquitto_url, "bridge", "--android", "--no-host", "--tag", "store-12")
    try:
        controller.wait_online("kiosk", f"android-{PHONE}", f"android-{TABLET}")
        yield Fleet(controller, host, bridge, adb)
    except BaseException:
        for part in (controller.process, host.process, bridge.process):
            print(f"--- {part.argv[:2]} ---\n{part.output()[-4000:]}")
        raise
    finally:
        bridge.stop()
        host.stop()
        controller.stop()


def test_one_operation_runs_where_it_can_and_fails_with_a_reason_where_it_cannot(fleet: Fleet) -> None:
    fleet.adb.respond(TABLET, ["shell", "cmd", "location"], exit=255, stderr="cmd: Can't find service: location\n")
    created = fleet.controller.create(
        {
            "operation_type": "SET_GPS_STATE",
            "operation_device_query": {"tags": "store-12"},
            "arguments": {"gps_state": False},
        }
    )

    operation = fleet.controller.wait_finished(created["id"])

    assert operation["state"] == "COMPLETED"
    assert operation["operation_stats"]["device_operation_statuses_count"] == {
        "resolved_device_count": 3,
        "dispatched_device_count": 2,
        "dispatch_failed_count": 1,  # the Linux device, which does not announce SET_GPS_STATE
        "failed_device_count": 1,  # the tablet, whose tool failed
        "success_device_count": 1,
    }
    results = fleet.controller.device_results(created["id"])
    assert (results["kiosk"]["status"], results["kiosk"]["failure_reason"]) == (
        "FAILED",
        "SET_GPS_STATE is not supported on linux or is denied by the device's agent config",
    )
    assert results[f"android-{PHONE}"]["status"] == "SUCCESSFUL"
    assert results[f"android-{PHONE}"]["result"] == {"location": "off"}
    assert results[f"android-{TABLET}"]["status"] == "FAILED"
    assert "Can't find service: location" in results[f"android-{TABLET}"]["failure_reason"]
    assert ["adb", "-s", PHONE, "shell", "cmd", "location", "set-location-enabled", "false"] in fleet.adb.calls(PHONE)
    assert fleet.host.tools.calls() == []  # the Linux device was never sent the command


def test_a_type_both_platforms_run_reaches_each_through_its_own_tool(fleet: Fleet) -> None:
    created = fleet.controller.create(
        {"operation_type": "LOCK", "operation_device_query": {"tags": "store-12"}, "arguments": {}}
    )

    operation = fleet.controller.wait_finished(created["id"])

    statuses = fleet.controller.device_results(created["id"])
    assert operation["operation_stats"]["device_operation_statuses_count"]["success_device_count"] == 3, statuses
    assert fleet.host.locks() == [["loginctl", "lock-sessions"]]
    for serial in (PHONE, TABLET):
        assert ["adb", "-s", serial, "shell", "input", "keyevent", "KEYCODE_SLEEP"] in fleet.adb.calls(serial)


def test_update_device_config_retags_a_device_for_later_queries_and_survives_a_restart(fleet: Fleet) -> None:
    phone = f"android-{PHONE}"
    created = fleet.controller.create(
        {
            "operation_type": "UPDATE_DEVICE_CONFIG",
            "operation_device_query": {"device_id": phone},
            "arguments": {"tags": ["store-12", "canary"], "time_zone": "America/New_York"},
        }
    )
    operation = fleet.controller.wait_finished(created["id"])
    assert operation["operation_stats"]["device_operation_statuses_count"]["success_device_count"] == 1
    assert fleet.controller.device_results(created["id"])[phone]["result"] == {
        "tags": ["store-12", "canary"],
        "groups": [],
        "time_zone": "America/New_York",
        "changed": ["tags", "time_zone"],
    }

    def retagged() -> dict[str, Any] | None:
        device: dict[str, Any] = fleet.controller.get(f"/v0/devices/{phone}/")
        return device if "canary" in device["tags"] else None

    device = wait_for("the new tags in the registry", retagged)
    assert device["time_zone"] == "America/New_York"

    fleet.bridge.restart()
    fleet.controller.wait_online(phone)
    canary = fleet.controller.create(
        {"operation_type": "LOCK", "operation_device_query": {"tags": "canary"}, "arguments": {}}
    )
    operation = fleet.controller.wait_finished(canary["id"])
    assert list(fleet.controller.device_results(canary["id"])) == [phone]
    assert operation["operation_stats"]["device_operation_statuses_count"]["success_device_count"] == 1

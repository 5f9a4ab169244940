"""An operation whose query may select more than LARGE_QUERY devices is answered as soon as it is stored, and the
leader resolves it after: a real `tether serve` on a fleet registered through its own store."""

import time
from pathlib import Path
from typing import Any

import pytest

from bench.fleet_store import announce
from controller.scheduler import LARGE_QUERY
from controller.store import Store
from tests.e2e.harness import Controller, restart_controller

pytestmark = pytest.mark.e2e

DEVICES = LARGE_QUERY + 1


def register(db: Path) -> None:
    store = Store(db)
    try:
        announce(store, [f"dev-{n:06d}" for n in range(DEVICES)])
    finally:
        store.close()


def counted(operation: dict[str, Any]) -> int:
    count: int = operation["operation_stats"]["device_operation_statuses_count"]["resolved_device_count"]
    return count


def test_a_large_operation_is_answered_created_then_resolved_once(tmp_path: Path) -> None:
    register(tmp_path / "tether.db")
    controller = Controller(tmp_path)
    try:
        started = time.monotonic()
        created = controller.create({"operation_type": "LOCK", "operation_device_query": {"all": True}})
        answered_s = time.monotonic() - started
        assert created["state"] == "CREATED"
        assert counted(created) == 0
        assert [entry["operation_state"] for entry in created["operation_activity"]] == ["CREATED"]
        operation = controller.wait_resolved(created["id"])
        assert operation["state"] in ("RESOLVED", "DISPATCHING")
        assert counted(operation) == DEVICES
        states = [entry["operation_state"] for entry in operation["operation_activity"]]
        assert states[:3] == ["CREATED", "QUERY INITIATED", "QUERY RESOLVED"]
        # A small query is still resolved before it is answered, beside the large one.
        small = controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "dev-000007"}})
        assert small["state"] == "RESOLVED"
        assert counted(small) == 1
        listed = controller.get(f"/v0/operations/{created['id']}/devices/", limit=1)
        assert listed["count"] == DEVICES
        assert answered_s < 10  # the client's own timeout: the answer did not wait for the resolution
    finally:
        assert controller.stop() == 0


def test_a_controller_killed_while_it_resolves_a_large_operation_resolves_it_once_after_restart(
    tmp_path: Path,
) -> None:
    register(tmp_path / "tether.db")
    controller = Controller(tmp_path)
    try:
        created = controller.create({"operation_type": "LOCK", "operation_device_query": {"all": True}})
        controller.process.kill()  # within the resolution, or just before or after it: each must end the same
        restart_controller(controller)
        operation = controller.wait_resolved(created["id"])
        assert counted(operation) == DEVICES
        states = [entry["operation_state"] for entry in operation["operation_activity"]]
        assert states.count("QUERY RESOLVED") == 1
        assert controller.get(f"/v0/operations/{created['id']}/devices/", limit=1)["count"] == DEVICES
    finally:
        assert controller.stop() == 0

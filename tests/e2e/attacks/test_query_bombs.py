"""An administrator's key (stolen, or a script gone wrong) sends device queries that stall the controller: one too
large to compile quickly, a legitimate operation on a large fleet, and a DELETE of all its device operations. The
first is refused at once; the others run off the loop that serves requests. Either way `/healthz` keeps answering."""

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.store import Store
from shared.messages import Announcement, utc_now
from shared.operations import Platform
from tests.e2e.harness import Controller, HealthProbe

pytestmark = pytest.mark.e2e

REFUSED_WITHIN_S = 2.0
"""What "at once" means here: the old code compiled the bomb for ~10 s (the client gives up after 5)."""
ANSWERED_WITHIN_S = 0.5
"""What "keeps answering" means here: the old code answered no health check until it was done."""


def post(controller: Controller, query: dict[str, Any], timeout: float) -> httpx.Response:
    body = {"operation_type": "LOCK", "operation_device_query": query}
    return controller.http.post("/v0/operations/", json=body, timeout=timeout)


def register(db: Path, count: int) -> None:
    """`count` devices, announced through the controller's own store before it starts (faster than a fleet)."""
    store = Store(db)
    try:
        now = utc_now()
        store.devices.record_announcements(
            [
                Announcement(device_id=f"dev-{n:06d}", platform=Platform.LINUX, agent_version="0.1.0", announced_at=now)
                for n in range(count)
            ]
        )
    finally:
        store.close()


def test_a_query_of_ten_thousand_id_lists_is_refused_at_once_while_healthz_answers(tmp_path: Path) -> None:
    # ~800 KB of JSON: the old code compiled it for ~5 s, twice, on the API's loop (1,000 lists of 1,000 ids: 26 s).
    bomb = {"$or": [{"device_id": {"$in": [f"d{n}-{i}" for i in range(5)]}} for n in range(10_000)]}
    controller = Controller(tmp_path)
    probe = HealthProbe(controller)
    try:
        probe.start()
        time.sleep(0.3)
        started = time.monotonic()
        answer = post(controller, bomb, timeout=5)
        ended = time.monotonic()
        probe.stop()
        assert answer.status_code == 400, answer.text
        assert ended - started < REFUSED_WITHIN_S
        refusal = answer.json()
        assert [error["field"] for error in refusal["errors"]] == ["operation_device_query"]
        assert refusal["message"].startswith("operation_device_query: too large"), refusal["message"]
        assert controller.get("/v0/operations/")["count"] == 0
        latencies = probe.latencies_between(started, ended)
        assert latencies, "no health check ran while the POST was under way"
        assert max(latencies) < ANSWERED_WITHIN_S, latencies
    finally:
        probe.stop()
        controller.stop()


def test_an_operation_on_a_large_fleet_resolves_while_healthz_answers(tmp_path: Path) -> None:
    devices = 50_000
    register(tmp_path / "tether.db", devices)
    controller = Controller(tmp_path)
    probe = HealthProbe(controller)
    try:
        probe.start()
        time.sleep(0.3)
        started = time.monotonic()
        answer = post(controller, {"all": True}, timeout=60)
        assert answer.status_code == 201, answer.text
        assert answer.json()["content"]["state"] == "CREATED"  # a large query: resolved after the answer
        content = controller.wait_resolved(answer.json()["content"]["id"])
        ended = time.monotonic()
        probe.stop()
        assert content["operation_stats"]["device_operation_statuses_count"]["resolved_device_count"] == devices
        # The old code answered none while it resolved: the one check under way waited for the whole resolution.
        latencies = probe.latencies_between(started, ended)
        assert len(latencies) >= 5, (ended - started, latencies)
        assert max(latencies) < ANSWERED_WITHIN_S, latencies
    finally:
        probe.stop()
        controller.stop()


def test_a_delete_of_a_large_fleets_operations_runs_while_healthz_and_a_get_answer(tmp_path: Path) -> None:
    devices = 100_000
    register(tmp_path / "tether.db", devices)
    controller = Controller(tmp_path)
    opens = datetime.now(UTC) + timedelta(days=1)  # resolved, never dispatched: the DELETE ends all of them
    window = {"start_datetime": opens.isoformat(), "end_datetime": (opens + timedelta(hours=1)).isoformat()}
    body = {"operation_type": "LOCK", "operation_device_query": {"all": True}, "schedule_type": "WINDOW"}
    probe = HealthProbe(controller)
    deleted: list[httpx.Response] = []
    try:
        created = controller.http.post("/v0/operations/", json=body | {"schedule_args": window}, timeout=60)
        assert created.status_code == 201, created.text
        controller.wait_resolved(created.json()["content"]["id"])
        probe.start()
        time.sleep(0.3)
        admin = httpx.Client(base_url=str(controller.http.base_url), headers=controller.http.headers, timeout=60)
        deleting = threading.Thread(target=lambda: deleted.append(admin.delete("/devicecontrol/operations")))
        started = time.monotonic()
        deleting.start()
        gets: list[float] = []
        while deleting.is_alive():
            asked = time.monotonic()
            assert controller.get("/v0/devices/dev-000001/")["device_id"] == "dev-000001"
            gets.append(time.monotonic() - asked)
            time.sleep(0.01)
        ended = time.monotonic()
        probe.stop()
        assert [answer.status_code for answer in deleted] == [204]
        admin.close()
        page = controller.http.get("/devicecontrol/operations", params={"withTotalElements": "true"}).json()
        assert page["statistics"]["totalElements"] == 0
        failed = controller.get(f"/v0/operations/{created.json()['content']['id']}/devices/", status="FAILED", limit=1)
        assert failed["count"] == devices
        assert failed["results"][0]["failure_reason"] == "deleted by ops"
        # The old code ran the DELETE on the API's loop: the one check and the one GET under way waited for all of it.
        latencies = probe.latencies_between(started, ended)
        assert len(latencies) >= 5, (ended - started, latencies)
        assert max(latencies) < ANSWERED_WITHIN_S, latencies
        assert len(gets) >= 5, (ended - started, gets)
        assert max(gets) < ANSWERED_WITHIN_S, gets
    finally:
        probe.stop()
        controller.stop()

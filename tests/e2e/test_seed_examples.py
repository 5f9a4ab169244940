"""The request and response examples of both seed documents, replayed against a running controller.

Seed 004 (Cumulocity device control) and seed 000 (POST /v0/operations/) in ../shared/seeds/ are the contracts the
project was created from; their examples are copied here as data and must work unchanged.
"""

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Agent, Controller, wait_for

pytestmark = pytest.mark.e2e

SEED_004_CREATE = {
    "deviceId": "1234",
    "com_cumulocity_model_WebCamDevice": {"name": "take picture", "parameters": {"duration": "5s", "quality": "HD"}},
}
SEED_004_OPERATION_KEYS = {"id", "self", "deviceId", "status", "creationTime", "com_cumulocity_model_WebCamDevice"}
SEED_004_COLLECTION_KEYS = {"self", "operations", "statistics"}


@pytest.fixture
def running(tmp_path: Path, mosquitto_url: str) -> Iterator[tuple[Controller, httpx.Client]]:
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "1234")
    token = base64.b64encode(f"ops:{controller.key}".encode()).decode()
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{controller.http_port}", headers={"Authorization": f"Basic {token}"}
    )
    try:
        controller.wait_online("1234")
        yield controller, client
    finally:
        client.close()
        agent.stop()
        controller.stop()


def test_seed_004_create_an_operation(running: tuple[Controller, httpx.Client]) -> None:
    _, client = running
    response = client.post(
        "/devicecontrol/operations/",
        json=SEED_004_CREATE,
        headers={
            "Content-Type": "application/vnd.com.nsn.cumulocity.operation+json;ver=0.9",
            "Accept": "application/vnd.com.nsn.cumulocity.operation+json;ver=0.9",
        },
    )

    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/vnd.com.nsn.cumulocity.operation+json")
    body = response.json()
    assert set(body) == SEED_004_OPERATION_KEYS
    assert response.headers["location"] == body["self"]
    assert (body["deviceId"], body["status"]) == ("1234", "PENDING")
    assert body["com_cumulocity_model_WebCamDevice"] == SEED_004_CREATE["com_cumulocity_model_WebCamDevice"]


def test_seed_004_get_a_collection_and_delete_it(running: tuple[Controller, httpx.Client]) -> None:
    _, client = running
    for _ in range(3):
        client.post("/devicecontrol/operations/", json=SEED_004_CREATE)

    response = client.get(
        "/devicecontrol/operations",
        params={"pageSize": 2},
        headers={"Accept": "application/vnd.com.nsn.cumulocity.operationcollection+json;ver=0.9"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.com.nsn.cumulocity.operationcollection+json")
    page: dict[str, Any] = response.json()
    assert SEED_004_COLLECTION_KEYS <= set(page) <= SEED_004_COLLECTION_KEYS | {"prev", "next"}
    assert page["statistics"] == {"pageSize": 2, "currentPage": 1}
    listed = SEED_004_OPERATION_KEYS | {"deviceName"}
    assert all(listed <= set(o) <= listed | {"failureReason"} for o in page["operations"])
    seen = [o["id"] for o in page["operations"]]
    while "next" in page:
        page = client.get(page["next"]).json()
        seen += [o["id"] for o in page["operations"]]
    assert seen == sorted(seen, key=int)
    assert len(seen) == 3

    # The agent has no custom action for the webcam fragment, so each one fails, with a reason naming what it knows.
    def failed() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = client.get(
            "/devicecontrol/operations", params={"status": "FAILED", "pageSize": 10}
        ).json()["operations"]
        return found if len(found) == 3 else None

    for operation in wait_for("the three to fail", failed):
        assert "com_cumulocity_model_WebCamDevice" in operation["failureReason"]

    assert client.delete("/devicecontrol/operations", params={"deviceId": "1234"}).status_code == 204
    assert client.get("/devicecontrol/operations").json()["operations"] == []


def test_seed_000_create_a_converge_operation(running: tuple[Controller, httpx.Client]) -> None:
    controller, _ = running
    created = controller.create(
        {
            "operation_type": "CONVERGE",
            "schedule_type": "IMMEDIATE",
            "operation_device_query": {"device_id": "1234"},
            "arguments": {"converge_with_provision": False, "sample_key": "sample"},  # both the seed lists
        }
    )
    seed_fields = {
        "id", "operation", "state", "schedule_type", "schedule_args", "operation_device_query", "arguments", "reason",
        "created_at", "created_by", "updated_at", "updated_by", "operation_activity", "operation_stats",
    }  # fmt: skip
    assert seed_fields <= set(created)
    assert created["operation"] == "CONVERGE"
    assert created["arguments"] == {"converge_with_provision": False, "sample_key": "sample"}
    assert set(created["operation_stats"]["device_operation_statuses_count"]) == {
        "resolved_device_count",
        "dispatched_device_count",
        "dispatch_failed_count",
        "failed_device_count",
        "success_device_count",
    }
    ended = controller.wait_finished(created["id"])
    assert ended["state"] == "COMPLETED"
    assert {a["operation_state"] for a in ended["operation_activity"]} <= {
        "CREATED", "QUERY INITIATED", "QUERY RESOLVED", "DISPATCHING", "DISPATCHED", "PROCESSING", "SUCCESS", "FAILURE",
    }  # fmt: skip

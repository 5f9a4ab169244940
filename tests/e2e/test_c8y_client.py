"""Software AG's own Python client, c8y-api, drives Tether through its normal constructor and nothing else.

`CumulocityApi(base_url, tenant_id, user, password)` sends Basic `<tenant>/<user>:<password>`, `get_last` sends
`dateFrom=1970-01-01`, `get_count` reads `statistics.totalPages` of a one-element page, `bulk_id` is sent as both
`bulkId` and `bulkOperationId`, and `Operation.update()` PUTs only the members that changed.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from c8y_api import CumulocityApi
from c8y_api._base_api import AccessDeniedError, UnauthorizedError
from c8y_api.model import Operation

from tests.e2e.harness import Agent, Controller, tether, wait_for

pytestmark = pytest.mark.e2e

TENANT = "t12345"


@pytest.fixture
def fleet(tmp_path: Path, mosquitto_url: str) -> Iterator[tuple[Controller, str]]:
    """A controller whose devices kiosk-1 and kiosk-2 run agents, and kiosk-9 has been seen and is offline."""
    controller = Controller(tmp_path, mosquitto_url)
    agents = [Agent(tmp_path, mosquitto_url, device_id) for device_id in ("kiosk-1", "kiosk-2", "kiosk-9")]
    try:
        controller.wait_online("kiosk-1", "kiosk-2", "kiosk-9")
        agents[2].stop()
        wait_for("kiosk-9 offline", lambda: not controller.get("/v0/devices/kiosk-9/")["online"])
        yield controller, f"http://127.0.0.1:{controller.http_port}"
    finally:
        for agent in agents:
            agent.stop()
        controller.stop()


def finished(c8y: CumulocityApi, operation_id: str) -> Operation:
    def done() -> Operation | None:
        operation = c8y.operations.get(operation_id)
        return operation if operation.status in (Operation.Status.SUCCESSFUL, Operation.Status.FAILED) else None

    return wait_for(f"operation {operation_id} to finish", done)


def ids(operations: list[Operation]) -> list[str]:
    return [operation.id for operation in operations]


def test_c8y_api_creates_reads_filters_counts_updates_and_deletes(fleet: tuple[Controller, str]) -> None:
    controller, base_url = fleet
    read_key = tether("keys", "create", "--name", "auditor", "--role", "read", "--db", str(controller.db)).strip()
    c8y = CumulocityApi(base_url, TENANT, "ops", controller.key)
    reader = CumulocityApi(base_url, TENANT, "auditor", read_key)
    started = datetime.now(UTC) - timedelta(seconds=1)

    # create, and get until the device has run it
    first = Operation(c8y, device_id="kiosk-1", description="say hi", c8y_Command={"text": "echo hi"}).create()
    assert (first.device_id, first.status, first.description) == ("kiosk-1", "PENDING", "say hi")
    assert first.id.isdigit()
    done = finished(c8y, first.id)
    assert done.status == "SUCCESSFUL"
    assert done.fragments["c8y_Command"] == {"text": "echo hi", "result": "hi\n"}
    second = Operation(c8y, device_id="kiosk-2", c8y_Command={"text": "echo two"}).create()
    restart = Operation(c8y, device_id="kiosk-9", com_acme_Dim={"level": 3}).create()  # offline: stays PENDING
    bulk = controller.create(
        {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"device_id": {"$in": ["kiosk-1", "kiosk-2"]}},
            "arguments": {"script": "echo bulk"},
        }
    )
    assert finished(c8y, second.id).status == "SUCCESSFUL"
    controller.wait_finished(bulk["id"])
    every = ids(c8y.operations.get_all())
    assert every[:3] == [first.id, second.id, restart.id]
    assert len(every) == 5

    # get_all with each filter the client offers
    bulk_ids = every[3:]
    assert ids(c8y.operations.get_all(device_id="kiosk-1")) == [first.id, bulk_ids[0]]
    (by_agent,) = c8y.operations.get_all(agent_id="kiosk-9")
    assert by_agent.id == restart.id
    assert by_agent.fragments["deviceExternalIDs"] == {
        "externalIds": [{"externalId": "kiosk-9", "type": "tether_DeviceId"}]
    }
    assert by_agent.fragments["deviceName"] == controller.get("/v0/devices/kiosk-9/")["inventory"]["hostname"]
    assert ids(c8y.operations.get_all(status=Operation.Status.PENDING)) == [restart.id]
    assert ids(c8y.operations.get_all(status="SUCCESSFUL")) == [first.id, second.id, *bulk_ids]
    assert ids(c8y.operations.get_all(fragment="com_acme_Dim")) == [restart.id]
    assert ids(c8y.operations.get_all(bulk_id=bulk["id"])) == bulk_ids
    assert ids(c8y.operations.get_all(date_from=started)) == every
    assert ids(c8y.operations.get_all(date_from="1970-01-01", date_to="2999-12-31")) == every
    assert c8y.operations.get_all(date_to=started) == []
    assert ids(c8y.operations.get_all(after=started, before="2999-01-01")) == every
    assert ids(c8y.operations.get_all(max_age=timedelta(hours=1))) == every
    assert c8y.operations.get_all(min_age=timedelta(hours=1)) == []
    assert ids(c8y.operations.get_all(reverse=True, after="1970-01-01")) == list(reversed(every))
    assert ids(c8y.operations.get_all(page_size=2)) == every  # three pages, followed by currentPage
    assert ids(c8y.operations.get_all(limit=2)) == every[:2]
    assert ids(c8y.operations.get_all(device_id="kiosk-2", status="SUCCESSFUL")) == [second.id, bulk_ids[1]]

    # get_last, get_count
    last = c8y.operations.get_last(device_id="kiosk-1")
    assert last is not None
    assert last.id == bulk_ids[0]
    assert c8y.operations.get_last(device_id="kiosk-1", before=started) is None
    assert c8y.operations.get_count() == 5
    assert c8y.operations.get_count(status="SUCCESSFUL") == 4
    assert c8y.operations.get_count(device_id="kiosk-9") == 1
    assert c8y.operations.get_count(min_age=timedelta(hours=1)) == 0

    # update: a fragment of its own, then a status along the lifecycle with a reason
    pending = c8y.operations.get(restart.id)
    pending["c8y_Progress"] = {"percent": 50}
    progressed = pending.update()
    assert (progressed.status, progressed.fragments["c8y_Progress"]) == ("PENDING", {"percent": 50})
    progressed.status = Operation.Status.FAILED
    progressed["failureReason"] = "the lobby is closed"
    failed = progressed.update()
    assert failed.status == "FAILED"
    assert c8y.operations.get(restart.id).fragments["failureReason"] == "the lobby is closed"
    assert c8y.operations.get(restart.id).fragments["com_acme_Dim"] == {"level": 3}
    assert ids(c8y.operations.get_all(fragment="c8y_Progress")) == [restart.id]

    # roles and keys: a read key reads and cannot write; a wrong key is refused
    assert ids(reader.operations.get_all(device_id="kiosk-9")) == [restart.id]
    with pytest.raises(AccessDeniedError):
        Operation(reader, device_id="kiosk-1", c8y_Restart={}).create()
    with pytest.raises(AccessDeniedError):
        reader.operations.delete_by(device_id="kiosk-9")
    with pytest.raises(UnauthorizedError):
        CumulocityApi(base_url, TENANT, "ops", "tth_not-a-key").operations.get_all()
    with pytest.raises(UnauthorizedError):
        CumulocityApi(base_url, TENANT, "auditor", controller.key).operations.get_all()  # name and key must agree

    # errors as Cumulocity answers them: an unknown device is a 422 (ValueError), an unknown operation a 404
    with pytest.raises(ValueError, match="422"):
        Operation(c8y, device_id="ghost", c8y_Restart={}).create()
    with pytest.raises(KeyError):
        c8y.operations.get("999999")

    # delete_by with filters: only what they select goes
    c8y.operations.delete_by(device_id="kiosk-9", status="FAILED")
    assert ids(c8y.operations.get_all()) == [first.id, second.id, *bulk_ids]
    c8y.operations.delete_by(agent_id="kiosk-2", after=started)
    assert ids(c8y.operations.get_all()) == [first.id, bulk_ids[0]]
    c8y.operations.delete_by(min_age=timedelta(hours=1))
    assert c8y.operations.get_count() == 2
    c8y.operations.delete_by(fragment="c8y_Command")
    assert c8y.operations.get_all() == []

"""/devicecontrol/operations over ASGI on a real database, each engine: the Cumulocity shapes, paging, roles, auth."""

import base64
from typing import Any

import httpx
import pytest

from tests.controller.api_harness import Api

OPERATION_TYPE = "application/vnd.com.nsn.cumulocity.operation+json"
COLLECTION_TYPE = "application/vnd.com.nsn.cumulocity.operationcollection+json"


def post(api: Api, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return api.request("POST", "/devicecontrol/operations", json=body, **kwargs)


def basic(name: str, key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{key}".encode()).decode()}


def test_create_answers_201_with_location_and_the_fragments_as_sent(api: Api) -> None:
    api.announce("1234")
    fragment = {"name": "take picture", "parameters": {"duration": "5s", "quality": "HD"}}
    response = post(
        api,
        {"deviceId": "1234", "description": "say cheese", "com_cumulocity_model_WebCamDevice": fragment},
        headers={"Content-Type": f"{OPERATION_TYPE};ver=0.9", "Accept": f"{OPERATION_TYPE};ver=0.9"},
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(OPERATION_TYPE)
    body = response.json()
    assert response.headers["location"] == body["self"] == f"http://tether/devicecontrol/operations/{body['id']}"
    assert body["id"].isdigit()
    assert body["deviceId"] == "1234"
    assert body["status"] == "PENDING"
    assert body["description"] == "say cheese"
    assert body["com_cumulocity_model_WebCamDevice"] == fragment
    assert body["creationTime"].endswith("Z")
    assert "bulkOperationId" not in body
    # The same operation through /v0: one device, run as the custom action named after the fragment.
    (operation,) = api.request("GET", "/v0/operations/").json()["content"]["results"]
    assert operation["operation"] == "RUN_CUSTOM_ACTION"
    assert operation["arguments"] == {
        "action": "com_cumulocity_model_WebCamDevice",
        "parameters": {"name": "take picture", "duration": "5s", "quality": "HD"},
    }
    assert operation["created_by"] == "ops"


def test_plain_json_is_accepted_and_answered(api: Api) -> None:
    api.announce("d1")
    response = post(api, {"deviceId": "d1", "c8y_Restart": {}})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"c8y_Restart": {}}, "deviceId"),
        ({"deviceId": "d1"}, "fragments"),
        ({"deviceId": "d1", "c8y_Command": {}}, "c8y_Command.text"),
        ({"deviceId": "d1", "c8y_LogfileRequest": {"maximumLines": 0}}, "c8y_LogfileRequest.max_lines"),
        ({"deviceId": "d1", "bad name!": {}}, "bad name!.action"),
        ({"deviceId": "d1", "description": 5, "c8y_Restart": {}}, "description"),
    ],
)
def test_bad_requests_name_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    api.announce("d1")
    response = post(api, body)
    assert response.status_code == 400, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


def test_a_body_that_is_not_a_json_object_is_a_400(api: Api) -> None:
    for content in (b"[1, 2]", b"{nope", b""):
        response = api.request(
            "POST", "/devicecontrol/operations", content=content, headers={"Content-Type": OPERATION_TYPE}
        )
        assert response.status_code == 400
        assert [e["field"] for e in response.json()["errors"]] == ["body"]


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_body_sent_as_anything_but_json_is_a_415_as_cumulocity_answers(api: Api, method: str) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "c8y_Restart": {}}).json()
    path = "/devicecontrol/operations" if method == "POST" else f"/devicecontrol/operations/{created['id']}"
    body = b'{"deviceId": "d1", "status": "EXECUTING", "c8y_Restart": {}}'
    for headers in ({}, {"Content-Type": "text/plain"}):
        response = api.request(method, path, content=body, headers=headers)
        assert response.status_code == 415
        assert response.json()["message"].startswith("send JSON, with Content-Type application/json")
    # Checked after the key, as the body's size is: a client without one learns nothing about the body.
    assert api.request(method, path, key=None, content=body, headers={"Content-Type": "text/plain"}).status_code == 401


def test_an_unknown_device_is_a_422_naming_the_field(api: Api) -> None:
    response = post(api, {"deviceId": "ghost", "c8y_Restart": {}})
    assert response.status_code == 422
    assert response.json() == {
        "message": "deviceId: no device 'ghost' is registered",
        "errors": [{"field": "deviceId", "message": "no device 'ghost' is registered"}],
    }


def test_a_custom_fragment_is_an_object(api: Api) -> None:
    api.announce("d1")
    response = post(api, {"deviceId": "d1", "com_acme_Dim": 3})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["com_acme_Dim"]


def test_members_are_read_by_their_wire_names_only(api: Api) -> None:
    # `command` is a custom fragment, as any name but the seed's own: it must never run as c8y_Command's shell script.
    api.announce("d1")
    response = post(api, {"deviceId": "d1", "command": {"text": "ls"}})
    assert response.status_code == 201, response.text
    (operation,) = api.request("GET", "/v0/operations/").json()["content"]["results"]
    assert (operation["operation"], operation["arguments"]["action"]) == ("RUN_CUSTOM_ACTION", "command")
    assert post(api, {"device_id": "d1", "c8y_Restart": {}}).status_code == 400


def test_a_null_fragment_is_absent_and_an_operations_own_members_are_ignored(api: Api) -> None:
    # So an Operation read back can be sent again as it is.
    api.announce("d1")
    body = {"deviceId": "d1", "id": "7", "status": "SUCCESSFUL", "c8y_Command": None, "c8y_Restart": {}}
    response = post(api, body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["status"], created["c8y_Restart"]) == ("PENDING", {})
    assert "c8y_Command" not in created


def test_v0_operations_show_up_one_per_device_with_their_bulk_operation_id(api: Api) -> None:
    for device_id in ("a", "b"):
        api.announce(device_id, tags=["kiosk"])
    created = api.request(
        "POST",
        "/v0/operations/",
        json={
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"tags": "kiosk"},
            "arguments": {"script": "ls"},
        },
    ).json()["content"]

    body = api.request("GET", f"/devicecontrol/operations?bulkOperationId={created['id']}").json()

    assert [(o["deviceId"], o["bulkOperationId"]) for o in body["operations"]] == [
        ("a", created["id"]),
        ("b", created["id"]),
    ]
    assert body["operations"][0]["c8y_Command"] == {"text": "ls"}
    single = api.request("GET", f"/devicecontrol/operations/{body['operations'][1]['id']}").json()
    assert single == {key: value for key, value in body["operations"][1].items() if key != "deviceName"}
    assert body["operations"][1]["deviceName"] == "b"  # no hostname announced: its device id


def test_collection_filters_pages_and_links(api: Api) -> None:
    for device_id in ("a", "b"):
        api.announce(device_id)
    ids = [post(api, {"deviceId": d, "c8y_Restart": {}}).json()["id"] for d in ("a", "b", "a", "a")]
    post(api, {"deviceId": "b", "c8y_Command": {"text": "uptime"}})

    first = api.request(
        "GET",
        "/devicecontrol/operations?deviceId=a&pageSize=2&withTotalPages=true&withTotalElements=true",
        headers={"Accept": COLLECTION_TYPE},
    )
    assert first.headers["content-type"].startswith(COLLECTION_TYPE)
    page = first.json()
    assert [o["id"] for o in page["operations"]] == [ids[0], ids[2]]  # first in, first out
    assert page["statistics"] == {"pageSize": 2, "currentPage": 1, "totalPages": 2, "totalElements": 3}
    assert "prev" not in page
    second = api.request("GET", page["next"], key="admin").json()
    assert [o["id"] for o in second["operations"]] == [ids[3]]
    assert "next" not in second
    assert second["prev"].endswith("currentPage=1")

    reverted = api.request("GET", "/devicecontrol/operations?revert=true&pageSize=2000").json()
    assert [o["id"] for o in reverted["operations"]][1:] == list(reversed(ids))
    commands = api.request("GET", "/devicecontrol/operations?fragmentType=c8y_Command").json()["operations"]
    assert [o["deviceId"] for o in commands] == ["b"]
    by_agent = api.request("GET", "/devicecontrol/operations?agentId=b&status=PENDING").json()["operations"]
    assert [o["deviceId"] for o in by_agent] == ["b", "b"]
    assert api.request("GET", "/devicecontrol/operations?dateFrom=2999-01-01T00:00:00Z").json()["operations"] == []
    assert (
        len(api.request("GET", "/devicecontrol/operations?dateTo=2999-01-01T00:00:00%2B05:30").json()["operations"])
        == 5
    )


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("dateFrom=1970-01-01", 1),  # c8y-api's get_last sends this
        ("dateFrom=2999-01-01", 0),
        ("dateTo=2999-12-31", 1),
        ("dateTo=1970-01-01", 0),
        ("dateFrom=1970-01-01&dateTo=2999-01-01", 1),
    ],
)
def test_a_date_filter_may_be_a_date_its_midnight_utc(api: Api, query: str, found: int) -> None:
    api.announce("d1")
    post(api, {"deviceId": "d1", "c8y_Restart": {}})
    response = api.request("GET", f"/devicecontrol/operations?{query}")
    assert response.status_code == 200, response.text
    assert len(response.json()["operations"]) == found


def test_a_date_filter_of_today_starts_at_its_midnight_utc(api: Api) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "c8y_Restart": {}}).json()
    today = created["creationTime"][:10]
    assert [
        o["id"] for o in api.request("GET", f"/devicecontrol/operations?dateFrom={today}").json()["operations"]
    ] == [created["id"]]
    assert api.request("GET", f"/devicecontrol/operations?dateTo={today}").json()["operations"] == []


@pytest.mark.parametrize(
    "query",
    [
        "pageSize=2001",
        "pageSize=0",
        "currentPage=0",
        "currentPage=1000001",
        "status=DONE",
        "dateFrom=yesterday",
        "dateFrom=2024-13-01",
        "dateFrom=2024-01-01T",
        "dateTo=2024-01-01T00:00:00",
        "dateFrom=20240101T000000Z",  # ISO 8601, but not the RFC 3339 date-time /openapi.json promises
        "deviceId=",
        "agentId=",
    ],
)
def test_bad_query_parameters_are_a_400(api: Api, query: str) -> None:
    assert api.request("GET", f"/devicecontrol/operations?{query}").status_code == 400


def test_unknown_operation_is_a_404(api: Api) -> None:
    assert api.request("GET", "/devicecontrol/operations/999").status_code == 404
    assert api.request("GET", "/devicecontrol/operations/abc").status_code == 404


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_digits_int_cannot_read_are_no_operation_id(api: Api, method: str) -> None:
    # Found by schemathesis: "²".isdigit() is true, int("²") raises, and the answer was a 500.
    response = api.request(method, "/devicecontrol/operations/²", json={"status": "EXECUTING"})
    assert response.status_code == 404


def test_an_empty_device_filter_is_refused_rather_than_read_as_no_filter(api: Api) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "c8y_Restart": {}}).json()
    response = api.request("DELETE", "/devicecontrol/operations?deviceId=")
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["deviceId"]
    assert api.request("GET", f"/devicecontrol/operations/{created['id']}").status_code == 200


def test_roles_and_basic_auth(api: Api) -> None:
    api.announce("d1")
    body = {"deviceId": "d1", "c8y_Restart": {}}
    assert post(api, body, key=None, headers=basic("ops", api.admin_key)).status_code == 201
    assert post(api, body, key=None, headers=basic("auditor", api.read_key)).status_code == 403
    assert post(api, body, key=None, headers=basic("auditor", api.admin_key)).status_code == 401  # name must match
    assert post(api, body, key=None).status_code == 401
    listing = api.request("GET", "/devicecontrol/operations", key=None, headers=basic("auditor", api.read_key))
    assert listing.status_code == 200
    assert api.request("GET", "/devicecontrol/operations", key=api.read_key).status_code == 200


def test_basic_auth_as_cumulocity_clients_send_it_with_a_tenant(api: Api) -> None:
    # c8y-api's CumulocityApi(base_url, tenant_id, user, password) sends `<tenant>/<user>:<password>`.
    api.announce("d1")
    body = {"deviceId": "d1", "c8y_Restart": {}}
    assert post(api, body, key=None, headers=basic("t12345/ops", api.admin_key)).status_code == 201
    assert post(api, body, key=None, headers=basic("management/ops", api.admin_key)).status_code == 201
    assert post(api, body, key=None, headers=basic("t12345/auditor", api.read_key)).status_code == 403
    assert post(api, body, key=None, headers=basic("t12345/auditor", api.admin_key)).status_code == 401
    assert post(api, body, key=None, headers=basic("t12345/ops", api.read_key)).status_code == 401
    assert post(api, body, key=None, headers=basic("t12345/ops", "tth_wrong")).status_code == 401
    assert post(api, body, key=None, headers=basic("ops/t12345", api.admin_key)).status_code == 401
    assert post(api, body, key=None, headers=basic("/ops", api.admin_key)).status_code == 201
    reader = basic("t12345/auditor", api.read_key)
    assert api.request("GET", "/devicecontrol/operations", key=None, headers=reader).status_code == 200


def test_a_key_name_with_a_slash_is_matched_as_it_is_or_after_a_tenant(api: Api) -> None:
    key = api.store.keys.create("team/ops", "admin")[1]
    api.announce("d1")
    body = {"deviceId": "d1", "c8y_Restart": {}}
    assert post(api, body, key=None, headers=basic("team/ops", key)).status_code == 201
    assert post(api, body, key=None, headers=basic("t1/team/ops", key)).status_code == 201
    assert post(api, body, key=None, headers=basic("ops", key)).status_code == 401


def test_put_moves_along_legal_transitions_and_a_final_status_cannot_be_reopened(api: Api) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "c8y_Restart": {}}).json()

    executing = api.request("PUT", f"/devicecontrol/operations/{created['id']}", json={"status": "EXECUTING"})
    assert executing.status_code == 200, executing.text
    assert executing.json()["status"] == "EXECUTING"
    failed = api.request(
        "PUT", f"/devicecontrol/operations/{created['id']}", json={"status": "FAILED", "failureReason": "no power"}
    )
    assert (failed.json()["status"], failed.json()["failureReason"]) == ("FAILED", "no power")
    reopened = api.request("PUT", f"/devicecontrol/operations/{created['id']}", json={"status": "PENDING"})
    assert reopened.status_code == 409
    assert "cannot be reopened" in reopened.json()["message"]
    # Never dispatched, it never will be, and there is no device to tell; the dispatcher then ends the /v0 operation.
    (operation,) = api.request("GET", "/v0/operations/").json()["content"]["results"]
    (row,) = api.request("GET", f"/v0/operations/{operation['id']}/devices/").json()["content"]["results"]
    assert (row["status"], row["dispatch_state"]) == ("FAILED", "skipped")
    assert operation["operation_stats"]["device_operation_statuses_count"]["failed_device_count"] == 1
    assert api.store.control.pending_cancellations(10) == []


def test_put_of_a_dispatched_operation_asks_the_device_to_stop(api: Api) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "c8y_Command": {"text": "sleep 100"}}).json()
    command_id = (
        api.store.commands.list_for_operation(
            api.store.devicecontrol.get(created["id"]).operation_id, status=None, limit=1, offset=0
        )
        .items[0]
        .command_id
    )
    api.store.conn.execute(
        "UPDATE device_operations SET dispatch_state = 'dispatched' WHERE command_id = ?", (command_id,)
    )

    response = api.request("PUT", f"/devicecontrol/operations/{created['id']}", json={"status": "SUCCESSFUL"})

    assert response.json()["status"] == "SUCCESSFUL"
    assert [o.reason for o in api.store.control.pending_cancellations(10)] == ["set to SUCCESSFUL through the API"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"status": "DONE"}, 400, "status"),
        ({"status": "SUCCESSFUL", "failureReason": "x"}, 400, "failureReason"),
        ({"failureReason": "x"}, 400, "failureReason"),
        ({"status": "FAILED", "failureReason": 3}, 400, "failureReason"),
    ],
)
def test_bad_puts_name_the_field(api: Api, body: dict[str, Any], status: int, field: str) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "c8y_Restart": {}}).json()
    response = api.request("PUT", f"/devicecontrol/operations/{created['id']}", json=body)
    assert response.status_code == status
    assert field in [error["field"] for error in response.json()["errors"]]


def test_put_needs_an_admin_key_and_a_known_operation(api: Api) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "c8y_Restart": {}}).json()
    path = f"/devicecontrol/operations/{created['id']}"
    assert api.request("PUT", path, key=api.read_key, json={"status": "EXECUTING"}).status_code == 403
    assert api.request("PUT", "/devicecontrol/operations/999", json={"status": "EXECUTING"}).status_code == 404


def test_delete_with_filters_hides_the_selected_and_fails_the_unfinished(api: Api) -> None:
    for device_id in ("a", "b"):
        api.announce(device_id)
    a = post(api, {"deviceId": "a", "c8y_Restart": {}}).json()
    b = post(api, {"deviceId": "b", "c8y_Restart": {}}).json()

    response = api.request("DELETE", "/devicecontrol/operations?deviceId=a")

    assert response.status_code == 204
    assert api.request("GET", f"/devicecontrol/operations/{a['id']}").status_code == 404
    assert [o["id"] for o in api.request("GET", "/devicecontrol/operations").json()["operations"]] == [b["id"]]
    # /v0 keeps the history: the device's command ended FAILED, and was never dispatched.
    bulk = api.store.devicecontrol.get(b["id"]).operation_id
    operations = {o["id"]: o for o in api.request("GET", "/v0/operations/").json()["content"]["results"]}
    (deleted,) = [o for op_id, o in operations.items() if op_id != bulk]
    rows = api.request("GET", f"/v0/operations/{deleted['id']}/devices/").json()["content"]["results"]
    assert [(r["status"], r["failure_reason"], r["dispatch_state"]) for r in rows] == [
        ("FAILED", "deleted by ops", "failed")
    ]
    assert api.request("DELETE", "/devicecontrol/operations", key=api.read_key).status_code == 403


def test_device_name_is_the_announced_hostname_and_external_ids_come_with_agent_id(api: Api) -> None:
    api.announce("d1", inventory={"hostname": "kiosk-lobby"})
    api.announce("d2", inventory={"hostname": 7})  # not a name: the device id stands in
    for device_id in ("d1", "d2"):
        post(api, {"deviceId": device_id, "c8y_Restart": {}})

    listed = api.request("GET", "/devicecontrol/operations").json()["operations"]
    assert [(o["deviceId"], o["deviceName"]) for o in listed] == [("d1", "kiosk-lobby"), ("d2", "d2")]
    assert all("deviceExternalIDs" not in o for o in listed)
    (by_agent,) = api.request("GET", "/devicecontrol/operations?agentId=d1").json()["operations"]
    assert by_agent["deviceExternalIDs"] == {"externalIds": [{"externalId": "d1", "type": "tether_DeviceId"}]}
    single = api.request("GET", f"/devicecontrol/operations/{by_agent['id']}").json()
    assert {"deviceName", "deviceExternalIDs"}.isdisjoint(single)  # in collections only, as the seed says


def test_put_adds_replaces_and_removes_fragments_and_get_shows_them(api: Api) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "c8y_Command": {"text": "uptime"}}).json()
    path = f"/devicecontrol/operations/{created['id']}"

    added = api.request("PUT", path, json={"c8y_Progress": {"percent": 40}, "acme_Note": "slow link"})
    assert added.status_code == 200, added.text
    assert (added.json()["c8y_Progress"], added.json()["acme_Note"], added.json()["status"]) == (
        {"percent": 40},
        "slow link",
        "PENDING",
    )
    # Replaced whole, not merged; null removes; a status in the same PUT goes through the lifecycle.
    updated = api.request("PUT", path, json={"status": "EXECUTING", "c8y_Progress": {"step": 2}, "acme_Note": None})
    assert updated.status_code == 200, updated.text
    shown = api.request("GET", path).json()
    assert shown == updated.json()
    assert (shown["status"], shown["c8y_Progress"], shown["c8y_Command"]) == (
        "EXECUTING",
        {"step": 2},
        {"text": "uptime"},
    )
    assert "acme_Note" not in shown
    # The fragmentType filter finds a fragment added by PUT, as well as the one the operation runs.
    for fragment in ("c8y_Progress", "c8y_Command"):
        found = api.request("GET", f"/devicecontrol/operations?fragmentType={fragment}").json()["operations"]
        assert [o["id"] for o in found] == [created["id"]]
    assert api.request("GET", "/devicecontrol/operations?fragmentType=acme_Note").json()["operations"] == []


def test_an_operation_read_back_may_be_put_again_as_it_is(api: Api) -> None:
    api.announce("d1", inventory={"hostname": "h1"})
    created = post(api, {"deviceId": "d1", "description": "check", "c8y_Command": {"text": "uptime"}}).json()
    (listed,) = api.request("GET", "/devicecontrol/operations?agentId=d1").json()["operations"]
    response = api.request("PUT", f"/devicecontrol/operations/{created['id']}", json=listed | {"status": "EXECUTING"})
    assert response.status_code == 200, response.text
    assert response.json() == created | {"status": "EXECUTING"}
    assert api.request("PUT", f"/devicecontrol/operations/{created['id']}", json={}).json()["status"] == "EXECUTING"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"c8y_Command": {"text": "reboot"}}, "c8y_Command is what it runs and cannot be changed"),
        ({"c8y_Command": None}, "c8y_Command is what it runs and cannot be changed"),
        ({"c8y_Restart": {}}, "c8y_Restart says what an operation runs and cannot be added to one"),
        ({"description": "other"}, "its description is set when it is created and cannot be changed"),
    ],
)
def test_put_cannot_change_what_the_operation_runs(api: Api, body: dict[str, Any], message: str) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "description": "check", "c8y_Command": {"text": "uptime"}}).json()
    response = api.request("PUT", f"/devicecontrol/operations/{created['id']}", json=body | {"status": "EXECUTING"})
    assert response.status_code == 409
    assert response.json()["message"] == f"operation {created['id']}: {message}"
    assert api.request("GET", f"/devicecontrol/operations/{created['id']}").json() == created  # nothing changed


def test_put_refuses_a_fragment_name_a_fragment_cannot_have(api: Api) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "c8y_Restart": {}}).json()
    response = api.request("PUT", f"/devicecontrol/operations/{created['id']}", json={"bad name!": 1})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["bad name!"]


@pytest.mark.parametrize(
    ("query", "deleted"),
    [
        ("", [0, 1, 2, 3]),  # every match: c8y-api's delete_by sends no paging
        ("pageSize=1", [0]),
        ("pageSize=2&currentPage=2", [2, 3]),
        ("pageSize=1&revert=true", [3]),
        ("pageSize=2&currentPage=2&revert=true", [0, 1]),
        ("deviceId=b&pageSize=1", [1]),
        ("deviceId=a&withTotalPages=true", [0, 2, 3]),
    ],
)
def test_delete_takes_gets_parameters_and_deletes_what_get_lists(api: Api, query: str, deleted: list[int]) -> None:
    for device_id in ("a", "b"):
        api.announce(device_id)
    ids = [post(api, {"deviceId": d, "c8y_Restart": {}}).json()["id"] for d in ("a", "b", "a", "a")]
    listed = api.request("GET", f"/devicecontrol/operations?{query}").json()["operations"]
    if "pageSize" in query:
        assert [o["id"] for o in listed] == [ids[i] for i in (reversed(deleted) if "revert" in query else deleted)]

    assert api.request("DELETE", f"/devicecontrol/operations?{query}").status_code == 204

    remaining = api.request("GET", "/devicecontrol/operations?pageSize=100").json()["operations"]
    assert [o["id"] for o in remaining] == [ids[i] for i in range(4) if i not in deleted]


def test_a_put_whose_status_is_refused_changes_no_fragment_either(api: Api) -> None:
    api.announce("d1")
    created = post(api, {"deviceId": "d1", "c8y_Restart": {}}).json()
    path = f"/devicecontrol/operations/{created['id']}"
    assert api.request("PUT", path, json={"status": "FAILED", "failureReason": "no power"}).status_code == 200

    reopened = api.request("PUT", path, json={"status": "PENDING", "c8y_Progress": {"percent": 1}})

    assert reopened.status_code == 409
    assert "c8y_Progress" not in api.request("GET", path).json()
    # On an operation that has ended, fragments alone are still the client's to add.
    noted = api.request("PUT", path, json={"c8y_Progress": {"percent": 100}})
    assert (noted.json()["status"], noted.json()["c8y_Progress"]) == ("FAILED", {"percent": 100})

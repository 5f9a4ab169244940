"""The /v0 API over ASGI with a real database (each engine): validation, auth, the 201 shape, listing and paging."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.api.deps import DEFAULT_MAX_BODY_BYTES as MAX_BODY
from controller.store import Store
from controller.store.database import Database
from controller.store.dialect import Engine
from controller.store.space import REFUSED
from tests.controller.api_harness import Api
from tests.fixtures_postgres import PostgresDatabase

FUTURE = "2030-06-01T02:00:00+05:30"
WINDOW = {"start_datetime": FUTURE, "end_datetime": "2030-06-08T03:30:00+05:30"}


def create(api: Api, **overrides: Any) -> httpx.Response:
    body = {"operation_type": "LOCK", "operation_device_query": {"device_id": "d1"}, **overrides}
    return api.request("POST", "/v0/operations/", json=body)


def test_create_returns_every_seed_field(api: Api) -> None:
    api.announce("d1", tags=["kiosk"])
    api.announce("d2")
    response = create(
        api,
        operation_type="CONVERGE",
        operation_device_query={"tags": "kiosk"},
        arguments={"converge_with_provision": True},
    )
    assert response.status_code == 201
    content = response.json()["content"]
    assert set(content) == {
        "id",
        "operation",
        "state",
        "schedule_type",
        "schedule_args",
        "operation_device_query",
        "arguments",
        "reason",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "operation_activity",
        "operation_stats",
        # Tether's extensions, documented in docs/operations-lifecycle.md
        "timeout_s",
        "delivery_timeout_s",
        "rollout",
        "next_dispatch_at",
        "devices",
    }
    assert content["devices"] == {"waiting": 1, "pending": 0, "executing": 0, "successful": 0, "failed": 0}
    assert (content["timeout_s"], content["delivery_timeout_s"], content["rollout"]) == (3600, 86400, None)
    assert content["operation"] == "CONVERGE"
    assert content["state"] == "RESOLVED"
    assert content["schedule_type"] == "IMMEDIATE"
    assert content["created_by"] == "ops"
    assert content["arguments"] == {"converge_with_provision": True}
    assert [a["operation_state"] for a in content["operation_activity"]] == [
        "CREATED",
        "QUERY INITIATED",
        "QUERY RESOLVED",
    ]
    assert content["operation_stats"]["device_operation_statuses_count"] == {
        "resolved_device_count": 1,
        "dispatched_device_count": 0,
        "dispatch_failed_count": 0,
        "failed_device_count": 0,
        "success_device_count": 0,
    }
    assert api.wakes == 1


def test_no_matching_device_fails_the_operation_with_a_reason(api: Api) -> None:
    response = create(api, operation_device_query={"device_id": "ghost"})
    assert response.status_code == 201
    content = response.json()["content"]
    assert content["state"] == "FAILED"
    assert content["reason"] == "no device matched operation_device_query"
    assert content["operation_activity"][-1]["operation_state"] == "FAILURE"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"operation_type": "TELEPORT"}, "operation_type"),
        ({"operation_device_query": {}}, "operation_device_query"),
        ({"operation_device_query": {"x": {"$regex": "a"}}}, "operation_device_query.x.$regex"),
        ({"schedule_type": "SOMETIMES"}, "schedule_type"),
        ({"schedule_type": "WINDOW"}, "schedule_args"),
        ({"schedule_type": "WINDOW", "schedule_args": {"start_datetime": FUTURE}}, "schedule_args.end_datetime"),
        ({"schedule_type": "WINDOW", "schedule_args": {"end_datetime": FUTURE}}, "schedule_args.start_datetime"),
        (
            {
                "schedule_type": "WINDOW",
                "schedule_args": {"start_datetime": FUTURE, "end_datetime": "2030-01-01T00:00Z"},
            },
            "schedule_args.end_datetime",
        ),
        (
            {
                "schedule_type": "WINDOW",
                "schedule_args": {"start_datetime": "2020-01-01T00:00Z", "end_datetime": "2020-01-02T00:00Z"},
            },
            "schedule_args.end_datetime",
        ),
        ({"schedule_type": "WINDOW", "schedule_args": {**WINDOW, "days": ["Funday"]}}, "schedule_args.days.0"),
        ({"schedule_type": "WINDOW", "schedule_args": {**WINDOW, "days": [1]}}, "schedule_args.days.0"),
        ({"schedule_type": "WINDOW", "schedule_args": {**WINDOW, "time_type": "moon"}}, "schedule_args.time_type"),
        (
            {"schedule_type": "WINDOW", "schedule_args": {**WINDOW, "window_end_time": "10:00:00"}},
            "schedule_args.window_end_time",
        ),
        ({"schedule_args": {"start_datetime": "yesterday"}}, "schedule_args.start_datetime"),
        ({"schedule_args": {"start_datetime": "2024-08-08T14:30:00"}}, "schedule_args.start_datetime"),
        ({"schedule_args": {"window_start_time": "10:00"}}, "schedule_args.window_start_time"),
        ({"schedule_args": {"start_datetime": "2024-08-08T14:30:00Z"}}, "schedule_args"),
        ({"arguments": "x"}, "arguments"),
        ({"operation_typo": "LOCK"}, "operation_typo"),
        ({"operation_type": "RUN_SHELL_SCRIPT", "arguments": {}}, "arguments.script"),
        ({"operation_type": "RUN_SHELL_SCRIPT", "arguments": {"script": "x", "timeout_s": 0}}, "arguments.timeout_s"),
        ({"operation_type": "SET_WIFI_STATE", "arguments": {"wifi_state": "sideways"}}, "arguments.wifi_state"),
        ({"operation_type": "LOCK", "arguments": {"force": True}}, "arguments.force"),
        # A directory of the zone database: ZoneInfo raises IsADirectoryError, which was a 500.
        ({"operation_type": "SET_TIMEZONE", "arguments": {"timezone": "America"}}, "arguments.timezone"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": 31 * 86400}, "timeout_s"),
        ({"delivery_timeout_s": "soon"}, "delivery_timeout_s"),
        ({"rollout": {"rate_per_minute": 0}}, "rollout.rate_per_minute"),
        ({"rollout": {"abort_failure_share": 1.5}}, "rollout.abort_failure_share"),
        ({"rollout": {"abort_min_finished": 0}}, "rollout.abort_min_finished"),
        ({"rollout": {"batch": 5}}, "rollout.batch"),
    ],
)
def test_bad_fields_give_400_naming_the_field(api: Api, overrides: dict[str, Any], field: str) -> None:
    api.announce("d1")
    response = create(api, **overrides)
    assert response.status_code == 400, response.text
    body = response.json()
    assert field in [e["field"] for e in body["errors"]], body
    assert field in body["message"]


def test_missing_fields_are_named(api: Api) -> None:
    response = api.request("POST", "/v0/operations/", json={})
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"operation_type", "operation_device_query"}


def test_malformed_json_is_a_400(api: Api) -> None:
    response = api.request("POST", "/v0/operations/", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["body"]  # not the character position FastAPI gives


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx", None])
def test_a_body_sent_as_anything_but_json_is_a_415_that_says_to_send_json(api: Api, content_type: str | None) -> None:
    body = b'{"operation_type": "LOCK", "operation_device_query": {"all": true}}'
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.request("POST", "/v0/operations/", content=body, headers=headers)
    assert response.status_code == 415
    given = repr(content_type) if content_type else "none"
    assert response.json() == {
        "message": f"send JSON, with Content-Type application/json or a +json type (given: {given})",
        "errors": [],
    }
    charset = api.request(
        "POST", "/v0/operations/", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert charset.status_code == 201


@pytest.mark.parametrize("path", ["/v0/operations/", "/v0/devices/"])
def test_an_offset_beyond_any_history_is_a_400_not_a_500(api: Api, path: str) -> None:
    # Found by schemathesis: SQLite cannot take an OFFSET past 2**63, and the overflow answered 500.
    response = api.request("GET", path, params={"offset": 10**30})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["offset"]
    assert api.request("GET", path, params={"offset": 1_000_000_000}).status_code == 200


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v0/operations/", "GET, POST"),
        ("/v0/operations/1/devices/d1/artifact", "GET, PUT"),
        ("/devicecontrol/operations", "GET, POST, DELETE"),
        ("/devicecontrol/operations/1", "GET, PUT"),
    ],
)
def test_a_method_the_path_does_not_serve_is_a_405_naming_every_one_it_does(api: Api, path: str, allowed: str) -> None:
    # Found by schemathesis: the error handler dropped Starlette's Allow header, which named one route's methods.
    response = api.request("PATCH", path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed


def test_auth(api: Api) -> None:
    assert create(api).status_code in (201,)
    no_key = api.request("GET", "/v0/operations/", key=None)
    assert no_key.status_code == 401
    assert no_key.headers["WWW-Authenticate"] == "Bearer"
    assert api.request("GET", "/v0/operations/", key="tth_wrong").status_code == 401
    assert api.request("GET", "/v0/operations/", key=api.read_key).status_code == 200
    forbidden = api.request(
        "POST", "/v0/operations/", key=api.read_key, json={"operation_type": "LOCK", "operation_device_query": {}}
    )
    assert forbidden.status_code == 403
    assert "admin" in forbidden.json()["message"]


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """A body without Content-Length."""
    for start in range(0, len(body), 65536):
        yield body[start : start + 65536]


@pytest.mark.parametrize("path", ["/v0/operations/", "/devicecontrol/operations"])
@pytest.mark.parametrize("sent", [bytes, chunked], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_a_413_and_without_a_key_a_401(
    api: Api, path: str, sent: Callable[[bytes], Any]
) -> None:
    body = b'{"operation_type": "LOCK", "operation_device_query": {"all": true}, "x": "' + b"x" * MAX_BODY + b'"}'
    over = api.request("POST", path, content=sent(body), headers={"Content-Type": "application/json"})
    assert over.status_code == 413
    assert over.json() == {"message": f"the body exceeds the {MAX_BODY}-byte limit", "errors": []}
    anonymous = api.request("POST", path, key=None, content=sent(body), headers={"Content-Type": "application/json"})
    assert anonymous.status_code == 401


def test_text_utf8_cannot_encode_is_a_400_naming_the_field(api: Api) -> None:
    body = b'{"operation_type": "LOCK", "operation_device_query": {"tags": ["ok", "\\ud83d\\ude00", "\\uDBFF"]}}'
    refused = api.request("POST", "/v0/operations/", content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400
    assert [error["field"] for error in refused.json()["errors"]] == ["operation_device_query.tags.2"]
    paired = body.replace(b', "\\uDBFF"', b"")  # a surrogate pair is one character: taken
    assert api.request(
        "POST", "/v0/operations/", content=paired, headers={"Content-Type": "application/json"}
    ).is_success


def test_keys_are_stored_hashed(api: Api) -> None:
    stored = [row[0] for row in api.store.conn.execute("SELECT key_hash FROM api_keys")]
    assert api.admin_key not in stored
    assert all(len(h) == 64 for h in stored)


def test_list_is_newest_first_paged_and_filtered(api: Api) -> None:
    api.announce("d1")
    ids = [create(api, operation_type=t).json()["content"]["id"] for t in ("LOCK", "REBOOT", "LOCK")]
    create(api, operation_type="REBOOT", operation_device_query={"device_id": "ghost"})
    page = api.request("GET", "/v0/operations/", params={"limit": 2}).json()["content"]
    assert page["count"] == 4
    assert page["previous"] is None
    assert "offset=2" in page["next"]
    second = api.request("GET", page["next"].removeprefix("http://tether")).json()["content"]
    assert [r["id"] for r in second["results"]] == [ids[1], ids[0]]
    assert second["next"] is None
    locks = api.request("GET", "/v0/operations/", params={"operation_type": "LOCK"}).json()["content"]
    assert [r["id"] for r in locks["results"]] == [ids[2], ids[0]]
    failed = api.request("GET", "/v0/operations/", params={"state": "FAILED"}).json()["content"]
    assert failed["count"] == 1
    assert api.request("GET", "/v0/operations/", params={"state": "NOPE"}).status_code == 400


def test_get_one_and_its_devices(api: Api) -> None:
    api.announce("d1")
    api.announce("d2")
    operation = create(api, operation_device_query={"all": True}).json()["content"]
    one = api.request("GET", f"/v0/operations/{operation['id']}/").json()["content"]
    assert one["id"] == operation["id"]
    devices = api.request("GET", f"/v0/operations/{operation['id']}/devices/").json()["content"]
    assert devices["count"] == 2
    assert {d["device_id"] for d in devices["results"]} == {"d1", "d2"}
    assert all(d["status"] == "PENDING" and d["dispatch_state"] == "waiting" for d in devices["results"])
    assert api.request("GET", "/v0/operations/nope/").status_code == 404
    assert api.request("GET", "/v0/operations/nope/devices/").status_code == 404


def test_devices_listing(api: Api) -> None:
    api.announce("d1", tags=["kiosk"], time_zone="Asia/Tokyo", inventory={"hostname": "h1"})
    listing = api.request("GET", "/v0/devices/").json()["content"]
    assert listing["count"] == 1
    device = listing["results"][0]
    assert device["device_id"] == "d1"
    assert device["online"] is False
    assert device["inventory"] == {"hostname": "h1"}
    assert device["capabilities"] == ["RUN_SHELL_SCRIPT", "LOCK"]
    assert api.request("GET", "/v0/devices/d1/").json()["content"]["time_zone"] == "Asia/Tokyo"
    assert api.request("GET", "/v0/devices/zz/").status_code == 404
    assert api.request("GET", "/v0/devices/", params={"online": "true"}).json()["content"]["count"] == 0


def test_artifact_upload_once_with_its_token_then_download(api: Api) -> None:
    api.announce("d1")
    operation = create(api, operation_type="CAPTURE_SCREENSHOT").json()["content"]
    command_id = api.store.commands.waiting(operation["id"], 10)[0][1]
    token = api.store.artifacts.issue_tokens([command_id])[command_id]
    path = f"/v0/operations/{operation['id']}/devices/d1/artifact"
    assert api.request("GET", path).status_code == 404
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 100
    wrong_device = api.request("PUT", path.replace("/d1/", "/d2/"), key=token, content=png)
    assert wrong_device.status_code == 401
    uploaded = api.request("PUT", path, key=token, content=png, headers={"Content-Type": "image/png"})
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["size_bytes"] == len(png)
    assert api.request("PUT", path, key=token, content=png).status_code == 401
    downloaded = api.request("GET", path, key=api.read_key)
    assert downloaded.status_code == 200
    assert downloaded.content == png
    assert downloaded.headers["content-type"] == "image/png"
    assert api.request("GET", path, key=None).status_code == 401


def test_oversized_artifact_is_refused_and_nothing_kept(api: Api, tmp_path: Path) -> None:
    api.announce("d1")
    operation = create(api, operation_type="COLLECT_LOGS").json()["content"]
    command_id = api.store.commands.waiting(operation["id"], 10)[0][1]
    token = api.store.artifacts.issue_tokens([command_id])[command_id]
    path = f"/v0/operations/{operation['id']}/devices/d1/artifact"
    response = api.request("PUT", path, key=token, content=b"x" * 1001)
    assert response.status_code == 413
    assert "1000-byte limit" in response.json()["message"]
    assert list((tmp_path / "artifacts").iterdir()) == []
    assert api.request("GET", path).status_code == 404


def test_an_artifact_upload_that_finds_no_room_answers_507_keeps_nothing_and_its_token_still_works(
    api: Api, tmp_path: Path
) -> None:
    api.announce("d1")
    operation = create(api, operation_type="COLLECT_LOGS").json()["content"]
    command_id = api.store.commands.waiting(operation["id"], 10)[0][1]
    token = api.store.artifacts.issue_tokens([command_id])[command_id]
    path = f"/v0/operations/{operation['id']}/devices/d1/artifact"
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / f"{command_id}.part").symlink_to("/dev/full")  # every write: ENOSPC
    refused = api.request("PUT", path, key=token, content=b"log lines")
    assert refused.status_code == 507
    assert refused.json() == {"message": REFUSED, "errors": []}
    assert list((tmp_path / "artifacts").iterdir()) == []
    assert api.request("PUT", path, key=token, content=b"log lines").status_code == 201


def no_room_for_operations(api: Api) -> None:
    """Storing an operation fails as on a full disk: SQLite's own SQLITE_FULL (no page more); on PostgreSQL, whose
    disk is not the test's to fill, the error a full disk raises (disk_full), raised by a trigger."""
    if api.store.dialect.engine is Engine.SQLITE:
        pages = api.store.conn.execute("PRAGMA page_count").fetchone()[0]
        api.store.conn.execute(f"PRAGMA max_page_count = {pages}")
        return
    api.store.conn.execute(
        """CREATE FUNCTION no_room() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$"""
    )
    api.store.conn.execute(
        "CREATE TRIGGER no_room BEFORE INSERT ON operations FOR EACH STATEMENT EXECUTE FUNCTION no_room()"
    )


def room_again(api: Api) -> None:
    if api.store.dialect.engine is Engine.SQLITE:
        api.store.conn.execute("PRAGMA max_page_count = 1073741823")
    else:
        api.store.conn.execute("DROP TRIGGER no_room ON operations")


def test_creating_an_operation_with_no_room_answers_507_and_stores_nothing_on_both_apis(api: Api) -> None:
    api.announce("d1")
    no_room_for_operations(api)
    script = {"script": "x" * 100_000}
    v0 = create(api, operation_type="RUN_SHELL_SCRIPT", arguments=script)
    devicecontrol = api.request(
        "POST", "/devicecontrol/operations", json={"deviceId": "d1", "c8y_Command": {"text": script["script"]}}
    )
    for refused in (v0, devicecontrol):
        assert refused.status_code == 507, refused.text
        assert refused.json() == {"message": REFUSED, "errors": []}
    assert api.store.operations.page(limit=1, offset=0).total == 0
    assert api.request("GET", "/readyz", key=None).status_code == 503
    room_again(api)
    assert create(api, operation_type="RUN_SHELL_SCRIPT", arguments=script).status_code == 201
    assert api.request("GET", "/readyz", key=None).json() == {"status": "ok"}


def test_timeouts_and_rollout_are_kept_and_returned(api: Api) -> None:
    api.announce("d1")
    response = create(
        api,
        operation_type="RUN_SHELL_SCRIPT",
        arguments={"script": "true", "timeout_s": 30},
        delivery_timeout_s=120,
        rollout={"rate_per_minute": 600, "abort_failure_share": 0.1},
    )
    content = response.json()["content"]
    assert content["timeout_s"] == 30 + 120  # the script's own limit plus the margin for its status to arrive
    assert content["delivery_timeout_s"] == 120
    assert content["rollout"] == {"rate_per_minute": 600, "abort_failure_share": 0.1, "abort_min_finished": 10}
    assert create(api, timeout_s=45).json()["content"]["timeout_s"] == 45


def test_cancel_ends_an_operation_and_names_who_cancelled(api: Api) -> None:
    api.announce("d1")
    created = create(api).json()["content"]
    wakes = api.wakes

    response = api.request("POST", f"/v0/operations/{created['id']}/cancel/")

    assert response.status_code == 200, response.text
    assert api.wakes == wakes + 1
    assert api.store.commands.list_for_operation(created["id"], status=None, limit=1, offset=0).items[0].status == (
        "FAILED"
    )
    again = api.request("POST", f"/v0/operations/{created['id']}/cancel/")
    assert again.status_code == 409
    assert "already being stopped (cancelled by ops)" in again.json()["message"]


def test_cancel_needs_an_admin_key_and_a_known_operation(api: Api) -> None:
    api.announce("d1")
    created = create(api).json()["content"]
    assert api.request("POST", f"/v0/operations/{created['id']}/cancel/", key=api.read_key).status_code == 403
    assert api.request("POST", "/v0/operations/nope/cancel/").status_code == 404


def test_a_window_operation_fills_in_its_window_times_and_waits_for_the_first_opening(api: Api) -> None:
    api.announce("d1")
    response = create(
        api,
        schedule_type="WINDOW",
        schedule_args={**WINDOW, "days": ["monday", "WEDNESDAY"]},
    )
    assert response.status_code == 201, response.text
    content = response.json()["content"]
    assert content["schedule_args"] == {
        "start_datetime": "2030-06-01T02:00:00+05:30",
        "end_datetime": "2030-06-08T03:30:00+05:30",
        "time_type": "console",
        "window_start_time": "02:00:00",
        "window_end_time": "03:30:00",
        "days": ["Monday", "Wednesday"],
    }
    assert content["state"] == "RESOLVED"
    assert content["next_dispatch_at"] == "2030-06-02T20:30:00.000Z"  # Monday 3 June, 02:00 at +05:30
    device = api.request("GET", f"/v0/operations/{content['id']}/devices/").json()["content"]["results"][0]
    assert device["not_before"] == "2030-06-02T20:30:00.000Z"


def test_device_time_opens_each_device_at_its_own_local_time(api: Api) -> None:
    api.announce("tokyo", time_zone="Asia/Tokyo")
    api.announce("berlin", time_zone="Europe/Berlin")
    api.announce("nowhere")
    api.announce("newer", time_zone="America/Not_In_Our_Tzdata")  # its tz database is newer than the controller's
    response = create(
        api,
        operation_device_query={"all": True},
        schedule_type="WINDOW",
        schedule_args={
            "start_datetime": "2030-06-01T02:00:00Z",
            "end_datetime": "2030-06-03T03:00:00Z",
            "time_type": "device",
        },
    )
    content = response.json()["content"]
    devices = api.request("GET", f"/v0/operations/{content['id']}/devices/").json()["content"]["results"]
    opens = {d["device_id"]: d["not_before"] for d in devices}
    assert opens == {
        "tokyo": "2030-05-31T17:00:00.000Z",
        "berlin": "2030-06-01T00:00:00.000Z",
        "nowhere": "2030-06-01T02:00:00.000Z",
        "newer": "2030-06-01T02:00:00.000Z",
    }
    resolved = content["operation_activity"][-1]
    assert resolved["message"] == "4 device(s) matched; 2 device(s) with device time zone unknown; window read in UTC"
    assert content["next_dispatch_at"] == "2030-05-31T17:00:00.000Z"


def test_a_device_whose_window_never_opens_fails_at_once(api: Api) -> None:
    api.announce("d1")
    response = create(
        api,
        schedule_type="WINDOW",
        # Saturday 1 June to Sunday 2 June 2030, but only on Mondays.
        schedule_args={"start_datetime": "2030-06-01T02:00Z", "end_datetime": "2030-06-02T03:00Z", "days": ["Monday"]},
    )
    content = response.json()["content"]
    device = api.request("GET", f"/v0/operations/{content['id']}/devices/").json()["content"]["results"][0]
    assert (device["status"], device["dispatch_state"]) == ("FAILED", "failed")
    assert device["failure_reason"] == "schedule window ended: no window of this device opens before end_datetime"
    assert device["finished_at"] == device["created_at"]
    counts = content["operation_stats"]["device_operation_statuses_count"]
    assert (counts["resolved_device_count"], counts["dispatch_failed_count"]) == (1, 1)


def test_readyz_answers_503_naming_postgresql_while_it_is_down_and_200_once_it_is_back(
    postgres_database: PostgresDatabase, tmp_path: Path
) -> None:
    database = Database(postgres_database.url)
    store = Store(database)
    try:
        api = Api(store, tmp_path / "artifacts")
        assert api.request("GET", "/readyz", key=None).json() == {"status": "ok"}
        postgres_database.server.stop("immediate")
        try:
            down = api.request("GET", "/readyz", key=None)
        finally:
            postgres_database.server.start()
        assert down.status_code == 503
        assert down.json()["status"].startswith(f"database: PostgreSQL at {postgres_database.url} is unavailable: ")
        assert "\n" not in down.json()["status"]
        assert api.request("GET", "/readyz", key=None).json() == {"status": "ok"}
    finally:
        store.close()
        database.close()

"""Seed 000 to the letter over the /v0 API: every field it lists, schedules echoed as sent, the creator's zone."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.controller.api_harness import Api

SEED_ARGUMENTS = {"converge_with_provision": False, "sample_key": "sample value"}


def create(api: Api, key: str = "admin", **body: Any) -> httpx.Response:
    return api.request("POST", "/v0/operations/", key=key, json={"operation_device_query": {"device_id": "d1"}, **body})


def devices(api: Api, operation_id: str) -> dict[str, dict[str, Any]]:
    page = api.request("GET", f"/v0/operations/{operation_id}/devices/").json()["content"]["results"]
    return {device["device_id"]: device for device in page}


@pytest.mark.parametrize(
    "schedule",
    [
        {"schedule_type": "IMMEDIATE"},
        # The seed's two datetime examples, moved to a year not yet past; every schedule_args field it lists.
        {
            "schedule_type": "WINDOW",
            "schedule_args": {
                "start_datetime": "2034-08-08T14:30:00Z",
                "end_datetime": "2034-08-08T15:30:00+05:30",
                "time_type": "device",
                "days": ["Tuesday"],
            },
        },
        {
            "schedule_type": "WINDOW",
            "schedule_args": {
                "start_datetime": "2034-08-08T14:30:00+05:30",
                "end_datetime": "2034-08-09T15:30:00+05:30",
                "time_type": "console",
                "days": [],
            },
        },
        # Its description spells the time types in capitals.
        {
            "schedule_type": "WINDOW",
            "schedule_args": {
                "start_datetime": "2034-08-08T14:30:00Z",
                "end_datetime": "2034-08-09T15:30:00Z",
                "time_type": "CONSOLE",
            },
        },
    ],
    ids=["immediate", "device", "console", "capitals"],
)
def test_every_field_seed_000_lists_is_accepted_and_echoed(api: Api, schedule: dict[str, Any]) -> None:
    api.announce("d1")
    response = create(api, operation_type="CONVERGE", arguments=SEED_ARGUMENTS, **schedule)
    assert response.status_code == 201, response.text
    content = response.json()["content"]
    assert content["arguments"] == SEED_ARGUMENTS
    assert content["schedule_type"] == schedule["schedule_type"]
    sent = schedule.get("schedule_args")
    if sent is None:
        assert content["schedule_args"] is None
        return
    echoed = content["schedule_args"]
    assert (echoed["start_datetime"], echoed["end_datetime"]) == (sent["start_datetime"], sent["end_datetime"])
    assert echoed["time_type"] == sent["time_type"].lower()
    assert echoed["window_start_time"] == sent["start_datetime"][11:19]
    assert echoed["window_end_time"] == sent["end_datetime"][11:19]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"sample_key": 1}, "arguments.sample_key"), ({"sample_key": "x", "other_key": "y"}, "arguments.other_key")],
)
def test_converge_arguments_stay_typed(api: Api, arguments: dict[str, Any], field: str) -> None:
    api.announce("d1")
    response = create(api, operation_type="CONVERGE", arguments=arguments)
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_window_end_time_is_the_sent_time_field_and_end_datetime_is_echoed_as_sent(api: Api) -> None:
    api.announce("d1")
    args = {"start_datetime": "2030-06-04T22:00+02:00", "end_datetime": "2030-06-05T01:00Z"}
    response = create(api, operation_type="LOCK", schedule_type="WINDOW", schedule_args=args)
    assert response.status_code == 201, response.text
    content = response.json()["content"]
    assert content["schedule_args"] == {
        **args, "time_type": "console", "window_start_time": "22:00:00", "window_end_time": "01:00:00", "days": [],
    }  # fmt: skip
    stored = api.request("GET", f"/v0/operations/{content['id']}/").json()["content"]
    assert stored["schedule_args"] == content["schedule_args"]
    device = devices(api, content["id"])["d1"]
    assert (device["not_before"], device["deadline_at"]) == ("2030-06-04T20:00:00.000Z", None)


BERLIN_WINDOW = {"start_datetime": "2030-03-16T22:00:00+01:00", "end_datetime": "2030-04-05T06:00:00+02:00"}
"""Europe/Berlin changes to summer time on 2030-03-31."""


@pytest.mark.parametrize(
    ("key_zone", "request_zone", "used"),
    [
        ("Europe/Berlin", None, "Europe/Berlin"),
        (None, "Europe/Berlin", "Europe/Berlin"),
        ("Asia/Tokyo", "Europe/Berlin", "Europe/Berlin"),  # the request wins over the key
        (None, None, None),
    ],
)
def test_console_time_is_read_in_the_creators_zone(
    api: Api, key_zone: str | None, request_zone: str | None, used: str | None
) -> None:
    api.announce("d1")
    _, key = api.store.keys.create("creator", "admin", key_zone)
    args = BERLIN_WINDOW if request_zone is None else {**BERLIN_WINDOW, "time_zone": request_zone}
    response = create(api, key=key, operation_type="LOCK", schedule_type="WINDOW", schedule_args=args)
    assert response.status_code == 201, response.text
    content = response.json()["content"]
    assert content["schedule_args"].get("time_zone") == used
    assert content["created_by"] == "creator"
    assert content["next_dispatch_at"] == "2030-03-16T21:00:00.000Z"


def test_a_key_zone_is_not_put_on_a_device_time_schedule(api: Api) -> None:
    api.announce("d1")
    _, key = api.store.keys.create("creator", "admin", "Europe/Berlin")
    args = {**BERLIN_WINDOW, "time_type": "device"}
    response = create(api, key=key, operation_type="LOCK", schedule_type="WINDOW", schedule_args=args)
    assert response.status_code == 201, response.text
    assert "time_zone" not in response.json()["content"]["schedule_args"]


@pytest.mark.parametrize(
    ("schedule_args", "field", "message"),
    [
        ({**BERLIN_WINDOW, "time_zone": "Europe/Atlantis"}, "schedule_args.time_zone", "not an IANA time zone"),
        ({**BERLIN_WINDOW, "time_zone": ""}, "schedule_args.time_zone", "not an IANA time zone"),
        ({**BERLIN_WINDOW, "time_zone": 1}, "schedule_args.time_zone", "valid string"),
        ({**BERLIN_WINDOW, "start_datetime": "yesterday"}, "schedule_args.start_datetime", "not an ISO 8601"),
        ({**BERLIN_WINDOW, "end_datetime": "2030-04-05T06:00"}, "schedule_args.end_datetime", "needs a UTC offset"),
        ({**BERLIN_WINDOW, "end_datetime": 1900000000}, "schedule_args.end_datetime", "valid string"),
    ],
)
def test_bad_schedule_fields_are_400s_naming_the_field(
    api: Api, schedule_args: dict[str, Any], field: str, message: str
) -> None:
    api.announce("d1")
    response = create(api, operation_type="LOCK", schedule_type="WINDOW", schedule_args=schedule_args)
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert [error["field"] for error in errors] == [field]
    assert message in errors[0]["message"]


def test_device_time_is_past_only_when_past_in_every_zone(api: Api) -> None:
    """A window that ended half an hour ago in UTC is still ahead in Pago Pago (UTC-11)."""
    api.announce("d1", time_zone="UTC")
    api.announce("pago", time_zone="Pacific/Pago_Pago")
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    args = {"start_datetime": (end - timedelta(hours=3)).isoformat(), "end_datetime": end.isoformat()}
    query = {"operation_device_query": {"all": True}, "operation_type": "LOCK", "schedule_type": "WINDOW"}
    refused = api.request("POST", "/v0/operations/", json={**query, "schedule_args": args})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "schedule_args.end_datetime"
    response = api.request("POST", "/v0/operations/", json={**query, "schedule_args": {**args, "time_type": "device"}})
    assert response.status_code == 201, response.text
    per_device = devices(api, response.json()["content"]["id"])
    assert per_device["d1"]["failure_reason"] == (
        "schedule window ended: no window of this device opens before end_datetime"
    )
    opens = end - timedelta(hours=3) + timedelta(hours=11)
    assert per_device["pago"]["not_before"] == opens.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert per_device["pago"]["status"] == "PENDING"


def test_a_key_zone_the_database_no_longer_has_falls_back_to_the_offset(api: Api) -> None:
    api.announce("d1")
    _, key = api.store.keys.create("creator", "admin", "Europe/Berlin")
    api.store.conn.execute("UPDATE api_keys SET time_zone = 'Europe/Gone' WHERE name = 'creator'")
    response = create(api, key=key, operation_type="LOCK", schedule_type="WINDOW", schedule_args=BERLIN_WINDOW)
    assert response.status_code == 201, response.text
    content = response.json()["content"]
    assert "time_zone" not in content["schedule_args"]
    assert content["next_dispatch_at"] == "2030-03-16T21:00:00.000Z"

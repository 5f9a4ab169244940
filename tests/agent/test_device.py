"""A device's lifetime pieces: stopping its tasks for sure, the profile UPDATE_DEVICE_CONFIG changes and the lost mode
it keeps."""

import asyncio
from pathlib import Path

import pytest

from agent import device as device_module
from agent.device import run_until_cancelled
from agent.errors import HandlerError
from agent.profile import Profile, ProfileStore
from shared.arguments import ArgumentsError, validate_arguments
from shared.arguments.management import DeviceConfigArguments
from shared.messages import Announcement, utc_now
from shared.operations import OperationType, Platform

CONFIGURED = Announcement(
    device_id="kiosk-7",
    platform=Platform.LINUX,
    agent_version="0.1.0",
    inventory={"os": "Debian 12"},
    time_zone="Europe/Berlin",
    tags=["kiosk"],
    groups=["berlin"],
    announced_at=utc_now(),
)


def change(**arguments: object) -> DeviceConfigArguments:
    validated = validate_arguments(OperationType.UPDATE_DEVICE_CONFIG, arguments)
    assert isinstance(validated, DeviceConfigArguments)
    return validated


def test_a_device_task_that_loses_its_cancellation_is_cancelled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "STOP_GRACE_S", 0.1)
    lost = []

    async def loses_one_cancellation() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:  # what Python 3.11's asyncio.wait_for may do inside aiomqtt
            lost.append(True)
        await asyncio.sleep(60)

    async def go() -> None:
        device = asyncio.create_task(run_until_cancelled(loses_one_cancellation(), asyncio.sleep(60)))
        await asyncio.sleep(0.05)
        device.cancel()
        with pytest.raises(asyncio.CancelledError):
            await device

    asyncio.run(asyncio.wait_for(go(), 5))
    assert lost == [True]


def test_a_task_that_fails_stops_the_other_and_raises() -> None:
    stopped = []

    async def fails() -> None:
        raise OSError("broker gone")

    async def waits() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            stopped.append(True)

    with pytest.raises(OSError, match="broker gone"):
        asyncio.run(asyncio.wait_for(run_until_cancelled(fails(), waits()), 5))
    assert stopped == [True]


# --- the profile ----------------------------------------------------------------------------------------------------


def test_without_changes_the_config_is_announced(tmp_path: Path) -> None:
    profile = Profile(ProfileStore(tmp_path / "profile.json"), CONFIGURED)

    announced = profile.announced(CONFIGURED)
    assert (announced.tags, announced.groups, announced.time_zone) == (["kiosk"], ["berlin"], "Europe/Berlin")


def test_without_a_configured_zone_the_devices_own_is_announced_until_the_profile_names_one(tmp_path: Path) -> None:
    profile = Profile(ProfileStore(tmp_path / "profile.json"), CONFIGURED.model_copy(update={"time_zone": None}))
    reported = CONFIGURED.model_copy(update={"time_zone": "America/New_York"})  # the operating system's zone

    assert profile.announced(reported).time_zone == "America/New_York"
    now, _ = profile.change(change(time_zone="Asia/Tokyo"), reported)
    assert now.time_zone == "Asia/Tokyo"
    now, result = profile.change(change(reset=True), reported.model_copy(update={"time_zone": "Asia/Tokyo"}))
    assert (now.time_zone, result["changed"]) == ("Asia/Tokyo", [])


def test_a_change_replaces_only_the_fields_given_and_outlives_a_restart(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "state" / "profile.json")
    current = CONFIGURED.model_copy(update={"inventory": {"os": "Debian 12", "packages": 312}})

    now, result = Profile(store, CONFIGURED).change(change(tags=["kiosk", "canary"]), current)

    assert (now.tags, now.groups, now.time_zone) == (["kiosk", "canary"], ["berlin"], "Europe/Berlin")
    assert now.inventory == {"os": "Debian 12", "packages": 312}
    assert result == {
        "tags": ["kiosk", "canary"],
        "groups": ["berlin"],
        "time_zone": "Europe/Berlin",
        "changed": ["tags"],
    }
    restarted = Profile(ProfileStore(tmp_path / "state" / "profile.json"), CONFIGURED).announced(CONFIGURED)
    assert restarted.tags == ["kiosk", "canary"]


def test_changes_add_up_and_an_empty_list_clears(tmp_path: Path) -> None:
    profile = Profile(ProfileStore(tmp_path / "profile.json"), CONFIGURED)
    profile.change(change(time_zone="Asia/Tokyo"), CONFIGURED)

    now, result = profile.change(change(groups=[]), CONFIGURED)

    assert (now.tags, now.groups, now.time_zone) == (["kiosk"], [], "Asia/Tokyo")
    assert result["changed"] == ["groups", "time_zone"]


def test_reset_goes_back_to_the_config_then_applies_what_is_given(tmp_path: Path) -> None:
    profile = Profile(ProfileStore(tmp_path / "profile.json"), CONFIGURED)
    profile.change(change(tags=["lab"], time_zone="Asia/Tokyo"), CONFIGURED)

    now, result = profile.change(change(reset=True, groups=["munich"]), CONFIGURED)

    assert (now.tags, now.groups, now.time_zone) == (["kiosk"], ["munich"], "Europe/Berlin")
    assert result["changed"] == ["groups"]
    now, result = profile.change(change(reset=True), CONFIGURED)
    assert (now.tags, now.groups, result["changed"]) == (["kiosk"], ["berlin"], [])


def test_lost_mode_is_announced_in_the_inventory_and_outlives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "profile.json"
    current = CONFIGURED.model_copy(update={"inventory": {"os": "Debian 12", "packages": 312}})

    now, lost_mode = Profile(ProfileStore(path), CONFIGURED).set_lost_mode("Return me", current)

    assert (lost_mode.enabled, lost_mode.message) == (True, "Return me")
    announced = {"enabled": True, "since": lost_mode.since.isoformat().replace("+00:00", "Z"), "message": "Return me"}
    assert now.inventory == {"os": "Debian 12", "packages": 312, "lost_mode": announced}
    assert lost_mode.announced() == announced
    restarted = Profile(ProfileStore(path), CONFIGURED).announced(CONFIGURED)
    assert restarted.inventory == {"os": "Debian 12", "lost_mode": announced}
    assert (restarted.tags, restarted.groups, restarted.time_zone) == (["kiosk"], ["berlin"], "Europe/Berlin")


def test_enabling_again_keeps_since_and_disabling_records_when(tmp_path: Path) -> None:
    profile = Profile(ProfileStore(tmp_path / "profile.json"), CONFIGURED)
    _, first = profile.set_lost_mode("first", CONFIGURED)

    _, again = profile.set_lost_mode("second", CONFIGURED)
    now, disabled = profile.set_lost_mode(None, CONFIGURED)
    _, enabled = profile.set_lost_mode("third", CONFIGURED)

    assert (again.since, again.message) == (first.since, "second")
    assert (disabled.enabled, disabled.message) == (False, None)
    assert disabled.since >= first.since
    assert now.inventory["lost_mode"] == {"enabled": False, "since": disabled.announced()["since"]}
    assert enabled.since >= disabled.since


def test_a_reset_of_the_profile_keeps_lost_mode(tmp_path: Path) -> None:
    profile = Profile(ProfileStore(tmp_path / "profile.json"), CONFIGURED)
    profile.change(change(tags=["lab"]), CONFIGURED)
    _, lost_mode = profile.set_lost_mode("Return me", CONFIGURED)

    now, result = profile.change(change(reset=True), CONFIGURED)

    assert now.tags == ["kiosk"]
    assert now.inventory["lost_mode"] == lost_mode.announced()
    assert result["changed"] == []


def test_an_unreadable_profile_file_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "profile.json"
    path.write_text('{"tags": "not a list"}')

    announced = Profile(ProfileStore(path), CONFIGURED).announced(CONFIGURED)

    assert announced.tags == ["kiosk"]
    assert "ignoring the device profile" in caplog.text


def test_a_profile_that_cannot_be_written_fails_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    profile = Profile(ProfileStore(blocker / "profile.json"), CONFIGURED)

    with pytest.raises(HandlerError, match=r"cannot keep the device profile in .*not-a-dir/profile.json"):
        profile.change(change(tags=["x"]), CONFIGURED)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "arguments"),
        ({"tags": "kiosk"}, "arguments.tags"),
        ({"tags": [""]}, "arguments.tags.0"),
        ({"tags": [" padded"]}, "arguments.tags.0"),
        ({"groups": ["g"] * 65}, "arguments.groups"),
        ({"time_zone": "Mars/Olympus"}, "arguments.time_zone"),
        ({"tags": ["a"], "colour": "red"}, "arguments.colour"),
    ],
)
def test_bad_changes_name_the_field(arguments: dict[str, object], field: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(OperationType.UPDATE_DEVICE_CONFIG, arguments)
    assert caught.value.field == field

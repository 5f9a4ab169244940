"""NUDGE_DEVICE, REQUEST_DPCLOG and REMOVE_DEVICE, and the time zone a device announces, down to the OS edge."""

import asyncio
import gzip
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent import process
from agent.config import AgentSettings
from agent.device import run_device
from agent.errors import HandlerError, ToolNotFound
from agent.handlers import build_registry, capabilities
from agent.handlers.artifacts import AgentLogHandler
from agent.handlers.base import HandlerContext
from agent.handlers.management import NudgeHandler, RemoveDeviceHandler
from agent.platforms.android import AndroidPlatform
from agent.platforms.contract import DeviceSurvey
from agent.platforms.linux import LinuxPlatform
from agent.platforms.linux_system import UNENROL_SCRIPT
from shared.arguments import NoArguments, validate_arguments
from shared.arguments.diagnostics import LogsArguments
from shared.messages import Announcement, ArtifactUpload, Command, utc_now
from shared.operations import OperationType, Platform
from tests.agent.artifact_receiver import Receiver, serving
from tests.agent.contexts import context_for as shared_context
from tests.agent.test_android import Observer, statuses
from tests.agent.test_runner import until
from tests.fake_adb import FakeAdb
from tests.fakes import FakeTools

SERIAL = "0A1B2C3D4E"
JOURNAL = "2026-12-06T10:00:00+0000 kiosk tetherd[812]: connected to mqtt://broker:1883 as kiosk-1\n"


@pytest.fixture(autouse=True)
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)
    return FakeTools.on_path(tmp_path / "bin", monkeypatch)


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    """An /etc whose zone is Europe/Berlin, by the link timedatectl sets."""
    directory = tmp_path / "etc"
    directory.mkdir()
    (directory / "localtime").symlink_to("/usr/share/zoneinfo/Europe/Berlin")
    return directory


def linux(tmp_path: Path, **settings: Any) -> LinuxPlatform:
    (tmp_path / "boot_id").write_text("boot-1\n")
    return LinuxPlatform(boot_id_path=tmp_path / "boot_id", tool_timeout=5, **settings)


def context_for(platform: Any, tmp_path: Path, operation_type: OperationType, **callbacks: Any) -> HandlerContext:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return shared_context(platform, work, operation_type, **callbacks)


# --- NUDGE_DEVICE ---------------------------------------------------------------------------------------------------


def test_the_linux_survey_reads_files_only(
    fake_tools: FakeTools, tmp_path: Path, etc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TZ", raising=False)
    survey = asyncio.run(linux(tmp_path, etc_dir=etc).survey())
    assert survey.time_zone == "Europe/Berlin"
    assert {"hostname", "os", "kernel", "ip_addresses"} <= survey.inventory.keys()
    assert fake_tools.calls() == []


def test_the_android_survey_is_one_getprop_and_one_dumpsys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adb = FakeAdb.on_path(tmp_path / "adb-bin", monkeypatch)
    adb.attach(SERIAL, props={"persist.sys.timezone": "Asia/Tokyo", "ro.product.model": "Tab"})
    survey = asyncio.run(AndroidPlatform(serial=SERIAL, tool_timeout=5).survey())
    assert (survey.time_zone, survey.inventory["model"]) == ("Asia/Tokyo", "Tab")
    assert adb.calls() == [
        ["adb", "-s", SERIAL, "shell", "getprop"],
        ["adb", "-s", SERIAL, "shell", "dumpsys", "battery"],
    ]


class Announcer:
    """The device's session in miniature: records each survey, and publishes it or not (`connected`)."""

    def __init__(self, connected: bool) -> None:
        self.connected = connected
        self.surveys: list[DeviceSurvey] = []

    async def __call__(self, survey: DeviceSurvey) -> Announcement | None:
        self.surveys.append(survey)
        if not self.connected:
            return None
        return Announcement(
            device_id="d1",
            platform=Platform.LINUX,
            agent_version="0",
            inventory=survey.inventory,
            time_zone="Pacific/Honolulu",  # as if the config's zone won over the operating system's
            announced_at=utc_now(),
        )


def test_a_nudge_reports_what_it_published(tmp_path: Path, etc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TZ", raising=False)
    announcer = Announcer(connected=True)
    context = context_for(linux(tmp_path, etc_dir=etc), tmp_path, OperationType.NUDGE_DEVICE, announce=announcer)
    result = asyncio.run(NudgeHandler().run(NoArguments(), context))
    [survey] = announcer.surveys
    assert survey.time_zone == "Europe/Berlin"
    assert result == {
        "announced": True,
        "presence": "online",
        "inventory": sorted(survey.inventory),
        "time_zone": "Pacific/Honolulu",
    }


def test_a_nudge_while_disconnected_fails_saying_so(tmp_path: Path) -> None:
    context = context_for(linux(tmp_path), tmp_path, OperationType.NUDGE_DEVICE, announce=Announcer(connected=False))
    with pytest.raises(HandlerError) as failure:
        asyncio.run(NudgeHandler().run(NoArguments(), context))
    assert str(failure.value) == (
        "the device is not connected to the broker now: its fresh announcement goes out when it reconnects"
    )


# --- REQUEST_DPCLOG -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serving() as server:
        yield server


def agent_log(platform: Any, tmp_path: Path, receiver: Receiver | None, **arguments: Any) -> dict[str, Any]:
    parsed = validate_arguments(OperationType.REQUEST_DPCLOG, arguments)
    assert isinstance(parsed, LogsArguments)
    context = context_for(platform, tmp_path, OperationType.REQUEST_DPCLOG)
    if receiver is not None:
        upload = ArtifactUpload(url=f"{receiver.base}/v0/dpclog/{id(platform)}", token="t" * 32, max_bytes=10**6)
        context = HandlerContext(
            context.command.model_copy(update={"artifact_upload": upload}), platform, context.work_dir
        )
    return asyncio.run(AgentLogHandler().run(parsed, context))


def test_the_agent_log_is_its_units_journal_gzipped_and_uploaded(
    fake_tools: FakeTools, tmp_path: Path, receiver: Receiver
) -> None:
    fake_tools.add("journalctl", stdout=JOURNAL)
    result = agent_log(linux(tmp_path, agent_unit="tether-agent@kiosk.service"), tmp_path, receiver, since_minutes=15)
    assert fake_tools.calls() == [
        [
            *("journalctl", "--no-pager", "-o", "short-iso", "-u", "tether-agent@kiosk.service"),
            *("--since", "-15min", "-n", "10000"),
        ]
    ]
    [stored] = [body for path, body in receiver.stored.items() if path.startswith("/v0/dpclog/")]
    assert gzip.decompress(stored).decode() == JOURNAL
    assert result["artifact"]["content_type"] == "application/gzip"


def test_an_android_devices_agent_log_is_the_bridges_journal_on_the_host(
    fake_tools: FakeTools, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adb = FakeAdb.on_path(tmp_path / "adb-bin", monkeypatch)
    adb.attach(SERIAL)
    fake_tools.add("journalctl", stdout=JOURNAL)
    android = AndroidPlatform(serial=SERIAL, tool_timeout=5, agent_unit="tetherd.service")
    destination = tmp_path / "agent-log.txt"
    asyncio.run(android.collect_agent_log(destination, since_minutes=60, max_lines=500))
    assert destination.read_text() == JOURNAL
    assert fake_tools.calls() == [
        ["journalctl", "--no-pager", "-o", "short-iso", "-u", "tetherd.service", "--since", "-60min", "-n", "500"]
    ]
    assert adb.calls() == []


def test_the_agent_log_needs_an_upload_url_before_journalctl_runs(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("journalctl", stdout=JOURNAL)
    with pytest.raises(HandlerError, match=r"^REQUEST_DPCLOG needs an artifact upload URL"):
        agent_log(linux(tmp_path), tmp_path, None)
    assert fake_tools.calls() == []


def test_without_journalctl_the_agent_log_fails_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolNotFound, match="journalctl"):
        asyncio.run(linux(tmp_path).collect_agent_log(tmp_path / "log.txt", since_minutes=5, max_lines=5))


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"since_minutes": 0}, "since_minutes"), ({"max_lines": 1_000_001}, "max_lines"), ({"unit": "sshd"}, "unit")],
)
def test_the_agent_log_takes_only_bounded_minutes_and_lines(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^invalid arguments: {field}: "):
        validate_arguments(OperationType.REQUEST_DPCLOG, arguments)


# --- REMOVE_DEVICE --------------------------------------------------------------------------------------------------

ENROLMENT = [
    Path("/etc/tether/agent.toml"),
    Path("/etc/tether/broker-password"),
    Path("/etc/tether/cert.pem"),
    Path("/etc/tether/key.pem"),
    Path("/var/lib/tetherd"),
]


def test_remove_device_is_destructive_and_linux_only(tmp_path: Path) -> None:
    assert RemoveDeviceHandler.destructive
    assert OperationType.REMOVE_DEVICE in capabilities(linux(tmp_path))
    assert OperationType.REMOVE_DEVICE not in capabilities(AndroidPlatform(serial=SERIAL))


def test_remove_device_stops_the_unit_then_deletes_the_enrolment(fake_tools: FakeTools, tmp_path: Path) -> None:
    fake_tools.add("systemd-run", stdout="Running timer as unit: tetherd-remove-device.timer\n")
    platform = linux(tmp_path, agent_unit="tether-agent@kiosk.service", enrolment_paths=ENROLMENT)
    context = context_for(platform, tmp_path, OperationType.REMOVE_DEVICE)

    result = asyncio.run(RemoveDeviceHandler().run(NoArguments(), context))

    assert result == {
        "unit": "tether-agent@kiosk.service",
        "stops_in_s": 5.0,
        "removes": [str(path) for path in ENROLMENT],
    }
    assert fake_tools.calls() == [
        [
            "systemd-run",
            "--on-active=5",
            "--unit=tetherd-remove-device",
            "--collect",
            "--description=Unenrol the Tether device",
            "sh",
            "-c",
            'systemctl disable --now "$0"; rm -rf -- "$@"',
            "tether-agent@kiosk.service",
            *(str(path) for path in ENROLMENT),
        ]
    ]


@pytest.mark.parametrize("path", ["/", "/var", "relative/state", "/var/lib/tetherd/../../.."])
def test_remove_device_refuses_a_path_that_is_not_the_agents_own(
    fake_tools: FakeTools, tmp_path: Path, path: str
) -> None:
    platform = linux(tmp_path, enrolment_paths=[Path("/etc/tether/agent.toml"), Path(path)])
    with pytest.raises(HandlerError, match=r"^refusing to delete "):
        asyncio.run(platform.remove_device(5))
    assert fake_tools.calls() == []


def test_the_unenrol_script_stops_the_unit_then_deletes_each_path_as_one_argument(
    fake_tools: FakeTools, tmp_path: Path
) -> None:
    """The script the transient unit runs, run here for real on files in tmp_path, with a fake systemctl."""
    odd = tmp_path / "etc tether" / "key; touch pwned.pem"
    odd.parent.mkdir()
    odd.write_text("key")
    state = tmp_path / "state"
    (state / "work").mkdir(parents=True)
    (state / "journal.db").write_text("journal")
    bystander = tmp_path / "etc tether" / "ca.pem"
    bystander.write_text("ca")

    subprocess.run(["sh", "-c", UNENROL_SCRIPT, "tetherd.service", str(odd), str(state)], check=True, cwd=tmp_path)

    assert fake_tools.calls() == [["systemctl", "disable", "--now", "tetherd.service"]]
    assert not odd.exists()
    assert not state.exists()
    assert bystander.read_text() == "ca"
    assert not (tmp_path / "pwned.pem").exists()


def test_the_enrolment_is_the_config_its_secrets_and_the_state_dir_but_not_the_ca(tmp_path: Path) -> None:
    # Built without validation: the property reads paths only, and real TLS files would need real certificates.
    settings = AgentSettings.model_construct(
        broker=["mqtts://kiosk-1@127.0.0.1:8883"],
        broker_password_file=tmp_path / "password",
        device_id="kiosk-1",
        state_dir=Path("state"),
        tls_ca_file=tmp_path / "ca.pem",
        tls_cert_file=tmp_path / "cert.pem",
        tls_key_file=tmp_path / "key.pem",
        android_logins=tmp_path / "logins",
    )
    paths = settings.enrolment_paths(Path("/etc/tether/agent.toml"))
    assert paths == [
        Path("/etc/tether/agent.toml"),
        tmp_path / "password",
        tmp_path / "cert.pem",
        tmp_path / "key.pem",
        tmp_path / "logins",
        Path(os.getcwd()) / "state",
    ]


# --- the zone a device announces, through its real session and a real broker -------------------------------------


def start_device(url: str, tmp_path: Path, etc: Path, configured_zone: str | None) -> "asyncio.Task[None]":
    """Run the host device as `tetherd run` does (its OS zone read from `etc`), with a config `time_zone` or none."""
    settings = AgentSettings(
        broker=url, device_id="kiosk-1", state_dir=tmp_path / "state", time_zone=configured_zone, tool_timeout_s=5
    )
    platform = linux(tmp_path, etc_dir=etc)
    registry = build_registry()

    async def run() -> None:
        survey = await platform.survey()
        announcement = Announcement(
            device_id="kiosk-1",
            platform=Platform.LINUX,
            agent_version="0",
            inventory=survey.inventory,
            time_zone=survey.time_zone,
            capabilities=capabilities(platform, registry),
            announced_at=utc_now(),
        )
        await run_device(
            settings=settings,
            broker_urls=settings.broker_urls,
            platform=platform,
            announcement=announcement,
            root=tmp_path / "state",
            registry=registry,
            configured_time_zone=settings.time_zone,
        )

    return asyncio.create_task(run())


def send(observer: Observer, command_id: str, operation_type: OperationType, **arguments: Any) -> None:
    observer.publish_command(
        Command(
            command_id=command_id,
            operation_id="op",
            device_id="kiosk-1",
            operation_type=operation_type,
            arguments=arguments,
            issued_at=datetime.now(UTC),
        )
    )


def zones(observer: Observer) -> list[str | None]:
    return [announcement.get("time_zone") for announcement in observer.of("kiosk-1", "announce")]


async def finished(observer: Observer, command_id: str) -> dict[str, Any]:
    await until(lambda: statuses(observer, "kiosk-1", command_id)[-1:] in (["SUCCESSFUL"], ["FAILED"]))
    [final] = [s for s in observer.of("kiosk-1", "status") if s["command_id"] == command_id][-1:]
    assert final["status"] == "SUCCESSFUL", final
    return dict(final["result"])


@pytest.fixture
def relinking_timedatectl(fake_tools: FakeTools, etc: Path) -> FakeTools:
    """timedatectl set-timezone ZONE as the real one does it: /etc/localtime then links to ZONE."""
    fake_tools.add("timedatectl", script=f'ln -sfn "/usr/share/zoneinfo/$2" "{etc}/localtime"')
    return fake_tools


@pytest.mark.usefixtures("relinking_timedatectl")
def test_without_a_configured_zone_the_os_zone_is_announced_and_followed(
    mosquitto_url: str, tmp_path: Path, etc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TZ", raising=False)
    observer = Observer(mosquitto_url)

    async def scenario() -> None:
        device = start_device(mosquitto_url, tmp_path, etc, configured_zone=None)
        try:
            await until(lambda: zones(observer) == ["Europe/Berlin"])
            send(observer, "tz", OperationType.SET_TIMEZONE, timezone="Asia/Tokyo")
            assert await finished(observer, "tz") == {"timezone": "Asia/Tokyo"}
            await until(lambda: zones(observer)[-1] == "Asia/Tokyo")
            # The profile's zone dropped: the OS zone as it is now, which SET_TIMEZONE changed, not the one at start.
            send(observer, "reset", OperationType.UPDATE_DEVICE_CONFIG, reset=True)
            await finished(observer, "reset")
            await until(lambda: len(zones(observer)) == 3)
            assert zones(observer)[-1] == "Asia/Tokyo"
            # Changed outside Tether: shown by a nudge, with the presence published again.
            (etc / "localtime").unlink()
            (etc / "localtime").symlink_to("/usr/share/zoneinfo/America/New_York")
            presences = len(observer.presence("kiosk-1"))
            send(observer, "nudge", OperationType.NUDGE_DEVICE)
            result = await finished(observer, "nudge")
            assert (result["announced"], result["presence"], result["time_zone"]) == (
                True,
                "online",
                "America/New_York",
            )
            assert {"hostname", "os", "ip_addresses"} <= set(result["inventory"])
            await until(lambda: zones(observer)[-1] == "America/New_York")
            assert observer.presence("kiosk-1")[presences:] == ["online"]
        finally:
            device.cancel()
            with pytest.raises(asyncio.CancelledError):
                await device

    try:
        asyncio.run(scenario())
    finally:
        observer.close()


@pytest.mark.usefixtures("relinking_timedatectl")
def test_a_configured_zone_wins_over_the_os_until_set_timezone_and_again_after_a_reset(
    mosquitto_url: str, tmp_path: Path, etc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TZ", raising=False)
    observer = Observer(mosquitto_url)

    async def scenario() -> None:
        device = start_device(mosquitto_url, tmp_path, etc, configured_zone="Pacific/Honolulu")
        try:
            await until(lambda: zones(observer) == ["Pacific/Honolulu"])
            send(observer, "tz", OperationType.SET_TIMEZONE, timezone="Asia/Tokyo")
            await finished(observer, "tz")
            await until(lambda: zones(observer) == ["Pacific/Honolulu", "Asia/Tokyo"])
            send(observer, "reset", OperationType.UPDATE_DEVICE_CONFIG, reset=True)
            await finished(observer, "reset")
            await until(lambda: zones(observer) == ["Pacific/Honolulu", "Asia/Tokyo", "Pacific/Honolulu"])
        finally:
            device.cancel()
            with pytest.raises(asyncio.CancelledError):
                await device

    try:
        asyncio.run(scenario())
    finally:
        observer.close()
    assert os.readlink(etc / "localtime") == "/usr/share/zoneinfo/Asia/Tokyo"

"""PAUSE_OS_UPDATES and SET_OS_UPDATE_POLICY on Linux, against fakes of systemctl, apt-config and the update tools."""

import asyncio
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.errors import HandlerError, InvalidArguments, ToolNotFound, UnsupportedOperation
from agent.handlers import handler_for
from agent.handlers.base import Handler
from agent.handlers.updates import OsUpdatePolicyHandler, PauseOsUpdatesHandler
from agent.platforms import LinuxPlatform
from agent.platforms.android import AndroidPlatform
from shared.arguments import ArgumentsError, validate_arguments
from shared.operations import OperationType
from tests.agent.contexts import context_for
from tests.fakes import FakeTools

sh = shlex.split

APT_TIMER = "apt-daily-upgrade.timer"
DNF_TIMER = "dnf-automatic-install.timer"
RESUME_TIMER = "tether-os-updates-resume.timer"
APT_READ = sh("apt-config shell UPGRADE APT::Periodic::Unattended-Upgrade REBOOT Unattended-Upgrade::Automatic-Reboot")
CALENDAR = "{ OnCalendar=*-*-* 06:00:00 ; next_elapse=Mon 2026-12-07 06:00:00 UTC }"


def fake_systemctl(etc: str) -> str:
    """systemctl as far as the agent asks, for the fake's `script`: enable/disable are remembered beside the fake, every
    unit is active, and a unit's drop-ins are the .conf files under `etc`/systemd/system/UNIT.d/ (a shell word)."""
    return f"""state="${{0%/*}}/systemctl-state"
case "$1" in
  enable) printf enabled > "$state-$2" ;;
  disable) [ "$2" = --now ] && shift; printf disabled > "$state-$2" ;;
  is-enabled) s=enabled; [ -e "$state-$2" ] && read -r s < "$state-$2"; echo "$s" ;;
  is-active) echo active ;;
  show) case "$3" in
      DropInPaths) for f in {etc}/systemd/system/"$5".d/*.conf; do [ -e "$f" ] && printf '%s ' "$f"; done; echo ;;
      TimersCalendar) echo {shlex.quote(CALENDAR)} ;;
      LoadState) echo loaded ;;
    esac ;;
esac"""


def fake_apt_config(etc: str) -> str:
    """apt-config shell, answering from Tether's file as apt would when no later file overrides it."""
    return f"""u=0; r=false
while IFS= read -r line; do
  case "$line" in
    'APT::Periodic::Unattended-Upgrade "always";') u=always ;;
    'Unattended-Upgrade::Automatic-Reboot "true";') r=true ;;
  esac
done < {etc}/apt/apt.conf.d/99tether-updates
echo "UPGRADE='$u'"
echo "REBOOT='$r'\""""


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    return tmp_path / "etc"


@pytest.fixture
def tools(tmp_path: Path, etc: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    """Only the fakes on PATH, so that the host's own update tools cannot pick the backend."""
    tools = FakeTools.on_path(tmp_path / "bin", monkeypatch)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    tools.add("systemctl", script=fake_systemctl(shlex.quote(str(etc))))
    tools.add("apt-config", script=fake_apt_config(shlex.quote(str(etc))))
    return tools


@pytest.fixture
def apt(tools: FakeTools) -> FakeTools:
    tools.add("unattended-upgrade")
    return tools


@pytest.fixture
def dnf(tools: FakeTools) -> FakeTools:
    tools.add("dnf-automatic")
    return tools


def execute(handler: Handler, arguments: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    (operation_type,) = handler.operation_types
    platform = LinuxPlatform(boot_id_path=tmp_path / "boot_id", etc_dir=tmp_path / "etc")
    parsed = validate_arguments(operation_type, arguments)
    return asyncio.run(handler.run(parsed, context_for(platform, tmp_path, operation_type)))


def drop_ins(unit: str) -> list[str]:
    return sh(f"systemctl show -p DropInPaths --value {unit}")


def load_state(unit: str) -> list[str]:
    return sh(f"systemctl show -p LoadState --value {unit}")


# --- SET_OS_UPDATE_POLICY ---------------------------------------------------------------------------------------------


def test_automatic_switches_unattended_upgrades_on_and_keeps_the_distributions_schedule(
    apt: FakeTools, etc: Path, tmp_path: Path
) -> None:
    window = etc / "systemd/system/apt-daily-upgrade.timer.d/tether.conf"
    window.parent.mkdir(parents=True)
    window.write_text("[Timer]\n")  # an earlier windowed policy

    result = execute(OsUpdatePolicyHandler(), {"policy": "automatic"}, tmp_path)

    apt_file = etc / "apt/apt.conf.d/99tether-updates"
    assert result == {
        "policy": "automatic",
        "reboot": False,
        "backend": "apt",
        "timer": APT_TIMER,
        "files": [str(apt_file)],
        "unattended_upgrade": {
            "APT::Periodic::Unattended-Upgrade": "always",
            "Unattended-Upgrade::Automatic-Reboot": "false",
        },
        "timer_enabled": "enabled",
        "schedule": CALENDAR,
    }
    assert apt_file.read_text() == (
        "// Managed by Tether (SET_OS_UPDATE_POLICY): changes made here are overwritten.\n"
        'APT::Periodic::Update-Package-Lists "1";\n'
        'APT::Periodic::Unattended-Upgrade "always";\n'
        'Unattended-Upgrade::Automatic-Reboot "false";\n'
        'Unattended-Upgrade::Automatic-Reboot-Time "now";\n'
    )
    assert not window.exists()
    assert apt.calls() == [
        sh("systemctl daemon-reload"),
        sh(f"systemctl enable {APT_TIMER}"),
        sh(f"systemctl restart {APT_TIMER}"),
        APT_READ,
        sh(f"systemctl is-enabled {APT_TIMER}"),
        drop_ins(APT_TIMER),
        sh(f"systemctl show -p TimersCalendar --value {APT_TIMER}"),
    ]


def test_a_window_across_midnight_becomes_the_timers_calendar_and_random_delay(
    apt: FakeTools, etc: Path, tmp_path: Path
) -> None:
    arguments = {"policy": "windowed", "window_start": "22:30", "window_end": "02:00", "reboot": True}

    result = execute(OsUpdatePolicyHandler(), arguments, tmp_path)

    window = etc / "systemd/system/apt-daily-upgrade.timer.d/tether.conf"
    assert window.read_text() == (
        "# Managed by Tether (SET_OS_UPDATE_POLICY): changes made here are overwritten.\n"
        "# Automatic updates start between 22:30 and 02:00, device time.\n"
        "[Timer]\n"
        "OnCalendar=\n"
        "OnCalendar=*-*-* 22:30:00\n"
        "RandomizedDelaySec=12540\n"  # three and a half hours, less the minute the timer may be late
        "AccuracySec=1s\n"
        "Persistent=false\n"
    )
    assert result["files"] == [str(etc / "apt/apt.conf.d/99tether-updates"), str(window)]
    assert result["unattended_upgrade"]["Unattended-Upgrade::Automatic-Reboot"] == "true"
    assert (result["window_start"], result["window_end"], result["timer_enabled"]) == ("22:30", "02:00", "enabled")
    assert drop_ins(APT_TIMER) in apt.calls()


def test_manual_switches_unattended_upgrades_off_and_disables_the_timer(
    apt: FakeTools, etc: Path, tmp_path: Path
) -> None:
    result = execute(OsUpdatePolicyHandler(), {"policy": "manual"}, tmp_path)

    assert 'APT::Periodic::Unattended-Upgrade "0";' in (etc / "apt/apt.conf.d/99tether-updates").read_text()
    assert result["timer_enabled"] == "disabled"
    assert result["unattended_upgrade"]["APT::Periodic::Unattended-Upgrade"] == "0"
    assert apt.calls()[:2] == [sh("systemctl daemon-reload"), sh(f"systemctl disable --now {APT_TIMER}")]


def test_a_later_apt_file_that_overrides_tethers_fails_the_policy(apt: FakeTools, tmp_path: Path) -> None:
    apt.add("apt-config", stdout="UPGRADE='0'\nREBOOT='false'\n")

    with pytest.raises(HandlerError, match=r"^apt reads APT::Periodic::Unattended-Upgrade='0' .* overrides them$"):
        execute(OsUpdatePolicyHandler(), {"policy": "automatic"}, tmp_path)


def test_a_timer_systemd_does_not_report_enabled_fails_the_policy(apt: FakeTools, tmp_path: Path) -> None:
    apt.add("systemctl", script="""case "$1" in is-enabled) echo masked ;; esac""")

    with pytest.raises(HandlerError, match=rf"^systemd reports {APT_TIMER} as masked after it was enabled$"):
        execute(OsUpdatePolicyHandler(), {"policy": "automatic"}, tmp_path)


def test_a_window_systemd_does_not_read_fails_the_policy(apt: FakeTools, tmp_path: Path) -> None:
    apt.add("systemctl", script="""case "$1" in is-enabled) echo enabled ;; esac""")
    arguments = {"policy": "windowed", "window_start": "01:00", "window_end": "03:00"}

    with pytest.raises(HandlerError, match=r"^systemd does not read .*tether.conf for apt-daily-upgrade.timer"):
        execute(OsUpdatePolicyHandler(), arguments, tmp_path)


def test_dnf_automatic_is_driven_through_its_install_timer_without_apt_files(
    dnf: FakeTools, etc: Path, tmp_path: Path
) -> None:
    arguments = {"policy": "windowed", "window_start": "03:00", "window_end": "04:00"}

    result = execute(OsUpdatePolicyHandler(), arguments, tmp_path)

    assert (result["backend"], result["timer"]) == ("dnf", DNF_TIMER)
    assert "unattended_upgrade" not in result
    assert not (etc / "apt").exists()
    assert (
        "OnCalendar=*-*-* 03:00:00\nRandomizedDelaySec=3540\n"
        in (etc / f"systemd/system/{DNF_TIMER}.d/tether.conf").read_text()
    )
    assert dnf.calls() == [
        sh("systemctl daemon-reload"),
        sh(f"systemctl enable {DNF_TIMER}"),
        sh(f"systemctl restart {DNF_TIMER}"),
        sh(f"systemctl is-enabled {DNF_TIMER}"),
        drop_ins(DNF_TIMER),
        sh(f"systemctl show -p TimersCalendar --value {DNF_TIMER}"),
    ]


def test_dnf_automatic_reboots_are_not_set_and_nothing_changes(dnf: FakeTools, etc: Path, tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match=r"^dnf-automatic reboots only as /etc/dnf/automatic.conf says"):
        execute(OsUpdatePolicyHandler(), {"policy": "automatic", "reboot": True}, tmp_path)
    assert dnf.calls() == []
    assert not etc.exists()


def test_without_an_update_tool_the_policy_fails_naming_both(tools: FakeTools, tmp_path: Path) -> None:
    with pytest.raises(ToolNotFound, match=r"install unattended-upgrades \(unattended-upgrade, apt\) or dnf-automatic"):
        execute(OsUpdatePolicyHandler(), {"policy": "manual"}, tmp_path)
    assert tools.calls() == []


# --- PAUSE_OS_UPDATES -------------------------------------------------------------------------------------------------


def pause_file(etc: Path, service: str = "apt-daily-upgrade.service") -> Path:
    return etc / f"systemd/system/{service}.d/tether-pause.conf"


def test_an_open_ended_pause_is_a_drop_in_whose_condition_fails_while_it_exists(
    apt: FakeTools, etc: Path, tmp_path: Path
) -> None:
    result = execute(PauseOsUpdatesHandler(), {"paused": True}, tmp_path)

    path = pause_file(etc)
    assert result == {
        "paused": True,
        "until": None,
        "backend": "apt",
        "service": "apt-daily-upgrade.service",
        "file": str(path),
        "resume_timer": None,
    }
    assert path.read_text() == (
        "# Managed by Tether (PAUSE_OS_UPDATES): changes made here are overwritten.\n"
        "# Automatic updates are paused.\n"
        "# Removing this file resumes them: the condition fails while it exists.\n"
        "[Unit]\n"
        f"ConditionPathExists=!{path}\n"
    )
    assert apt.calls() == [
        load_state("apt-daily-upgrade.service"),
        sh("systemctl daemon-reload"),
        drop_ins("apt-daily-upgrade.service"),
    ]


def test_a_pause_until_a_time_arms_a_persistent_timer_that_removes_it(
    dnf: FakeTools, etc: Path, tmp_path: Path
) -> None:
    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    local = until.astimezone(UTC).astimezone(datetime.now().astimezone().tzinfo)

    result = execute(PauseOsUpdatesHandler(), {"paused": True, "until": local.isoformat()}, tmp_path)

    path = pause_file(etc, "dnf-automatic-install.service")
    calendar = until.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert (result["until"], result["resume_timer"], result["file"]) == (until.isoformat(), RESUME_TIMER, str(path))
    timer = (etc / f"systemd/system/{RESUME_TIMER}").read_text()
    assert f"\n[Timer]\nOnCalendar={calendar}\nAccuracySec=1s\nPersistent=true\n" in timer
    assert "\n[Install]\nWantedBy=timers.target\n" in timer
    service = (etc / "systemd/system/tether-os-updates-resume.service").read_text()
    assert f"\n[Service]\nType=oneshot\nExecStart=/bin/rm -f {path}\n" in service
    assert dnf.calls() == [
        load_state("dnf-automatic-install.service"),
        sh("systemctl daemon-reload"),
        sh(f"systemctl enable {RESUME_TIMER}"),
        sh(f"systemctl restart {RESUME_TIMER}"),
        sh(f"systemctl is-enabled {RESUME_TIMER}"),
        drop_ins("dnf-automatic-install.service"),
    ]


def test_a_pause_of_some_days_ends_that_many_days_from_now(apt: FakeTools, tmp_path: Path) -> None:
    before = datetime.now(UTC)

    result = execute(PauseOsUpdatesHandler(), {"paused": True, "days": 14}, tmp_path)

    assert before + timedelta(days=14) <= datetime.fromisoformat(result["until"]) <= datetime.now(UTC) + timedelta(14)


def test_an_open_ended_pause_retires_the_timer_of_an_earlier_one(apt: FakeTools, etc: Path, tmp_path: Path) -> None:
    execute(PauseOsUpdatesHandler(), {"paused": True, "days": 2}, tmp_path)
    apt.log.unlink()

    execute(PauseOsUpdatesHandler(), {"paused": True}, tmp_path)

    assert not (etc / f"systemd/system/{RESUME_TIMER}").exists()
    assert not (etc / "systemd/system/tether-os-updates-resume.service").exists()
    assert apt.calls()[1] == sh(f"systemctl disable --now {RESUME_TIMER}")


def test_resuming_removes_the_pause_and_its_timer(apt: FakeTools, etc: Path, tmp_path: Path) -> None:
    execute(PauseOsUpdatesHandler(), {"paused": True, "days": 2}, tmp_path)
    apt.log.unlink()

    result = execute(PauseOsUpdatesHandler(), {"paused": "off"}, tmp_path)

    assert result == {"paused": False, "was_paused": True, "backend": "apt", "service": "apt-daily-upgrade.service"}
    assert not pause_file(etc).exists()
    assert not (etc / f"systemd/system/{RESUME_TIMER}").exists()
    assert apt.calls() == [
        sh(f"systemctl disable --now {RESUME_TIMER}"),
        sh("systemctl daemon-reload"),
        drop_ins("apt-daily-upgrade.service"),
    ]


def test_resuming_what_was_not_paused_says_so(apt: FakeTools, tmp_path: Path) -> None:
    assert execute(PauseOsUpdatesHandler(), {"paused": False}, tmp_path)["was_paused"] is False


def test_pausing_a_service_systemd_does_not_have_fails_and_changes_nothing(
    dnf: FakeTools, etc: Path, tmp_path: Path
) -> None:
    dnf.add("systemctl", stdout="not-found\n")

    with pytest.raises(HandlerError, match=r"^dnf-automatic-install.service is not-found to systemd: there are no"):
        execute(PauseOsUpdatesHandler(), {"paused": True}, tmp_path)
    assert dnf.calls() == [load_state("dnf-automatic-install.service")]
    assert not etc.exists()


def test_a_pause_systemd_does_not_read_fails(apt: FakeTools, tmp_path: Path) -> None:
    apt.add("systemctl", script="""case "$3" in LoadState) echo loaded ;; esac""")

    with pytest.raises(HandlerError, match=r"^systemd does not read .*tether-pause.conf for apt-daily-upgrade.service"):
        execute(PauseOsUpdatesHandler(), {"paused": True}, tmp_path)


@pytest.mark.parametrize(
    ("until", "message"),
    [
        (datetime.now(UTC) - timedelta(minutes=1), "has passed"),
        (datetime.now(UTC) + timedelta(days=91), "a pause ends at most 90 days ahead"),
    ],
)
def test_a_pause_must_end_ahead_and_within_90_days(
    apt: FakeTools, tmp_path: Path, until: datetime, message: str
) -> None:
    with pytest.raises(InvalidArguments, match=rf"^invalid arguments: until: .*{message}"):
        execute(PauseOsUpdatesHandler(), {"paused": True, "until": until.isoformat()}, tmp_path)
    assert apt.calls() == []


# --- arguments and platforms ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"policy": "postpone"},
        {"policy": "windowed"},
        {"policy": "windowed", "window_start": "02:00"},
        {"policy": "windowed", "window_start": "02:00", "window_end": "02:00"},
        {"policy": "windowed", "window_start": "2:00", "window_end": "04:00"},
        {"policy": "windowed", "window_start": "24:00", "window_end": "04:00"},
        {"policy": "windowed", "window_start": "02:00\n[Service]", "window_end": "04:00"},
        {"policy": "windowed", "window_start": "02:00:00", "window_end": "04:00"},
        {"policy": "automatic", "window_start": "02:00", "window_end": "04:00"},
        {"policy": "manual", "reboot": True},
        {"policy": "automatic", "reboot": "yes"},
        {"policy": "automatic", "extra": 1},
    ],
)
def test_bad_policies_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ArgumentsError):
        validate_arguments(OperationType.SET_OS_UPDATE_POLICY, arguments)


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"paused": True, "days": 0},
        {"paused": True, "days": 91},
        {"paused": True, "days": 2, "until": "2030-01-01T00:00:00Z"},
        {"paused": True, "until": "2030-01-01T00:00:00"},  # no offset: whose clock?
        {"paused": False, "days": 2},
        {"paused": True, "extra": 1},
    ],
)
def test_bad_pauses_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ArgumentsError):
        validate_arguments(OperationType.PAUSE_OS_UPDATES, arguments)


@pytest.mark.parametrize(
    "operation_type",
    [OperationType.PAUSE_OS_UPDATES, OperationType.SET_OS_UPDATE_POLICY, OperationType.DEFER_OS_UPDATES],
)
def test_android_has_no_update_policy(operation_type: OperationType) -> None:
    with pytest.raises(UnsupportedOperation):
        handler_for(operation_type, AndroidPlatform(serial="S1"))


def test_linux_cannot_defer_updates(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOperation):
        handler_for(OperationType.DEFER_OS_UPDATES, LinuxPlatform(boot_id_path=tmp_path / "boot_id"))

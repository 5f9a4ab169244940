"""docs/operations.md predicts, for every type and platform, whether it runs; each row is run here to prove it."""

import ast
import asyncio
import contextlib
import hashlib
import json
import re
import socket
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent import process
from agent.config import AgentSettings
from agent.errors import UnsupportedOperation
from agent.handlers import build_registry, handler_for
from agent.handlers.base import Handler, PlatformTools
from agent.journal import Journal
from agent.platforms.android import AndroidPlatform
from agent.platforms.contract import DeviceSurvey
from agent.platforms.linux import LinuxPlatform
from agent.profile import LostMode, Profile, ProfileStore
from agent.reachability import BrokerReachability
from agent.runner import Runner
from shared.arguments import validate_arguments
from shared.arguments.management import DeviceConfigArguments
from shared.messages import ARTIFACT_TYPES, Announcement, ArtifactUpload, Command, StatusReport, utc_now
from shared.operations import DeviceStatus, OperationType, Platform
from tests.agent.artifact_receiver import Receiver, serving
from tests.agent.catalogue_commands import check_or_record, normalise, unnamed
from tests.agent.file_server import Server
from tests.agent.test_linux_updates import fake_apt_config, fake_systemctl
from tests.agent.test_runner import until
from tests.fake_adb import FakeAdb
from tests.fakes import GSETTINGS, RUNUSER, FakeSession, FakeTools, logind

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
HEADER = "| Type | Linux | Android | Example arguments | Result |"
NOT_SUPPORTED = "not supported"
SERIAL = "0A1B2C3D4E"
BOOT_ID_READ = ["shell", "cat", "/proc/sys/kernel/random/boot_id"]
RESTARTING = frozenset({OperationType.REBOOT, OperationType.SHUT_DOWN})


@dataclass(frozen=True, slots=True)
class Row:
    type_name: str
    cells: Mapping[Platform, str]
    arguments: dict[str, Any]
    result: str

    @property
    def operation_type(self) -> OperationType:
        return OperationType(self.type_name)

    def supported(self, platform: Platform) -> bool:
        cell = self.cells[platform]
        return not (cell == NOT_SUPPORTED or cell.startswith(NOT_SUPPORTED + " — "))


def cells(line: str) -> list[str]:
    """The cells of a Markdown table line; `\\|` is a pipe inside a cell."""
    parts = re.split(r"(?<!\\)\|", line.strip())
    return [part.strip().replace("\\|", "|") for part in parts[1:-1]]


def code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]*)`", cell)
    assert match is not None, f"expected one code span, got {cell!r}"
    return match[1]


def read_table(text: str) -> list[Row]:
    lines = text.splitlines()
    assert lines.count(HEADER) == 1, f"docs/operations.md needs exactly one table headed {HEADER!r}"
    start = lines.index(HEADER) + 2  # the header and its |---| line
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        type_cell, linux, android, arguments, result = cells(line)
        rows.append(
            Row(
                type_name=code(type_cell),
                cells={Platform.LINUX: linux, Platform.ANDROID: android},
                arguments=json.loads(code(arguments)),
                result=result,
            )
        )
    return rows


def config_example(text: str) -> dict[str, Any]:
    """The agent config the page shows, in its one ```toml block."""
    blocks = re.findall(r"^```toml\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1
    return tomllib.loads(blocks[0])


TEXT = DOC.read_text()
ROWS = read_table(TEXT)
OPERATOR_PROGRAMS = {action["command"][0] for action in config_example(TEXT)["custom_actions"].values()} | {
    word for row in ROWS if row.type_name == "RUN_SHELL_SCRIPT" for word in row.arguments["script"].split()
}
"""Programs the operator supplies (custom actions, a script's commands): the cells describe them, not name them."""
OPERATOR_COMMANDS = frozenset(
    {OperationType.CONVERGE, OperationType.WIPE, OperationType.RUN_CUSTOM_ACTION, OperationType.RUN_SHELL_SCRIPT}
)
CASES = [pytest.param(row, platform, id=f"{row.type_name}-{platform}") for row in ROWS for platform in Platform]


def settings(state_dir: Path) -> AgentSettings:
    """The page's config example, as the agent would load it: it names every key the catalogue's rows rely on."""
    return AgentSettings.model_validate(
        {**config_example(TEXT), "broker": "mqtt://127.0.0.1:1883", "device_id": "d1", "state_dir": state_dir}
    )


def registry(state_dir: Path) -> Mapping[OperationType, Handler]:
    config = settings(state_dir)
    return build_registry(
        reboot_grace_s=30.0,  # never waited out: the test stops the agent as the device would, right after the tool
        custom_actions=config.custom_actions,
        converge_actions=config.converge_actions,
        provision_action=config.provision_action,
        wipe_action=config.wipe_action,
        remote_connection=config.remote_connection,
    )


def test_the_table_has_every_type_once_in_the_seeds_order() -> None:
    assert [row.type_name for row in ROWS] == [str(operation_type) for operation_type in OperationType]


def test_the_counts_under_the_table_add_up() -> None:
    match = re.search(
        r"^Supported: (\d+) types on Linux, (\d+) on Android, (\d+) on at least one of them\.$",
        TEXT,
        flags=re.MULTILINE,
    )
    assert match is not None
    linux, android = (Platform.LINUX, Platform.ANDROID)
    counted = (
        sum(row.supported(linux) for row in ROWS),
        sum(row.supported(android) for row in ROWS),
        sum(row.supported(linux) or row.supported(android) for row in ROWS),
    )
    assert (int(match[1]), int(match[2]), int(match[3])) == counted


def test_every_type_a_platform_lacks_says_why() -> None:
    for row in ROWS:
        for platform, cell in row.cells.items():
            if not row.supported(platform):
                reason = cell.removeprefix(NOT_SUPPORTED + " — ")
                assert reason != cell, f"{row.type_name} on {platform} gives no reason: {cell!r}"
                assert "no handler" not in reason, f"{row.type_name} on {platform}: {cell!r}"


def test_the_config_example_allows_exactly_the_destructive_types(tmp_path: Path) -> None:
    destructive = {operation_type for operation_type, handler in registry(tmp_path).items() if handler.destructive}
    assert set(settings(tmp_path).allow_destructive) == destructive


@pytest.mark.parametrize("row", ROWS, ids=[row.type_name for row in ROWS])
def test_the_example_arguments_are_valid(row: Row) -> None:
    validate_arguments(row.operation_type, row.arguments)


@pytest.mark.parametrize(
    ("cell", "argv", "named"),
    [
        ("`adb -s S shell svc wifi enable|disable`", ["adb", "-s", "S", "shell", "svc", "wifi", "disable"], True),
        ("`adb -s S shell svc wifi enable|disable`", ["adb", "-s", "S", "shell", "svc", "wfii", "disable"], False),
        ("`pm enable PACKAGE` (enabled)", ["adb", "-s", "S", "shell", "pm", "enable", "com.example"], True),
        ("`nmcli radio wifi on|off`", ["nmcli", "radio", "wifi", "of"], False),
        ("`rm -rf /`", ["nmcli", "radio", "wifi", "off"], False),
        ("`beep -l MILLISECONDS`", ["beep", "-l", "1500"], True),
        (
            "`nmcli connection add type wifi con-name SSID [802-11-wireless.psk PASSWORD]`",
            ["nmcli", "connection", "add", "type", "wifi", "con-name", "Office", "802-11-wireless.psk", "x"],
            True,
        ),
        (
            "`dpkg-query -W -f '${Package}\\t${Version}\\n'`",
            ["dpkg-query", "-W", "-f", "${Package}\t${Version}\n"],
            True,
        ),
    ],
)
def test_a_cell_names_a_command_only_word_for_word(cell: str, argv: list[str], named: bool) -> None:
    assert (unnamed(cell, [argv], set()) == []) is named


def agent_strings() -> set[str]:
    """Every string constant in the agent's code: the programs it can run are among them."""
    strings: set[str] = set()
    for path in (DOC.parents[1] / "agent").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.update(node.value.split())
    return strings


def test_every_command_a_cell_names_is_a_program_the_agent_runs() -> None:
    """A cell cannot name a tool the code never mentions (the program of each code span that reads as a command)."""
    known = agent_strings() | OPERATOR_PROGRAMS
    for row in ROWS:
        for platform, cell in row.cells.items():
            for span in re.findall(r"`([^`]+)`", cell):
                words = span.split()
                if words[:4] == ["adb", "-s", "S", "shell"]:
                    words = words[4:]
                elif words[:3] == ["adb", "-s", "S"]:
                    words = ["adb", *words[3:]]
                if len(words) > 1 and re.fullmatch(r"[a-z][a-z0-9_.+-]*", words[0]):
                    assert words[0] in known, (
                        f"{row.type_name} on {platform} names {span!r}, which the agent never runs"
                    )


STAND_INS = {
    "ca/debian": "/usr/local/share/ca-certificates",
    "ca/rhel": "/etc/pki/ca-trust/source/anchors",
    "etc": "/etc",
    "backgrounds": "/usr/local/share/backgrounds/tether",
    "run-user": "/run/user",
}
"""The system directories the Linux rows write to, as temporary ones: the commands shown name the real ones."""


def platform_object(platform: Platform, tmp_path: Path) -> PlatformTools:
    if platform is Platform.LINUX:
        return LinuxPlatform(
            boot_id_path=tmp_path / "boot_id",
            tool_timeout=5,
            debian_ca_dir=tmp_path / "ca" / "debian",
            rhel_ca_dir=tmp_path / "ca" / "rhel",
            etc_dir=tmp_path / "etc",
            wallpaper_dir=tmp_path / "backgrounds",
            user_runtime_root=tmp_path / "run-user",
            proc_modules=tmp_path / "proc-modules",
            builtin_modules=tmp_path / "modules.builtin",
        )
    return AndroidPlatform(serial=SERIAL, tool_timeout=5)


@pytest.mark.parametrize(("row", "platform"), CASES)
def test_the_cell_says_not_supported_exactly_when_the_registry_has_no_handler(
    row: Row, platform: Platform, tmp_path: Path
) -> None:
    try:
        handler_for(row.operation_type, platform_object(platform, tmp_path), registry(tmp_path))
    except UnsupportedOperation:
        supported = False
    else:
        supported = True
    assert row.supported(platform) == supported, row.cells[platform]


# --- running every row --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serving() as server:
        yield server


@pytest.fixture(scope="module")
def files() -> Iterator[Server]:
    server = Server()
    server.thread.start()
    yield server
    server.release.set()
    server.httpd.shutdown()
    server.httpd.server_close()


PNG_PRINTF = r"printf '\211PNG\r\n\032\n fake screen' >"

NMCLI = """case "$*" in
  "--escape no -g connection.type connection show id Office") echo 802-11-wireless ;;
  "--escape no -g connection.type connection show id "*) echo "Error: no such connection profile." >&2; exit 10 ;;
  "--escape no -g GENERAL.CON-UUID device show "*) echo 6c1e8f43-0f5a-4a52-9d3e-2b7a1c9e0d11 ;;
esac"""
BUSCTL = """case "$*" in
  *" GetDeviceByIpIface s "*) echo 'o "/org/freedesktop/NetworkManager/Devices/2"' ;;
  *" CheckpointCreate "*) echo 'o "/org/freedesktop/NetworkManager/Checkpoint/1"' ;;
esac"""
LOCK_SETTINGS = """case "$2" in
  clear) echo "Lock credential cleared" ;;
  set-pin) echo "Pin set to '482916'" ;;
esac"""
APT_GET = """case "$1" in
  -s) echo "Inst tzdata [2024a-0+deb12u1] (2025a-0+deb12u1 Debian:12.9/stable-updates [all])" ;;
  *) echo "Reading package lists... Done" ;;
esac"""
"""NOTIFY_OTA's simulated upgrade finds one update; everything else apt-get does just succeeds."""
RFKILL = """case "$*" in
  "--noheadings --output ID list bluetooth") echo 0 ;;
esac"""
ETC = '"${0%/bin/*}/etc"'
"""The platform's etc_dir (tmp_path/etc), as a fake in tmp_path/bin finds it."""

GPSD_FIX = (
    '{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}\n'
    '{"class":"TPV","device":"/dev/ttyACM0","mode":3,"time":"2026-11-22T10:00:00.000Z",'
    '"lat":52.520008,"lon":13.404954,"altHAE":74.2,"eph":4.9}\n'
)
DUMPSYS_LOCATION = """Location Manager State:
  gps provider:
    last location=Location[gps 52.520008,13.404954 hAcc=4.9 et=+2h3m4s567ms alt=74.2 vAcc=3.1]
"""

HOST_TOOLS: dict[str, dict[str, Any]] = {
    # On the host for Linux rows; for Android rows the fake adb's device shell is this host's, so scripts find them.
    "apt-get": {"script": APT_GET},
    "dpkg-query": {"stdout": "curl\t7.88.1-10+deb12u5\tinstalled\nhtop\t3.2.2-2\tinstalled\nkiosk\t2.1\tinstalled\n"},
    "dpkg-deb": {"stdout": "kiosk\t2.1\n"},  # INSTALL's example package file
    "nmcli": {"script": NMCLI},
    "busctl": {"script": BUSCTL},
    "rfkill": {"script": RFKILL},
    "timedatectl": {},
    "localectl": {},
    "locale": {"stdout": "C\nC.utf8\nPOSIX\nde_DE.utf8\n"},
    # A kiosk user in GNOME on Wayland at the screen, and an administrator over SSH (a terminal for wall).
    "loginctl": {
        "script": logind(FakeSession("2", tty="tty2"), FakeSession("7", user="ops", uid=1001, type="tty", tty="pts/0"))
    },
    "runuser": {"script": RUNUSER},
    "gsettings": {"script": GSETTINGS},
    "notify-send": {},
    "brightnessctl": {"stdout": "Updated device 'intel_backlight'\n"},
    "xset": {},
    "wpctl": {},
    "wall": {},
    "who": {"stdout": "kiosk    tty2         2026-11-22 09:58\n"},
    "beep": {},
    "gpspipe": {"stdout": GPSD_FIX},
    "grim": {"script": PNG_PRINTF + ' "$1"'},
    "journalctl": {"stdout": "2026-11-22T10:00:00+0000 kiosk systemd[1]: Started tetherd.service.\n"},
    "df": {"stdout": "Filesystem Size Used Avail Use% Mounted on\n/dev/sda1 58G 9G 46G 17% /\n"},
    "ip": {"stdout": "1: lo: <LOOPBACK,UP> mtu 65536\n"},
    "ps": {"stdout": "USER PID %CPU %MEM COMMAND\nroot 1 0.0 0.1 /sbin/init\n"},
    "update-ca-certificates": {"stdout": "1 added, 0 removed; done.\n"},
    "rauc": {"stdout": "installing: succeeded\n"},
    "uptime": {"stdout": " 10:15:00 up 3 days,  2:01,  0 users\n"},
    "systemd-run": {"stdout": "Running timer as unit: tetherd-remove.timer\n"},
    "systemctl": {"script": fake_systemctl(ETC)},
    "getent": {"stdout": "kiosk:x:1001:1001:Kiosk:/home/kiosk:/bin/sh\n"},  # SET_KIOSK_APP's user
    "id": {"stdout": "kiosk video\n"},  # and its groups
    "cage": {},
    "chromium": {},  # SET_KIOSK_APP's app
    # The Android device's `cmd`: `cmd lock_settings` reaches the device on its shell's standard input.
    "cmd": {"script": LOCK_SETTINGS},
    "unattended-upgrade": {},  # apt's automatic updates are installed
    "apt-config": {"script": fake_apt_config(ETC)},
    "modprobe": {},
    # The custom actions of the page's config example.
    "ansible-pull": {"stdout": "PLAY RECAP ok=3 changed=0\n"},
    "provision-kiosk": {},
    "restore-image": {},
}

ANDROID_RESPONSES: list[tuple[list[str], str]] = [
    (["shell", "pm", "clear"], "Success\n"),
    (["shell", "cmd", "package", "resolve-activity"], "com.example.kiosk/.MainActivity\n"),
    (["shell", "cmd", "package", "query-activities"], "com.android.chrome/.Main\ncom.example.games/.Play\n"),
    (["shell", "pm", "suspend"], "Package new suspended state: true\n"),
    (["shell", "pm", "unsuspend"], "Package new suspended state: false\n"),
    (["shell", "dumpsys", "location"], DUMPSYS_LOCATION),
    (["shell", "cat", "/proc/uptime"], "7400.25 14000.50\n"),
]
ANDROID_PACKAGES = {"com.android.chrome": "631208033", "com.example.kiosk": "42", "htop": "1"}

Preparation = Callable[["Bench"], None]


def installed_certificate(bench: "Bench") -> None:
    """UNINSTALL_CERTIFICATE removes what an earlier INSTALL_CERTIFICATE left."""
    anchors = bench.tmp_path / "ca" / "debian"
    anchors.mkdir(parents=True)
    (anchors / "tether-example-root.crt").write_text("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n")


def multi_app_mode(bench: "Bench") -> None:
    """ADD_TO_WHITELIST and REMOVE_FROM_WHITELIST change the device only while multi-app mode is on."""
    state = bench.tmp_path / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "kiosk.json").write_text('{"multi_app": true, "suspended": ["com.android.chrome"]}')


def lock_credential(credential: str) -> Preparation:
    """The Android device's lock screen reads `credential` (`dumpsys lock_settings`), as it does after the row ran."""

    def prepare(bench: "Bench") -> None:
        if bench.adb is not None:
            bench.adb.set_credential(SERIAL, credential)

    return prepare


def loaded_drivers(bench: "Bench") -> None:
    """ALLOW_BLUETOOTH and ALLOW_CAMERA unload what is loaded: a Bluetooth adapter's and a webcam's drivers."""
    (bench.tmp_path / "proc-modules").write_text(
        "btusb 77824 0 - Live 0x0\nbluetooth 1028096 3 btusb, Live 0x0\nuvcvideo 139264 0 - Live 0x0\n"
    )
    (bench.tmp_path / "modules.builtin").write_text("kernel/drivers/net/e1000e/e1000e.ko\n")  # neither built in


def javascript_polkit(bench: "Bench") -> None:
    """USE_ONLY_SAVED_WIFI_AP writes a rule only where polkit reads JavaScript rules (0.106 and later)."""
    (bench.tmp_path / "etc" / "polkit-1" / "rules.d").mkdir(parents=True, exist_ok=True)


ANNOUNCED = Announcement(
    device_id="d1", platform=Platform.LINUX, agent_version="0.1.0", tags=["kiosk"], announced_at=utc_now()
)
"""What the device announced before the catalogue's UPDATE_DEVICE_CONFIG row changes it."""

PREPARATIONS: dict[OperationType, Preparation] = {
    OperationType.UNINSTALL_CERTIFICATE: installed_certificate,
    OperationType.ADD_TO_WHITELIST: multi_app_mode,
    OperationType.REMOVE_FROM_WHITELIST: multi_app_mode,
    OperationType.LOCK: lock_credential("Pin"),
    OperationType.ENABLE_LOST_MODE: lock_credential("Pin"),
    OperationType.CLEAR_PASSCODE: lock_credential("None"),
    OperationType.RESET_LOCKSCREEN_PASSWORD: lock_credential("Pin"),
    OperationType.ALLOW_BLUETOOTH: loaded_drivers,
    OperationType.ALLOW_CAMERA: loaded_drivers,
    OperationType.USE_ONLY_SAVED_WIFI_AP: javascript_polkit,
}


class Bench:
    """One device of `platform` behind a real Runner, journal and registry, with recording fakes at the OS edge."""

    def __init__(self, platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.platform = platform
        self.tmp_path = tmp_path
        bin_dir = tmp_path / "bin"
        self.adb: FakeAdb | None = None
        if platform is Platform.ANDROID:
            self.adb = FakeAdb.on_path(bin_dir, monkeypatch)
            self.adb.attach(SERIAL, packages=dict(ANDROID_PACKAGES), boot_id="boot-1")
            for match, stdout in ANDROID_RESPONSES:
                self.adb.respond(SERIAL, match, stdout=stdout)
            self.tools = FakeTools(bin_dir)
        else:
            self.tools = FakeTools.on_path(bin_dir, monkeypatch)
            (tmp_path / "boot_id").write_text("boot-1\n")
        for name, behaviour in HOST_TOOLS.items():
            self.tools.add(name, **behaviour)
        monkeypatch.setenv("DISPLAY", ":0")  # a kiosk's tetherd unit names its X display
        self.device = platform_object(platform, tmp_path)
        self.registry = registry(tmp_path / "state")
        self.destructive = frozenset(t for t, handler in self.registry.items() if handler.destructive)
        self.journal = Journal(tmp_path / "state" / "journal.db")
        self.published: list[StatusReport] = []
        self.profile = Profile(ProfileStore(tmp_path / "state" / "profile.json"), ANNOUNCED)
        self.broker = socket.create_server(("127.0.0.1", 0))
        """Stands in for the broker a network change must leave reachable."""
        self.announced: list[Announcement] = []

    async def _update_profile(self, change: DeviceConfigArguments) -> dict[str, Any]:
        return self.profile.change(change, ANNOUNCED)[1]

    async def _update_lost_mode(self, message: str | None) -> LostMode:
        return self.profile.set_lost_mode(message, ANNOUNCED)[1]

    async def _announce(self, survey: DeviceSurvey) -> Announcement:
        """What the device's session publishes for NUDGE_DEVICE: the profile over what the device reported."""
        reported = ANNOUNCED.model_copy(update={"inventory": survey.inventory, "time_zone": survey.time_zone})
        self.announced.append(self.profile.announced(reported))
        return self.announced[-1]

    def runner(self) -> Runner:
        return Runner(
            device_id="d1",
            platform=self.device,
            registry=self.registry,
            journal=self.journal,
            publish=self._publish,
            work_root=self.tmp_path / "state" / "work",
            allow_destructive=self.destructive,
            update_profile=self._update_profile,
            update_lost_mode=self._update_lost_mode,
            reach_broker=BrokerReachability((("127.0.0.1", self.broker.getsockname()[1]),), within_s=2),
            announce=self._announce,
        )

    async def _publish(self, report: StatusReport) -> bool:
        self.published.append(report)
        return True

    def calls(self) -> list[list[str]]:
        """Every tool run on the device, except the boot-id reads that the runner itself makes over adb."""
        adb_calls = [] if self.adb is None else self.adb.calls()
        return [argv for argv in adb_calls if argv[3:] != BOOT_ID_READ] + self.tools.calls()

    def restart_device(self) -> None:
        if self.adb is None:
            (self.tmp_path / "boot_id").write_text("boot-2\n")
        else:
            self.adb.set_boot_id(SERIAL, "boot-2")

    def final(self) -> StatusReport:
        return self.published[-1]

    def run(self, command: Command) -> None:
        """Run `command` to its final status; REBOOT and SHUT_DOWN are stopped by the restart their tool causes."""

        async def go() -> None:
            runner = self.runner()
            worker = asyncio.create_task(runner.run())
            await runner.accept(command)
            if command.operation_type in RESTARTING and handler_in(self.registry, command, self.device):
                # The device goes down: the agent dies with its command in flight, then comes back on a new boot.
                await until(lambda: bool(self.calls()) or self.final().status.is_terminal)
            else:
                await until(lambda: self.final().status.is_terminal)
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            if not self.final().status.is_terminal:
                self.restart_device()
                await self.runner().recover()

        asyncio.run(go())


def handler_in(registry: Mapping[OperationType, Handler], command: Command, device: PlatformTools) -> bool:
    try:
        handler_for(command.operation_type, device, registry)
    except UnsupportedOperation:
        return False
    return True


IMAGE_HEADERS = {".png": b"\x89PNG\r\n\x1a\n"}
"""How a served image begins, as SET_WALLPAPER checks."""


def served(arguments: Any, server: Server, label: str) -> Any:
    """`arguments` with every download object pointing at a real file on `server`, with its real SHA-256."""
    if isinstance(arguments, list):
        return [served(item, server, label) for item in arguments]
    if not isinstance(arguments, dict):
        return arguments
    if {"url", "sha256"} <= arguments.keys():
        name = str(arguments["url"]).rsplit("/", 1)[-1]
        body = IMAGE_HEADERS.get(Path(name).suffix, b"") + f"{label}: the bytes of {name}\n".encode() * 64
        server.files[name] = body
        return {**arguments, "url": server.url(f"/files/{name}"), "sha256": hashlib.sha256(body).hexdigest()}
    return {key: served(value, server, label) for key, value in arguments.items()}


@pytest.fixture
def quiet_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests go straight to the local servers; cancelled fakes are reaped without the production graces."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(process, "KILL_GRACE_S", 0.5)
    monkeypatch.setattr(process, "DRAIN_S", 0.3)


@pytest.fixture
def benches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Platform], Bench]]:
    made: list[Bench] = []

    def make(platform: Platform) -> Bench:
        made.append(Bench(platform, tmp_path, monkeypatch))
        return made[-1]

    yield make
    for bench in made:
        bench.journal.close()
        bench.broker.close()


@pytest.mark.usefixtures("quiet_network")
@pytest.mark.parametrize(("row", "platform"), CASES)
def test_the_row_runs_as_the_table_says(
    row: Row, platform: Platform, benches: Callable[[Platform], Bench], files: Server, receiver: Receiver
) -> None:
    bench = benches(platform)
    if row.supported(platform) and row.operation_type in PREPARATIONS:
        PREPARATIONS[row.operation_type](bench)
    upload = None
    if row.operation_type in ARTIFACT_TYPES:
        upload = ArtifactUpload(
            url=f"{receiver.base}/v0/operations/op-{row.type_name}-{platform}/devices/d1/artifact",
            token="t" * 32,
            max_bytes=10**7,
        )
    command = Command(
        command_id="c1",
        operation_id=f"op-{platform}",
        device_id="d1",
        operation_type=row.operation_type,
        arguments=served(row.arguments, files, f"{row.type_name}-{platform}"),
        issued_at=utc_now(),
        artifact_upload=upload,
    )

    bench.run(command)

    ran = normalise(
        bench.calls(), bench.tmp_path, SERIAL, {bench.tmp_path / name: real for name, real in STAND_INS.items()}
    )
    check_or_record(row.type_name, platform, ran if row.supported(platform) else None)
    operator_programs = OPERATOR_PROGRAMS if row.operation_type in OPERATOR_COMMANDS else set()
    assert not unnamed(row.cells[platform], ran, operator_programs), "the cell does not name these commands"
    final = bench.final()
    if not row.supported(platform):
        assert [report.status for report in bench.published] == [DeviceStatus.PENDING, DeviceStatus.FAILED]
        assert final.failure_reason == f"{row.type_name} is not supported on {platform}"
        assert bench.calls() == []
        return
    assert (final.status, final.failure_reason) == (DeviceStatus.SUCCESSFUL, None)
    assert final.result is not None
    if row.operation_type in RESTARTING:
        assert final.result == {"previous_boot_id": "boot-1", "boot_id": "boot-2"}
    if "no tool runs" in row.cells[platform]:
        assert bench.calls() == []
        if "path" in final.result:  # SYNC_CONTENT: the file itself is the outcome
            assert Path(final.result["path"]).read_bytes() == files.files[Path(final.result["path"]).name]
    else:
        assert bench.calls(), "a supported row must reach the OS edge"
    if upload is not None:
        artifact = final.result["artifact"]
        assert receiver.stored[upload.url.path or ""] != b""
        assert artifact["sha256"] == hashlib.sha256(receiver.stored[upload.url.path or ""]).hexdigest()

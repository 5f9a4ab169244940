"""`tetherd run --android` on the secure path: the controller embeds its broker with `--broker-auth`, so every login
is confined to one device's topics and client id. Each Android device the host bridges logs in as itself, with a
login from the host's `android_logins` file; the host's own login, and each bridged device's, reach nothing else."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import Agent, Controller, tether, wait_for
from tests.e2e.test_broker_acl import SETTLE_S, Client
from tests.fake_adb import FakeAdb

pytestmark = pytest.mark.e2e

PHONE, TABLET = "R58M123ABC", "emulator-5554"
HOST = "bridge"
LOCK_ON_ANDROID = ["shell", "input", "keyevent", "KEYCODE_SLEEP"]


def android(serial: str) -> str:
    return f"android-{serial}"


@dataclass
class BridgedFleet:
    controller: Controller
    bridge: Agent
    adb: FakeAdb
    credentials: dict[str, str]
    logins: Path
    """The bridge host's `android_logins` file."""

    def hand_over(self, device_id: str) -> None:
        """Add `device_id`'s login, made on the controller, to the bridge host's file, as an operator would."""
        with self.logins.open("a") as file:
            file.write(f"{device_id} {self.credentials[device_id]}\n")

    def login(self, user: str) -> Client:
        """A connection with `user`'s login and the only client id it may use (that of its agent)."""
        return Client(self.controller.mqtt_port, user, self.credentials[user], client_id=f"tetherd-{user}")

    def lock(self, device_id: str) -> str:
        """Create a LOCK for `device_id`; its operation id once the command is on the broker."""
        created = self.controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": device_id}})
        wait_for(
            f"the LOCK for {device_id} dispatched",
            lambda: (
                self.controller.device_results(created["id"]).get(device_id, {}).get("dispatch_state") == "dispatched"
            ),
        )
        return str(created["id"])

    def announced(self) -> set[str]:
        return {d["device_id"] for d in self.controller.get("/v0/devices/")["results"] if d["platform"]}


@pytest.fixture(params=["amqtt", "mosquitto"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BridgedFleet]:
    """A controller whose embedded broker admits only its logins (the host's, the phone's and the tablet's), and a
    bridge host (a device itself, `bridge`) with the phone and the tablet on its fake adb; only the phone's login is
    in the host's `android_logins` file so far."""
    auth, logins = tmp_path / "auth", tmp_path / "android-logins"
    printed = tether("broker", "acl", "--dir", str(auth), "--device", HOST, "--device", android(TABLET))
    printed += tether("broker", "acl", "--dir", str(auth), "--device", android(PHONE), "--append-logins", str(logins))
    credentials = dict(line.split(" ", 1) for line in printed.splitlines())
    config = tmp_path / "bridge.toml"
    config.write_text(f'android_logins = "{logins}"\nandroid_poll_interval_s = 0.3\n')
    controller = Controller(tmp_path, None, "--embedded-broker", request.param, "--broker-auth", str(auth))
    adb = FakeAdb(tmp_path / HOST / "bin")  # first on the bridge's PATH
    adb.attach(PHONE, credential="Pin")  # a PIN is set, so LOCK locks them
    adb.attach(TABLET, credential="Pin")
    port = controller.mqtt_port
    bridge = Agent(
        tmp_path, f"mqtt://{HOST}:{credentials[HOST]}@127.0.0.1:{port}", HOST, "--android", "--config", str(config)
    )
    try:
        yield BridgedFleet(controller, bridge, adb, credentials, logins)
    except BaseException:
        for part in (controller.process, bridge.process):
            print(f"--- {part.argv[:2]} ---\n{part.output()[-6000:]}")
        raise
    finally:
        bridge.stop()
        controller.stop()


def test_a_bridged_android_device_logs_in_as_itself_and_runs_its_commands_under_the_acl(fleet: BridgedFleet) -> None:
    fleet.controller.wait_online(HOST, android(PHONE))

    operation = fleet.controller.wait_finished(fleet.lock(android(PHONE)))

    assert operation["state"] == "COMPLETED"
    assert fleet.controller.device_results(operation["id"])[android(PHONE)]["status"] == "SUCCESSFUL"
    assert ["adb", "-s", PHONE, *LOCK_ON_ANDROID] in fleet.adb.calls(PHONE)
    assert fleet.bridge.tools.calls() == []  # the host itself was not locked
    assert fleet.credentials[android(PHONE)] not in fleet.bridge.process.output()


def test_an_attached_device_without_a_login_is_named_once_and_left_offline(fleet: BridgedFleet) -> None:
    fleet.controller.wait_online(HOST, android(PHONE))
    hint = f"no broker login for {android(TABLET)}"
    wait_for("the missing login named", lambda: hint in fleet.bridge.process.output())
    time.sleep(2.0)  # several polls of adb devices

    log = fleet.bridge.process.output()
    assert log.count(hint) == 1
    assert f"tether broker acl --device {android(TABLET)}" in log
    assert android(TABLET) not in fleet.announced()
    assert fleet.adb.calls(TABLET) == []  # not even its inventory was read
    assert "connection to" not in log  # nobody tried to connect with a login the broker refuses


def test_a_login_added_to_the_file_brings_its_device_online_without_a_restart(fleet: BridgedFleet) -> None:
    fleet.controller.wait_online(HOST, android(PHONE))
    wait_for(
        "the missing login named", lambda: f"no broker login for {android(TABLET)}" in fleet.bridge.process.output()
    )

    fleet.hand_over(android(TABLET))

    fleet.controller.wait_online(android(TABLET))
    operation = fleet.controller.wait_finished(fleet.lock(android(TABLET)))
    assert operation["state"] == "COMPLETED"
    assert ["adb", "-s", TABLET, *LOCK_ON_ANDROID] in fleet.adb.calls(TABLET)
    assert ["adb", "-s", PHONE, *LOCK_ON_ANDROID] not in fleet.adb.calls(PHONE)


def test_a_bridged_devices_login_and_the_hosts_cannot_read_another_bridged_devices_commands(
    fleet: BridgedFleet,
) -> None:
    fleet.hand_over(android(TABLET))
    fleet.controller.wait_online(HOST, android(PHONE), android(TABLET))
    fleet.bridge.stop()  # its sessions' client ids are the only ones these logins may use
    fleet.lock(android(PHONE))
    fleet.lock(android(TABLET))
    snoopers = {user: fleet.login(user) for user in (android(PHONE), HOST)}
    try:
        assert [snooper.connected for snooper in snoopers.values()] == [True, True]
        for snooper in snoopers.values():
            snooper.subscribe(f"tether/v1/devices/{android(TABLET)}/commands/+")
            snooper.subscribe("tether/v1/devices/+/commands/+")
            snooper.subscribe("tether/v1/#")
        phone_commands = f"tether/v1/devices/{android(PHONE)}/commands/"
        phone = snoopers[android(PHONE)]
        phone.subscribe(f"{phone_commands}+")
        # The phone's own retained command arrives: the snooper is connected and subscribed, and is refused the rest.
        wait_for("the phone's own command", lambda: any(t.startswith(phone_commands) for t in phone.topics()))
        time.sleep(SETTLE_S)
        assert [t for t in phone.topics() if not t.startswith(phone_commands)] == []
        assert snoopers[HOST].topics() == []
    finally:
        for snooper in snoopers.values():
            snooper.close()


def test_a_login_taken_out_of_the_file_takes_its_device_offline(fleet: BridgedFleet) -> None:
    fleet.controller.wait_online(HOST, android(PHONE))

    fleet.logins.write_text("# the phone was lost: its login is revoked\n")

    def offline() -> bool:
        device = fleet.controller.get(f"/v0/devices/{android(PHONE)}/")
        return not device["online"]

    wait_for("the phone offline", offline)
    hint = f"no broker login for {android(PHONE)}"
    wait_for("the phone's missing login named", lambda: hint in fleet.bridge.process.output())
    log = fleet.bridge.process.output()
    assert f"the broker login of {android(PHONE)} was removed in {fleet.logins}: disconnecting it" in log
    assert log.count(hint) == 1
    fleet.controller.wait_online(HOST)


def test_logins_handed_to_a_bridge_host_are_its_new_devices_only_never_the_controllers(tmp_path: Path) -> None:
    auth, logins = tmp_path / "auth", tmp_path / "android-logins"

    first = tether("broker", "acl", "--dir", str(auth), "--device", "android-A", "--append-logins", str(logins))
    again = tether(
        "broker", "acl", "--dir", str(auth), "--device=android-A", "--device=android-B", f"--append-logins={logins}"
    )

    printed = dict(line.split(" ", 1) for line in (first + again).splitlines())
    assert list(printed) == ["tether-controller", "android-A", "android-B"]
    assert logins.read_text().splitlines() == [f"android-A {printed['android-A']}", f"android-B {printed['android-B']}"]
    assert logins.stat().st_mode & 0o777 == 0o600

"""A second look at the surfaces the security change added, as an attacker and a careless operator would try them:
each test is one attempt and what stopped it."""

import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from controller.amqtt_fixes import CONNECT_TIMEOUT_S
from controller.amqtt_packet_limit import MAX_DEVICE_PACKET_BYTES
from controller.api.http_protocol import HEADERS_TIMEOUT_S
from controller.api.routing import BODY_TIMEOUT_S
from shared.messages import MAX_ARGUMENTS_BYTES, Announcement, encode, utc_now
from shared.operations import OperationType, Platform
from shared.signing import canonical
from tests.e2e.attacks.amqtt_logins import PREFIX, AmqttLogins
from tests.e2e.attacks.test_disk_full import fill, small_disk  # noqa: F401 (a fixture, used by name)
from tests.e2e.harness import BIN, Agent, Controller, run_cli, tether, wait_for
from tests.e2e.test_broker_acl import SETTLE_S, Client
from tests.fixtures_brokers import free_port


def _string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def _remaining_length(length: int) -> bytes:
    encoded = bytearray()
    while True:
        length, digit = divmod(length, 128)
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


def _connect(client_id: str, user: str, password: str, will: tuple[str, bytes] | None = None) -> bytes:
    flags = 0xC2 | (0x0C if will else 0)  # user, password, clean session; a QoS 1 will
    header = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
    payload = _string(client_id) + (_string(will[0]) + _string(will[1]) if will else b"") + _string(user)
    payload += _string(password)
    return bytes([0x10]) + _remaining_length(len(header) + len(payload)) + header + payload


def _logged_in(port: int, user: str, password: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(_connect(f"tetherd-{user}", user, password))
    assert sock.recv(4) == b"\x20\x02\x00\x00"
    return sock


def _rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS:"))


def _closed_by_peer(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True  # reset
    return True


def test_a_device_publishing_more_than_any_message_may_hold_is_cut_off_before_the_broker_reads_it(
    amqtt_logins: AmqttLogins,
) -> None:
    """A device may send its own status; the controller refuses any payload past MAX_PAYLOAD_BYTES, so the broker
    has no reason to read, hold and forward one: 150 MB took the controller from 77 to 421 MB."""
    pid = amqtt_logins.controller.process.popen.pid
    before = _rss_mb(pid)
    size = 150 * 1024 * 1024
    topic = _string(f"{PREFIX}/dev-a/status/c1")
    device = _logged_in(amqtt_logins.port, "dev-a", amqtt_logins.credentials["dev-a"])
    with contextlib.closing(device):
        device.sendall(bytes([0x30]) + _remaining_length(len(topic) + size) + topic)
        chunk, sent = b"x" * (1024 * 1024), 0
        with contextlib.suppress(OSError):  # the broker closed the connection: what it should do
            while sent < size:
                sent += device.send(chunk)
        assert _closed_by_peer(device, 5)
    time.sleep(1)
    assert _rss_mb(pid) - before < 50
    # An honest device on the same login is served as before.
    with contextlib.closing(_logged_in(amqtt_logins.port, "dev-a", amqtt_logins.credentials["dev-a"])) as again:
        status = b'{"x": 1}'
        again.sendall(bytes([0x30]) + _remaining_length(len(topic) + len(status)) + topic + status)
        again.sendall(b"\xc0\x00")  # PINGREQ
        assert again.recv(2) == b"\xd0\x00"


def test_connects_declaring_more_than_a_login_needs_are_closed_without_being_read(amqtt_logins: AmqttLogins) -> None:
    """Before the password is checked anyone may send a CONNECT; one of 256 KiB (four fields at their 64 KiB limit)
    held open by a stranger is closed at its header, not read and kept until CONNECT_TIMEOUT_S."""
    field = "x" * 65000
    connect = _connect(field, field, field, will=(field, field.encode()))
    strangers = [socket.create_connection(("127.0.0.1", amqtt_logins.port), timeout=5) for _ in range(20)]
    try:
        for stranger in strangers:
            stranger.sendall(connect[:-1])  # all but its last byte: the broker waits for it
        started = time.monotonic()
        for stranger in strangers:
            assert _closed_by_peer(stranger, max(0.1, started + 2 - time.monotonic()))
        assert time.monotonic() - started < CONNECT_TIMEOUT_S / 2
    finally:
        for stranger in strangers:
            stranger.close()
    # A device's own login still works, a last will and all.
    with contextlib.closing(socket.create_connection(("127.0.0.1", amqtt_logins.port), timeout=5)) as device:
        presence = f"{PREFIX}/dev-a/presence"
        device.sendall(_connect("tetherd-dev-a", "dev-a", amqtt_logins.credentials["dev-a"], will=(presence, b"{}")))
        assert device.recv(4) == b"\x20\x02\x00\x00"


def test_a_device_packet_is_cut_off_one_byte_past_the_limit_and_served_up_to_it(amqtt_logins: AmqttLogins) -> None:
    """The limit leaves room for the largest payload the wire contract allows under the longest topic, no more."""
    topic = _string(f"{PREFIX}/dev-a/status/c1")
    with contextlib.closing(_logged_in(amqtt_logins.port, "dev-a", amqtt_logins.credentials["dev-a"])) as device:
        payload = b"x" * (MAX_DEVICE_PACKET_BYTES - len(topic))
        device.sendall(bytes([0x30]) + _remaining_length(len(topic) + len(payload)) + topic + payload)
        device.sendall(b"\xc0\x00")  # PINGREQ
        assert device.recv(2) == b"\xd0\x00"
        with contextlib.suppress(OSError):
            device.sendall(bytes([0x30]) + _remaining_length(len(topic) + len(payload) + 1) + topic + payload + b"x")
        assert _closed_by_peer(device, 5)


def test_http_connections_that_never_finish_their_headers_are_closed_and_release_their_file_descriptors(
    tmp_path: Path,
) -> None:
    """Slowloris: the REST port took any number of connections that never finished a request, without a key, and held
    each one (and its file descriptor, shared with the broker's) for as long as the client liked."""
    controller = Controller(tmp_path)
    try:
        pid = controller.process.popen.pid
        before = len(os.listdir(f"/proc/{pid}/fd"))
        silent = [socket.create_connection(("127.0.0.1", controller.http_port), timeout=5) for _ in range(20)]
        trickling = [socket.create_connection(("127.0.0.1", controller.http_port), timeout=5) for _ in range(20)]
        try:
            for sock in trickling:
                sock.sendall(b"POST /v0/operations/ HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            deadline = started + HEADERS_TIMEOUT_S + 5
            for sock in trickling:  # a header line every second keeps no connection open past the limit
                sock.setblocking(False)
            while time.monotonic() < deadline and any(sock.fileno() != -1 for sock in trickling):
                for sock in trickling:
                    if sock.fileno() == -1:
                        continue
                    try:
                        sock.sendall(b"X-Slow: 1\r\n")
                        if sock.recv(1) == b"":
                            sock.close()
                    except BlockingIOError:
                        pass
                    except OSError:
                        sock.close()
                time.sleep(1)
            assert all(sock.fileno() == -1 for sock in trickling), "a trickling client was kept past the limit"
            for sock in silent:
                assert _closed_by_peer(sock, max(0.1, deadline - time.monotonic()))
            assert time.monotonic() - started < HEADERS_TIMEOUT_S + 5
        finally:
            for sock in silent + trickling:
                sock.close()
        time.sleep(1)
        assert len(os.listdir(f"/proc/{pid}/fd")) - before < 5
        assert controller.http.get("/healthz").status_code == 200
    finally:
        controller.stop()


def test_a_silent_device_still_times_out_while_the_controllers_loop_keeps_stalling(tmp_path: Path) -> None:
    """Each tick that followed a stall of more than STALL_S moved every deadline by the whole gap: a controller
    stalled that often (here SIGSTOPped 3.6 s of every 4) never timed out a device that stays silent for ever."""
    controller = Controller(tmp_path)
    try:
        announcement = Announcement(
            device_id="silent",
            platform=Platform.LINUX,
            agent_version="test",
            capabilities=[OperationType.LOCK],
            announced_at=utc_now(),
        )
        device = Client(controller.mqtt_port, None, None, client_id="tetherd-silent")
        device.publish(f"{PREFIX}/silent/announce", encode(announcement), retain=True)
        device.close()
        wait_for("silent registered", lambda: controller.http.get("/v0/devices/silent/").status_code == 200)
        operation_id = controller.create(
            {"operation_type": "LOCK", "operation_device_query": {"device_id": "silent"}, "delivery_timeout_s": 10}
        )["id"]
        wait_for(
            "the command dispatched",
            lambda: controller.device_results(operation_id).get("silent", {}).get("dispatch_state") == "dispatched",
        )
        pid = controller.process.popen.pid
        try:
            for _ in range(10):  # 40 s: four times the deadline
                os.kill(pid, signal.SIGSTOP)
                time.sleep(3.6)
                os.kill(pid, signal.SIGCONT)
                time.sleep(0.4)
        finally:
            os.kill(pid, signal.SIGCONT)
        result = controller.device_results(operation_id)["silent"]
        assert result["status"] == "FAILED", result
    finally:
        controller.stop()


@pytest.mark.parametrize("password", ["Zm9v/YmFy+cXV4", "hash#in-it", "what?now"])
def test_a_broker_password_pasted_unencoded_into_a_url_is_never_printed_by_either_program(
    tmp_path: Path, password: str
) -> None:
    """A base64 password holds '/' and '+'; pasted into a URL unencoded, it ends the URL's host early, and the error
    that said so printed the whole URL, password and all, to the terminal and the journal."""
    url = f"mqtt://dev-a:{password}@127.0.0.1:1883"
    config = tmp_path / "agent.toml"
    config.write_text(f'device_id = "dev-a"\nstate_dir = "{tmp_path}"\nbroker = "{url}"\n')
    runs = [
        run_cli("tetherd", "config", "check", "--config", str(config)),
        run_cli("tetherd", "run", "--config", str(config)),
        run_cli("tether", "serve", "--broker", url, "--db", str(tmp_path / "tether.db")),
    ]
    for done in runs:
        assert done.returncode != 0
        assert "broker" in done.stderr
        for part in re.split(r"[/#?]", password):
            assert part not in done.stdout + done.stderr, done.stderr


@pytest.mark.parametrize("pasted", ["{key} ", "{key}\n", "\t{key}", "{key}\u00a0"], ids=repr)
def test_an_api_key_pasted_with_a_blank_or_line_break_is_refused_without_printing_it(
    tmp_path: Path, pasted: str
) -> None:
    """httpx refuses such a header value in words that quote it, and `tether` printed them: the whole key, on the
    terminal and in a CI log, under "cannot reach the controller"."""
    controller = Controller(tmp_path)
    try:
        key = pasted.format(key=controller.key)
        url = f"http://127.0.0.1:{controller.http_port}"
        runs = [
            run_cli("tether", "op", "list", "--url", url, "--api-key", key),
            subprocess.run(
                [str(BIN / "tether"), "devices", "list", "--url", url],
                env={**os.environ, "TETHER_API_KEY": key},
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ),
        ]
        for done in runs:
            assert (done.returncode, done.stdout) == (2, ""), done.stderr
            assert controller.key not in done.stderr
            assert done.stderr.endswith(
                "holds a blank, a line break or another character no API key has (it is not shown here) "
                "(see 'tether op list --help')\n".replace("op list", done.args[1] + " list")
            ), done.stderr
            assert done.stderr.count("\n") == 1, done.stderr
    finally:
        controller.stop()


def test_a_device_cannot_make_the_broker_keep_messages_beyond_its_announcement_and_presence(
    amqtt_logins: AmqttLogins,
) -> None:
    """A device may publish a status under any command id; retained, each was kept in the controller's memory for
    good and replayed to it at every reconnect: 100 of them took 100 topics, and any number would have."""
    device = amqtt_logins.device("dev-a")
    try:
        for n in range(100):
            device.publish(f"{PREFIX}/dev-a/status/junk-{n}", b"x" * 1000, retain=True)
        device.publish(f"{PREFIX}/dev-a/presence", b'{"kept": true}', retain=True)
    finally:
        device.close()
    controller_login = amqtt_logins.device("tether-controller", client_id="probe-controller")
    try:
        controller_login.subscribe(f"{PREFIX}/+/#")
        time.sleep(SETTLE_S)
        kept = controller_login.topics()
    finally:
        controller_login.close()
    assert f"{PREFIX}/dev-a/presence" in kept
    assert not [topic for topic in kept if "/status/" in topic]


def test_an_operation_whose_commands_could_not_reach_a_device_is_refused_at_creation_not_left_pending(
    tmp_path: Path,
) -> None:
    """A script under the script limit made a command over the 256 KiB a device accepts: 201, then the agent dropped
    it and the device stayed PENDING until the 24 h delivery deadline. Quoting can double a script's size, so it is
    the arguments as a command carries them that are measured; anything that fits is delivered and runs."""
    controller = Controller(tmp_path)
    agent = Agent(tmp_path, f"mqtt://127.0.0.1:{controller.mqtt_port}", "d" * 128)
    try:
        controller.wait_online(agent.device_id)
        for script in ("#" + "x" * 262_000, "#" + '"' * (MAX_ARGUMENTS_BYTES // 2)):
            refused = controller.http.post(
                "/v0/operations/",
                json={
                    "operation_type": "RUN_SHELL_SCRIPT",
                    "operation_device_query": {"device_id": agent.device_id},
                    "arguments": {"script": script},
                },
            )
            assert refused.status_code == 400, refused.text[:300]
            assert refused.json()["errors"][0]["field"].startswith("arguments")
        overhead = len(canonical({"script": ""}))
        largest = "#" + "x" * (MAX_ARGUMENTS_BYTES - overhead - 1)
        operation_id = controller.create(
            {
                "operation_type": "RUN_SHELL_SCRIPT",
                "operation_device_query": {"device_id": agent.device_id},
                "arguments": {"script": largest},
            }
        )["id"]
        controller.wait_finished(operation_id)
        assert controller.device_results(operation_id)[agent.device_id]["status"] == "SUCCESSFUL"
    finally:
        agent.stop()
        controller.stop()


def test_a_body_trickled_by_a_key_holder_is_answered_408_once_the_body_time_is_up(tmp_path: Path) -> None:
    """The headers have their own deadline; a body sent a byte every two seconds held its connection (and a task
    of the API's loop) for as long as the key holder liked."""
    controller = Controller(tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", controller.http_port), timeout=5) as sock:
            sock.sendall(
                b"POST /v0/operations/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {controller.key}\r\nContent-Length: 1000\r\n\r\n".encode()
            )
            started, answer = time.monotonic(), b""
            sock.setblocking(False)
            while time.monotonic() - started < BODY_TIMEOUT_S + 10 and not answer:
                with contextlib.suppress(BlockingIOError):
                    sock.sendall(b" ")
                    answer = sock.recv(4096)
                time.sleep(2)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert time.monotonic() - started < BODY_TIMEOUT_S + 5
        assert controller.http.get("/healthz").status_code == 200
    finally:
        controller.stop()


def test_a_controller_started_on_a_full_disk_says_so_in_one_line_instead_of_a_traceback(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Started on a full disk, with its database there or not yet, `tether serve` died with a 30-line traceback
    ("disk I/O error" from SQLite's WAL) and systemd restarted it into the same one."""
    disk: Path = request.getfixturevalue("small_disk")  # test_disk_full's tmpfs
    Controller(tmp_path, data_dir=disk).stop()
    fresh = disk / "fresh"
    fresh.mkdir()
    ballast = fill(disk)
    try:
        for database in (disk / "tether.db", fresh / "tether.db"):
            done = run_cli(
                "tether",
                "serve",
                "--http-listen",
                f"127.0.0.1:{free_port()}",
                "--mqtt-listen",
                f"127.0.0.1:{free_port()}",
                "--embedded-broker",
                "amqtt",
                "--db",
                str(database),
            )
            assert done.returncode == 1
            assert "Traceback" not in done.stderr, done.stderr[-600:]
            assert f"cannot open the database {database}" in done.stderr, done.stderr[-600:]
            assert "disk is full" in done.stderr
    finally:
        ballast.unlink()


def test_a_read_key_is_refused_403_before_the_controller_reads_its_body(tmp_path: Path) -> None:
    """A read key may not create; its body was read (up to --max-body-kb) before its role was looked at."""
    controller = Controller(tmp_path)
    try:
        reader = tether("keys", "create", "--name", "dashboard", "--role", "read", "--db", str(controller.db)).strip()
        with socket.create_connection(("127.0.0.1", controller.http_port), timeout=5) as sock:
            sock.sendall(
                b"POST /v0/operations/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {reader}\r\nContent-Length: 1000000\r\n\r\n".encode()
            )
            sock.settimeout(3)  # the body never comes: only an answer that does not wait for it arrives
            assert sock.recv(4096).startswith(b"HTTP/1.1 403")
    finally:
        controller.stop()

"""A REST client that sends what no honest client would: text JSON can carry but UTF-8 cannot encode, huge bodies
before authenticating, a forged Host header, an event stream it never reads; and a database holding such text from
an older version. The controller refuses at the edge, fails only the operation concerned, and stays up."""

import contextlib
import json
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil
import pytest

from controller.store import Store
from shared.operations import OperationType, ScheduleType
from tests.e2e.harness import Agent, Controller, assert_lock_runs, tether, wait_for

pytestmark = pytest.mark.e2e

LONE_SURROGATE = "\ud800"
"""What the JSON escape `\\ud800` decodes to: valid JSON, but text that UTF-8 (and so SQLite or a signature) cannot
encode."""
MiB = 1024 * 1024


def post_json(controller: Controller, path: str, body: object, method: str = "POST") -> httpx.Response:
    """`body` as JSON with Python's default escaping: a lone surrogate goes out as the six characters `\\ud800`."""
    content = json.dumps(body).encode()
    return controller.http.request(method, path, content=content, headers={"Content-Type": "application/json"})


def rss(controller: Controller) -> int:
    return int(psutil.Process(controller.process.popen.pid).memory_info().rss)


def operation_count(controller: Controller) -> int:
    return int(controller.get("/v0/operations/")["count"])


UNENCODABLE_BODIES = [
    (
        "/v0/operations/",
        {"operation_type": "LOCK", "operation_device_query": {"tags": LONE_SURROGATE}},
        "operation_device_query.tags",
    ),
    (
        "/v0/operations/",
        {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"device_id": "alpha"},
            "arguments": {"script": f"echo {LONE_SURROGATE}"},
        },
        "arguments.script",
    ),
    ("/devicecontrol/operations", {"deviceId": "alpha", "c8y_Custom": {"p": LONE_SURROGATE}}, "c8y_Custom.p"),
    ("/devicecontrol/operations", {"deviceId": "alpha", "c8y_Custom": {"\udc00": 1}}, "c8y_Custom.\\udc00"),
    ("/devicecontrol/operations", {"deviceId": "alpha", "description": "x\udfff", "c8y_Restart": {}}, "description"),
]


def test_text_that_utf8_cannot_encode_is_refused_by_both_apis_naming_the_field(
    alpha: tuple[Controller, Agent],
) -> None:
    controller, _ = alpha
    for path, body, field in UNENCODABLE_BODIES:
        answer = post_json(controller, path, body)
        assert answer.status_code == 400, (path, body, answer.text)
        refusal = answer.json()
        assert [error["field"] for error in refusal["errors"]] == [field], refusal
        assert "not valid Unicode" in refusal["errors"][0]["message"], refusal
    assert operation_count(controller) == 0
    created = post_json(controller, "/devicecontrol/operations", {"deviceId": "alpha", "c8y_Custom": {"p": "ok"}})
    assert created.status_code == 201, created.text
    update = post_json(
        controller,
        f"/devicecontrol/operations/{created.json()['id']}",
        {"status": "FAILED", "failureReason": f"broken {LONE_SURROGATE}"},
        method="PUT",
    )
    assert update.status_code == 400, update.text
    assert [error["field"] for error in update.json()["errors"]] == ["failureReason"]
    # Query parameters and paths are decoded with replacement characters: no surrogate gets through them.
    assert controller.http.get("/devicecontrol/operations?fragmentType=%ED%A0%80&deviceId=%FF").status_code == 200
    assert controller.http.get("/v0/operations/%ED%A0%80/").status_code == 404
    assert controller.http.get("/v0/operations/").status_code == 200
    assert controller.process.popen.poll() is None, controller.process.output()


def test_json_in_any_encoding_but_utf8_is_refused_400_never_a_500(alpha: tuple[Controller, Agent]) -> None:
    """json.loads reads bytes holding NULs as UTF-16 or -32, and lets UTF-8's bytes for a lone surrogate through:
    neither shows the `\\ud8..` escape the controller looked for, so such text reached the signature and was a 500."""
    controller, _ = alpha
    created = post_json(controller, "/devicecontrol/operations", {"deviceId": "alpha", "c8y_Custom": {"p": "ok"}})
    assert created.status_code == 201, created.text
    one = f"/devicecontrol/operations/{created.json()['id']}"
    lock = {"operation_type": "LOCK", "operation_device_query": {"device_id": "alpha"}}
    unencodable_lock = {**lock, "operation_device_query": {"tags": LONE_SURROGATE}}
    refused = [
        ("POST", "/devicecontrol/operations", b'{"deviceId": "alpha", "c8y_Custom": {"p": "\xed\xa0\x80"}}'),
        ("POST", "/devicecontrol/operations", b'{"deviceId": "alpha", "c8y_Custom": {"\xed\xb0\x80": 1}}'),
        ("PUT", one, b'{"c8y_Note": {"text": "\xed\xa0\x80"}}'),
        ("POST", "/v0/operations/", json.dumps(unencodable_lock).encode("utf-16")),
        ("POST", "/v0/operations/", json.dumps(lock).encode("utf-16-le")),
        ("POST", "/v0/operations/", json.dumps(lock).encode("utf-32")),
        ("PUT", one, json.dumps({"c8y_Note": {"text": "\udfff"}}).encode("utf-16-be")),
    ]
    for method, path, body in refused:
        answer = controller.http.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, (body, answer.text)
        (error,) = answer.json()["errors"]
        assert error["field"] == "body", answer.text
        assert "send JSON as UTF-8" in error["message"], answer.text
    assert operation_count(controller) == 1
    assert "c8y_Note" not in controller.http.get(one).json()
    assert post_json(controller, "/v0/operations/", lock).status_code == 201
    assert controller.process.popen.poll() is None, controller.process.output()
    assert "Exception in ASGI application" not in controller.process.output()


def test_an_operation_stored_with_unencodable_text_fails_alone_and_the_controller_stays_up(
    tmp_path: Path, mosquitto_url: str
) -> None:
    """A row written by an older controller (or by hand): dispatching it must fail it, not crash-loop the process."""
    (tmp_path / "before").mkdir()
    first = Controller(tmp_path / "before", mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "alpha")
    controller: Controller | None = None
    try:
        first.wait_online("alpha")
        first.stop()
        (tmp_path / "after").mkdir()
        database = tmp_path / "after" / "tether.db"
        with sqlite3.connect(first.db) as old, sqlite3.connect(database) as new:
            old.backup(new)
            new.execute("DELETE FROM api_keys")  # the harness makes its own key
        shutil.copytree(tmp_path / "before" / "signing", tmp_path / "after" / "signing")  # the fleet's key, kept
        store = Store(database)
        try:
            poisoned = store.operations.create(
                operation_type=OperationType.RUN_SHELL_SCRIPT,
                schedule_type=ScheduleType.IMMEDIATE,
                schedule_args=None,
                device_query={"device_id": "alpha"},
                arguments={"script": "placeholder"},
                created_by="an older controller",
                timeout_s=60,
                delivery_timeout_s=60,
            )
        finally:
            store.close()
        with sqlite3.connect(database) as db:
            db.execute("UPDATE operations SET arguments = ? WHERE id = ?", ('{"script": "echo \\ud800"}', poisoned))
        controller = Controller(tmp_path / "after", mosquitto_url)
        failed = controller.wait_finished(poisoned)
        assert failed["state"] == "FAILED", failed
        assert "arguments.script" in failed["reason"], failed
        assert "not valid Unicode" in failed["reason"], failed
        assert controller.device_results(poisoned)["alpha"]["status"] == "FAILED"
        assert_lock_runs(controller, agent)
        listed = {operation["id"]: operation for operation in controller.get("/v0/operations/")["results"]}
        assert listed[poisoned]["arguments"] == {"script": "echo \ufffd"}  # shown, with U+FFFD in its place
        assert controller.http.get("/devicecontrol/operations", params={"pageSize": 100}).status_code == 200
        assert controller.process.popen.poll() is None, controller.process.output()
    finally:
        agent.stop()
        if controller is not None:
            controller.stop()


def huge_json(size: int) -> bytes:
    """A well-formed create request of about `size` bytes, mostly one long array."""
    head, tail = b'{"operation_type":"LOCK","operation_device_query":{"all":true},"arguments":{"x":[0', b"]}}"
    return head + b",0" * ((size - len(head) - len(tail)) // 2) + tail


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """The body sent with Transfer-Encoding: chunked, so with no Content-Length to refuse it by."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_huge_body_without_a_key_is_refused_before_it_is_read(tmp_path: Path) -> None:
    controller = Controller(tmp_path)
    anonymous = httpx.Client(base_url=f"http://127.0.0.1:{controller.http_port}", timeout=60)
    try:
        body = huge_json(30 * MiB)
        headers = {"Content-Type": "application/json"}
        before = rss(controller)
        for path in ("/v0/operations/", "/devicecontrol/operations"):
            refused = anonymous.post(path, content=body, headers=headers)
            assert refused.status_code == 401, refused.text
            refused = anonymous.post(path, content=chunks(body), headers=headers)
            assert refused.status_code == 401, refused.text
        grown = rss(controller) - before
        assert grown < 20 * MiB, f"the controller grew by {grown / MiB:.0f} MiB reading bodies it should refuse"
        assert controller.http.get("/v0/operations/").status_code == 200
    finally:
        anonymous.close()
        controller.stop()


def test_headers_past_64_kib_are_refused_431_before_the_controller_holds_them(tmp_path: Path) -> None:
    """Headers have HEADERS_TIMEOUT_S to arrive, but there was no limit on their size: in those 10 s one connection
    without a key made the controller hold (and copy over and over) 60-240 MiB of a header value."""
    controller = Controller(tmp_path)
    try:
        before = rss(controller)
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", controller.http_port)) as stranger:
                stranger.sendall(b"GET /devicecontrol/operations HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ")
                with contextlib.suppress(OSError):  # the controller closes the connection while this still sends
                    for _ in range(64):
                        stranger.sendall(b"A" * (256 * 1024))
                answer = stranger.recv(1024)
            assert answer.startswith(b"HTTP/1.1 431 "), answer
        grown = rss(controller) - before
        assert grown < 16 * MiB, f"the controller grew by {grown / MiB:.0f} MiB holding headers it should refuse"
        # Headers as large as a real client's, a long cookie and all, are served.
        cookie = "c=" + "x" * (32 * 1024)
        assert controller.http.get("/v0/operations/", headers={"Cookie": cookie}).status_code == 200
    finally:
        controller.stop()


def test_a_body_over_the_configured_limit_is_refused_with_413(tmp_path: Path) -> None:
    controller = Controller(tmp_path, None, "--max-body-kb", "64")
    try:
        body = huge_json(100 * 1024)
        headers = {"Content-Type": "application/json"}
        for path in ("/v0/operations/", "/devicecontrol/operations"):
            for content in (body, chunks(body, 4096)):
                refused = controller.http.post(path, content=content, headers=headers)
                assert refused.status_code == 413, refused.text
                assert "65536" in refused.json()["message"], refused.text
        under = controller.http.post("/v0/operations/", content=huge_json(60 * 1024), headers=headers)
        assert under.status_code == 400, under.text  # read and checked: LOCK takes no argument x
        with socket.create_connection(("127.0.0.1", controller.http_port)) as cut_short:
            head = f"POST /v0/operations/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {controller.key}\r\n"
            cut_short.sendall(f"{head}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{".encode())
        assert controller.http.get("/v0/operations/").status_code == 200
        assert controller.process.popen.poll() is None
        controller.stop()  # the cut-short request has ended by then, with or without an error logged
        assert "Exception in ASGI application" not in controller.process.output()
    finally:
        controller.stop()


def test_fragments_added_by_put_after_put_are_held_to_the_body_limit_together(
    tmp_path: Path, mosquitto_url: str
) -> None:
    """Each PUT's body is limited, but its fragments were merged into the operation's: PUT after PUT, one operation
    grew without end (36 MiB after 40 PUTs of 900 KiB), and every read of it loaded the whole."""
    controller = Controller(tmp_path, mosquitto_url, "--max-body-kb", "64")
    agent = Agent(tmp_path, mosquitto_url, "alpha")
    try:
        controller.wait_online("alpha")
        created = post_json(controller, "/devicecontrol/operations", {"deviceId": "alpha", "c8y_Custom": {"p": 1}})
        assert created.status_code == 201, created.text
        one = f"/devicecontrol/operations/{created.json()['id']}"
        filler = "y" * (30 * 1024)
        for name in ("c8y_A", "c8y_B"):
            assert post_json(controller, one, {name: {"v": filler}}, method="PUT").status_code == 200
        refused = post_json(controller, one, {"c8y_C": {"v": filler}}, method="PUT")
        assert refused.status_code == 413, refused.text[:300]
        assert refused.json()["message"] == (
            "the operation's fragments would exceed the 65536-byte limit on a body; remove some (null) first"
        )
        shown = controller.http.get(one).json()
        assert (shown["c8y_A"], shown["c8y_B"], "c8y_C" in shown) == ({"v": filler}, {"v": filler}, False)
        swapped = post_json(controller, one, {"c8y_A": None, "c8y_C": {"v": filler}}, method="PUT")
        assert swapped.status_code == 200, swapped.text
        assert ("c8y_A" in swapped.json(), swapped.json()["c8y_C"]) == (False, {"v": filler})
    finally:
        agent.stop()
        controller.stop()


def test_date_filters_at_the_ends_of_the_calendar_are_a_400_never_a_500(tmp_path: Path) -> None:
    """A moment that is in the calendar as written but not in UTC overflowed converting, a 500 for any key."""
    controller = Controller(tmp_path)
    read_key = tether("keys", "create", "--name", "viewer", "--role", "read", "--db", str(controller.db)).strip()
    try:
        for method, key in (("GET", read_key), ("DELETE", controller.key)):
            for name, value in (("dateFrom", "9999-12-31T23:59:59-01:00"), ("dateTo", "0001-01-01T00:00:00+01:00")):
                answer = httpx.request(
                    method,
                    f"http://127.0.0.1:{controller.http_port}/devicecontrol/operations",
                    params={name: value},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert answer.status_code == 400, (method, name, answer.text)
                assert answer.json()["errors"] == [{"field": name, "message": f"out of range in UTC: {value!r}"}]
        assert "Exception in ASGI application" not in controller.process.output()
    finally:
        controller.stop()


def test_links_are_built_on_the_public_url_never_on_the_host_header(tmp_path: Path, mosquitto_url: str) -> None:
    controller = Controller(tmp_path, mosquitto_url, "--public-url", "https://tether.example.com/")
    agent = Agent(tmp_path, mosquitto_url, "alpha")
    forged = {"Host": "evil.example"}
    try:
        controller.wait_online("alpha")
        for _ in range(3):
            controller.create({"operation_type": "LOCK", "operation_device_query": {"device_id": "alpha"}})
        page = controller.http.get("/v0/operations/", params={"limit": 1, "offset": 1}, headers=forged).json()
        links = [page["content"]["next"], page["content"]["previous"]]
        created = controller.http.post(
            "/devicecontrol/operations", json={"deviceId": "alpha", "c8y_Restart": {}}, headers=forged
        )
        assert created.status_code == 201, created.text
        links += [created.headers["location"], created.json()["self"]]
        collection = controller.http.get(
            "/devicecontrol/operations", params={"pageSize": 1, "currentPage": 2}, headers=forged
        ).json()
        links += [collection["self"], collection["next"], collection["prev"], collection["operations"][0]["self"]]
        for link in links:
            assert link.startswith("https://tether.example.com/"), links
        assert links[0] == "https://tether.example.com/v0/operations/?limit=1&offset=2"
    finally:
        agent.stop()
        controller.stop()


def test_a_deleted_artifact_file_answers_404(tmp_path: Path, mosquitto_url: str) -> None:
    controller = Controller(tmp_path, mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "alpha")
    agent.tools.add("grim", script="printf '\\211PNG\\r\\n\\032\\n' > \"$1\"")
    try:
        controller.wait_online("alpha")
        created = controller.create(
            {"operation_type": "CAPTURE_SCREENSHOT", "operation_device_query": {"device_id": "alpha"}}
        )
        assert controller.wait_finished(created["id"])["state"] == "COMPLETED"
        path = f"/v0/operations/{created['id']}/devices/alpha/artifact"
        assert controller.http.get(path).status_code == 200
        for file in (tmp_path / "artifacts").iterdir():
            file.unlink()
        gone = controller.http.get(path)
        assert gone.status_code == 404, gone.text
        assert "no longer on the controller's disk" in gone.json()["message"]
        assert controller.process.popen.poll() is None
    finally:
        agent.stop()
        controller.stop()


class StalledReader:
    """An event stream client that reads nothing after asking, until told to read to the end."""

    def __init__(self, controller: Controller, operation_id: str) -> None:
        self.socket = socket.create_connection(("127.0.0.1", controller.http_port))
        request = (
            f"GET /v0/operations/{operation_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {controller.key}\r\n\r\n"
        )
        self.socket.sendall(request.encode())

    def read_to_end(self, timeout: float) -> bytes:
        """Everything until the controller closes the stream; AssertionError if it has not within `timeout`."""
        received = bytearray()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                chunk = self.socket.recv(1024 * 1024)
            except TimeoutError:
                break
            if not chunk:
                return bytes(received)
            received += chunk
        raise AssertionError(f"the stream was still open after {timeout} s and {len(received)} bytes")

    def close(self) -> None:
        self.socket.close()


class Reader(threading.Thread):
    """An event stream client that reads as fast as events come."""

    def __init__(self, controller: Controller, operation_id: str) -> None:
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{controller.http_port}/v0/operations/{operation_id}/events"
        self.key = controller.key
        self.events: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self.start()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            with httpx.stream("GET", self.url, headers=headers, timeout=60) as answer:
                for line in answer.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(json.loads(line.removeprefix("data: ")))
        except httpx.HTTPError as err:
            self.error = err


class EventCounter:
    """An integration on one operation's events topic, to know when the controller has sent every event."""

    def __init__(self, broker_url: str, operation_id: str) -> None:
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        self.count = 0
        subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"counter-{time.monotonic_ns()}")
        self._client.on_message = lambda *_: self._counted()
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect(host, int(port))
        self._client.loop_start()
        self._client.subscribe(f"tether/v1/operations/{operation_id}/events", qos=1)
        assert subscribed.wait(5)

    def _counted(self) -> None:
        self.count += 1

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def test_an_event_stream_client_that_stops_reading_is_dropped_and_others_read_on(
    tmp_path: Path, mosquitto_url: str
) -> None:
    controller = Controller(tmp_path, mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "alpha")
    stalled: StalledReader | None = None
    counter: EventCounter | None = None
    try:
        controller.wait_online("alpha")
        agent.stop()  # the LOCKs wait for the device: their operations stay open while events are produced
        wait_for("alpha offline", lambda: not controller.get("/v0/devices/alpha/")["online"])
        flooded, other = (
            controller.create(
                {"operation_type": "LOCK", "operation_device_query": {"device_id": "alpha"}, "delivery_timeout_s": 600}
            )["id"]
            for _ in range(2)
        )
        for started in (flooded, other):
            wait_for(
                "dispatching", lambda path=f"/v0/operations/{started}/": controller.get(path)["state"] == "DISPATCHING"
            )
        counter = EventCounter(mosquitto_url, flooded)
        stalled = StalledReader(controller, flooded)
        reader = Reader(controller, other)
        wait_for("the reader's snapshot", lambda: reader.events)
        before = rss(controller)
        # The controller turns every activity entry into an event: entries written straight into its database make
        # events far faster than a real operation would (100 MiB of them here). Each batch is deleted once sent, so
        # that reading the operation (which loads all of its activity) does not weigh on the controller's memory.
        produced, message = 0, "x" * 64 * 1024
        with sqlite3.connect(controller.db, timeout=10) as db:
            for _ in range(40):
                rows = [(flooded, "PROCESSING", "2026-12-06T00:00:00.000Z", message, "DISPATCHING")] * 40
                first = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM operation_activity").fetchone()[0]
                db.executemany(
                    "INSERT INTO operation_activity (operation_id, operation_state, timestamp, message, state)"
                    " VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                db.commit()
                produced += len(rows)
                wait_for("the controller to send the batch", lambda sent=produced: counter.count >= sent)
                db.execute("DELETE FROM operation_activity WHERE seq >= ?", (first,))
                db.commit()
        grown = rss(controller) - before
        assert grown < 40 * MiB, f"the controller grew by {grown / MiB:.0f} MiB for a client that reads nothing"
        unread = stalled.read_to_end(timeout=10)
        assert unread.count(b"\ndata: ") < produced // 2, "the stalled client was sent everything after all"
        assert "dropped an event stream" in controller.process.output()
        agent.process = agent.start()  # the device comes back and runs the LOCKs: the reader's stream ends
        reader.join(30)
        assert not reader.is_alive()
        assert reader.error is None, reader.error
        assert reader.events[-1]["state"] == "COMPLETED"
        assert controller.process.popen.poll() is None
    finally:
        if stalled is not None:
            stalled.close()
        if counter is not None:
            counter.stop()
        agent.stop()
        controller.stop()

"""`tether op` and `tether devices` against a running controller, as an operator and a script would use them."""

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import BIN, Agent, Controller, Simulator, restart_controller, wait_for
from tests.e2e.test_cli import assert_one_line_error

pytestmark = pytest.mark.e2e


@pytest.fixture
def controller(tmp_path: Path, mosquitto_url: str) -> Iterator[Controller]:
    started = Controller(tmp_path, broker_url=mosquitto_url)
    yield started
    started.stop()


@pytest.fixture
def agents(tmp_path: Path, controller: Controller) -> Iterator[list[Agent]]:
    started = [Agent(tmp_path, controller.broker_url, device_id, "--tag", "lab") for device_id in ("c1", "c2")]
    try:
        controller.wait_online("c1", "c2")
        yield started
    finally:
        for agent in started:
            agent.stop()


def env(controller: Controller, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "TETHER_URL": f"http://127.0.0.1:{controller.http_port}",
        "TETHER_API_KEY": controller.key,
        **extra,
    }


def cli(controller: Controller, *argv: str, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "tether"), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env(controller, **extra),
    )


def cli_json(controller: Controller, *argv: str) -> Any:
    done = cli(controller, *argv, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_create_watch_and_inspect_an_operation(controller: Controller, agents: list[Agent]) -> None:
    done = cli(
        controller,
        "op",
        "create",
        "RUN_SHELL_SCRIPT",
        "--query",
        '{"tags": "lab"}',
        "--args",
        '{"script": "sleep 0.5; echo hello from $(hostname)"}',
        "--watch",
    )

    assert done.returncode == 0, done.stdout + done.stderr
    first, *_, last = done.stdout.splitlines()
    operation_id = first.removeprefix("created operation ")
    assert "SUCCESS: 2 succeeded, 0 failed of 2 device(s)" in done.stdout
    assert last == (
        f"operation {operation_id} COMPLETED: 2 successful, 0 failed, 0 executing, 0 pending, 0 waiting of 2 device(s)"
    )

    shown = cli_json(controller, "op", "show", operation_id)
    assert (shown["state"], shown["devices"]["successful"]) == ("COMPLETED", 2)
    results = cli_json(controller, "op", "devices", operation_id)
    assert sorted((r["device_id"], r["status"], r["result"]["exit_code"]) for r in results) == [
        ("c1", "SUCCESSFUL", 0),
        ("c2", "SUCCESSFUL", 0),
    ]
    assert [o["id"] for o in cli_json(controller, "op", "list")] == [operation_id]

    table = cli(controller, "op", "devices", operation_id).stdout
    assert "c1" in table
    assert "exit 0 hello from" in table
    assert operation_id in cli(controller, "op", "list").stdout
    assert "2 device(s) matched" in cli(controller, "op", "show", operation_id).stdout


def test_devices_list_and_show(controller: Controller, agents: list[Agent]) -> None:
    agents[1].stop()
    wait_for("c2 offline", lambda: not controller.get("/v0/devices/c2/")["online"])

    assert [d["device_id"] for d in cli_json(controller, "devices", "list")] == ["c1", "c2"]
    assert [d["device_id"] for d in cli_json(controller, "devices", "list", "--online")] == ["c1"]
    assert [d["device_id"] for d in cli_json(controller, "devices", "list", "--offline")] == ["c2"]
    shown = cli_json(controller, "devices", "show", "c1")
    assert (shown["platform"], shown["tags"]) == ("linux", ["lab"])
    table = cli(controller, "devices", "list").stdout
    assert "online" in table
    assert "offline" in table
    assert "RUN_SHELL_SCRIPT" in cli(controller, "devices", "show", "c1").stdout


def test_watch_exits_3_when_a_device_fails_and_json_streams_every_event(
    controller: Controller, agents: list[Agent]
) -> None:
    created = cli_json(
        controller,
        "op",
        "create",
        "RUN_SHELL_SCRIPT",
        "--device",
        "c1",
        "--device",
        "c2",
        "--args",
        '{"script": "exit 4"}',
    )
    assert created["operation_device_query"] == {"device_id": {"$in": ["c1", "c2"]}}

    done = cli(controller, "op", "watch", created["id"], "--json")

    assert done.returncode == 3, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[0]["event"] == "snapshot"
    assert (events[-1]["state"], events[-1]["devices"]["failed"]) == ("COMPLETED", 2)
    results = cli_json(controller, "op", "devices", created["id"], "--status", "FAILED")
    assert len(results) == 2


def test_cancel_a_running_operation_and_watch_it_end(controller: Controller, agents: list[Agent]) -> None:
    operation_id = cli(
        controller, "op", "create", "RUN_SHELL_SCRIPT", "--device", "c1", "--args", '{"script": "sleep 60"}'
    ).stdout.strip()
    wait_for("c1 executing", lambda: controller.get(f"/v0/operations/{operation_id}/")["devices"]["executing"])

    cancelled = cli(controller, "op", "cancel", operation_id)
    watched = cli(controller, "op", "watch", operation_id)

    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"cancelling operation {operation_id}"
    assert watched.returncode == 3
    assert watched.stdout.splitlines()[-1].startswith(f"operation {operation_id} FAILED (cancelled by ops): ")
    assert cli(controller, "op", "cancel", operation_id).returncode == 1  # it has ended: 409, one line


def test_a_window_operation_waits_and_says_when_it_opens(controller: Controller, agents: list[Agent]) -> None:
    created = cli_json(
        controller,
        "op",
        "create",
        "LOCK",
        "--device",
        "c1",
        "--window",
        "2030-06-03T02:00:00+05:30/2030-06-10T03:30:00+05:30",
        "--days",
        "Monday, Friday",
        "--time-type",
        "device",
    )

    assert created["schedule_type"] == "WINDOW"
    assert created["schedule_args"]["days"] == ["Monday", "Friday"]
    assert (created["schedule_args"]["window_start_time"], created["schedule_args"]["time_type"]) == (
        "02:00:00",
        "device",
    )
    shown = cli(controller, "op", "show", created["id"]).stdout
    assert "WINDOW 02:00:00-03:30:00 (device time, Monday, Friday)" in shown
    assert "next dispatch" in shown


def test_watch_rides_out_a_controller_restart(tmp_path: Path, controller: Controller, agents: list[Agent]) -> None:
    operation_id = cli(
        controller, "op", "create", "RUN_SHELL_SCRIPT", "--query", '{"tags": "lab"}', "--args", '{"script": "sleep 4"}'
    ).stdout.strip()
    out, errors = tmp_path / "watch.out", tmp_path / "watch.err"
    with out.open("w") as stdout, errors.open("w") as stderr:
        watch = subprocess.Popen(
            [str(BIN / "tether"), "op", "watch", operation_id], stdout=stdout, stderr=stderr, env=env(controller)
        )
        try:
            wait_for("the devices to start", lambda: "PROCESSING" in out.read_text())
            controller.process.kill()
            time.sleep(1)
            restart_controller(controller)
            exit_code = watch.wait(60)
        finally:
            watch.kill()
            watch.wait()

    printed, complaints = out.read_text().splitlines(), errors.read_text().splitlines()
    assert exit_code == 0, printed + complaints
    assert complaints
    assert all(line.endswith("; reconnecting") for line in complaints)
    assert "reconnecting" not in out.read_text()
    activity = [line for line in printed if line[:4].isdigit()]  # `2026-12-01 10:00:00 PROCESSING: ...`
    assert len(activity) == len(set(activity)), printed  # the reconnected stream's snapshot repeats none
    assert sum(" PROCESSING" in line for line in activity) == 1
    assert printed[-1].startswith(f"operation {operation_id} COMPLETED: 2 successful")


def test_tether_op_watch_shows_a_100_device_operation_finish(tmp_path: Path, controller: Controller) -> None:
    fleet = Simulator(tmp_path, controller.broker_url, 100, "--tag", "sim", "--latency-ms", "500")
    wait_for("100 devices", lambda: len(cli_json(controller, "devices", "list", "--online")) == 100)
    started = time.monotonic()
    done = cli(controller, "op", "create", "LOCK", "--query", '{"tags": "sim"}', "--watch")
    elapsed = time.monotonic() - started
    counts = fleet.stop()

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 100 succeeded, 0 failed of 100 device(s)" in done.stdout
    assert done.stdout.splitlines()[-1].endswith(
        "COMPLETED: 100 successful, 0 failed, 0 executing, 0 pending, 0 waiting of 100 device(s)"
    )
    assert sorted(counts["runs_per_device"].values()) == [1] * 100  # each device ran its command exactly once
    print(f"100-device LOCK from `tether op create --watch` to its summary: {elapsed:.2f} s")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["op", "show", "no-such-id"], ["404", "no operation with id 'no-such-id'"]),
        (["op", "create", "LOCK", "--query", "{}"], ["400", "operation_device_query is empty"]),
        (["op", "create", "LOCK", "--query", '{"all": true}', "--args", '{"x": 1}'], ["400", "x"]),
        (
            ["op", "create", "LOCK", "--query", '{"all": true}', "--window", "2030-01-01T00:00:00/2030-01-02T00:00Z"],
            ["400", "start_datetime"],
        ),
    ],
)
def test_a_refused_request_is_one_line_and_exit_1(
    controller: Controller, argv: list[str], fragments: list[str]
) -> None:
    done = cli(controller, *argv)
    assert done.returncode == 1
    assert_one_line_error(done, *fragments)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["op", "create", "LOCK"], "--query or --device"),
        (["op", "create", "LOCK", "--query", "{nope"], "not valid JSON"),
        (["op", "create", "LOCK", "--query", "[1]"], "must be a JSON object"),
        (["op", "create", "LOCK", "--device", "a", "--window", "tomorrow"], "START/END"),
        (["op", "create", "LOCK", "--device", "a", "--days", "Monday"], "go with --window"),
        (["op", "create", "NOT_A_TYPE", "--device", "a"], "NOT_A_TYPE"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(controller: Controller, argv: list[str], fragment: str) -> None:
    done = cli(controller, *argv)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert fragment in done.stderr


def test_a_wrong_key_and_an_unreachable_controller_are_one_line_and_exit_1(controller: Controller) -> None:
    assert_one_line_error(cli(controller, "op", "list", TETHER_API_KEY="wrong"), "401", "TETHER_API_KEY")
    assert_one_line_error(cli(controller, "devices", "list", "--api-key", ""), "401", "missing API key")
    unreachable = cli(controller, "op", "watch", "x", TETHER_URL="http://127.0.0.1:1")
    assert_one_line_error(unreachable, "cannot reach the controller at http://127.0.0.1:1", "TETHER_URL")


def test_an_operation_that_matches_no_device_exits_3(controller: Controller) -> None:
    done = cli(controller, "op", "create", "LOCK", "--query", '{"tags": "nowhere"}')

    operation_id = done.stdout.strip()
    assert done.returncode == 3, done.stderr
    assert done.stderr == f"tether: error: operation {operation_id} FAILED: no device matched operation_device_query\n"
    assert controller.get(f"/v0/operations/{operation_id}/")["state"] == "FAILED"


def test_a_device_busy_with_an_earlier_operation_says_which(controller: Controller, agents: list[Agent]) -> None:
    busy = cli(controller, "op", "create", "RUN_SHELL_SCRIPT", "--device", "c1", "--args", '{"script": "sleep 8"}')
    earlier = busy.stdout.strip()
    wait_for("c1 busy", lambda: controller.get(f"/v0/operations/{earlier}/")["devices"]["executing"])
    later = cli(
        controller,
        "op",
        "create",
        "RUN_SHELL_SCRIPT",
        "--device",
        "c1",
        "--device",
        "c2",
        "--args",
        '{"script": "true"}',
    ).stdout.strip()

    def listing() -> dict[str, Any]:
        return {d["device_id"]: d for d in controller.get(f"/v0/operations/{later}/devices/")["results"]}

    queued = wait_for("c1 dispatched", lambda: listing()["c1"]["dispatch_state"] == "dispatched" and listing())
    assert (queued["c1"]["status"], queued["c1"]["queued_behind"]) == ("PENDING", earlier)
    assert queued["c2"]["queued_behind"] is None  # nothing earlier on c2
    table = cli(controller, "op", "devices", later).stdout
    assert f"queued behind operation {earlier}" in next(line for line in table.splitlines() if "c1" in line)
    watched = cli(controller, "op", "watch", later)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert f"c1 queued behind operation {earlier}, not finished there yet" in watched.stdout.splitlines()
    finished = listing()
    assert [finished[d]["queued_behind"] for d in ("c1", "c2")] == [None, None]


def test_op_devices_in_a_pipe_cuts_no_cell(controller: Controller, agents: list[Agent]) -> None:
    line = "x" * 150 + " the end"
    created = cli_json(
        controller,
        "op",
        "create",
        "RUN_SHELL_SCRIPT",
        "--device",
        "c1",
        "--args",
        json.dumps({"script": f"echo '{line}'"}),
    )
    assert cli(controller, "op", "watch", created["id"]).returncode == 0

    rows = cli(controller, "op", "devices", created["id"]).stdout.splitlines()
    assert len(rows) == 2, rows  # the header and c1, each on one line
    assert rows[1].split()[0] == "c1"
    assert rows[1].rstrip().endswith(f"exit 0 {line}")

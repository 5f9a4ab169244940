"""A full disk under the controller: a real tmpfs, filled with a ballast file until writes fail.

The controller must stay up, refuse new operations with 507 rather than half-store them, keep every status a device
sends (by not acknowledging it until it is stored), say so on /readyz, and carry on once space returns.
"""

import errno
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Agent, Controller, wait_for

pytestmark = pytest.mark.e2e

DEVICE = "disk-1"
DISK_SIZE = "8m"
STORE_ATTEMPTS_S = 3.0
"""Time the controller has to try (and fail) to store the statuses it receives while the disk is full."""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory on a tmpfs of its own, small enough to fill; mounting needs root, which CI has."""
    directory = tmp_path / "disk"
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs to fill: {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(directory)], check=True)


def fill(directory: Path) -> Path:
    """Write a ballast file until the file system has no byte left; returns it."""
    ballast = directory / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 1 << 12, 1):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return ballast


def script(marker: str, runs: Path) -> str:
    return f"echo {marker} >> {runs}"


def create_v0(controller: Controller, marker: str, runs: Path, **extra: Any) -> httpx.Response:
    body = {
        "operation_type": "RUN_SHELL_SCRIPT",
        "operation_device_query": {"device_id": DEVICE},
        "arguments": {"script": script(marker, runs)},
        **extra,
    }
    return controller.http.post("/v0/operations/", json=body)


def window_opening_in(seconds: int) -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    end = start + timedelta(minutes=10)
    return {
        "schedule_type": "WINDOW",
        "schedule_args": {"start_datetime": start.isoformat(), "end_datetime": end.isoformat()},
    }


def create_devicecontrol(controller: Controller, marker: str, runs: Path) -> httpx.Response:
    body = {"deviceId": DEVICE, "c8y_Command": {"text": script(marker, runs)}}
    return controller.http.post("/devicecontrol/operations", json=body)


def ran(runs: Path) -> Counter[str]:
    return Counter(runs.read_text().split()) if runs.exists() else Counter()


def operations(controller: Controller) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = controller.get("/v0/operations/", limit=1000)["results"]
    return found


def test_a_full_disk_refuses_new_operations_with_507_keeps_every_status_and_recovers_when_space_returns(
    tmp_path: Path, small_disk: Path, mosquitto_url: str
) -> None:
    runs = tmp_path / "runs.txt"
    agent = Agent(tmp_path, mosquitto_url, DEVICE)
    controller = Controller(tmp_path, mosquitto_url, data_dir=small_disk)
    try:
        controller.wait_online(DEVICE)
        agent.stop()
        # Commands out to the broker before the disk fills: the agent runs them, and reports, while it is full.
        before = [f"before-{i}" for i in range(3)]
        for marker in before:
            assert create_v0(controller, marker, runs).status_code == 201
        wait_for(
            "the commands to reach the broker",
            lambda: all(
                o["operation_stats"]["device_operation_statuses_count"]["dispatched_device_count"] == 1
                for o in operations(controller)
            ),
        )

        # One more whose window opens while the disk is full: dispatching it must wait for room, not end the controller.
        assert create_v0(controller, "window", runs, **window_opening_in(2)).status_code == 201
        ballast = fill(small_disk)
        answers = {}
        for i in range(30):
            marker = f"during-{i}"
            create = create_v0 if i % 2 else create_devicecontrol
            try:
                answers[marker] = create(controller, marker, runs)
            except httpx.TransportError as err:
                raise AssertionError(f"POST {i} got no answer ({err}); before it: {describe(answers)}") from err
        statuses = Counter(answer.status_code for answer in answers.values())
        assert set(statuses) <= {201, 507}, describe(answers)
        assert statuses[507] >= 20, statuses
        for answer in answers.values():
            if answer.status_code == 507:
                error = answer.json()
                assert set(error) == {"message", "errors"}, error
                assert error["errors"] == [], error
                assert "disk" in error["message"], error
                assert "\n" not in error["message"], error
        ready = controller.http.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "full" in ready.json()["status"], ready.text

        agent.process = agent.start()
        wait_for("the agent to run the commands sent before the disk filled", lambda: ran(runs) >= Counter(before))
        # Their statuses reach the controller, which cannot store them: it keeps them on the broker, and stays up.
        wait_for("the agent to report the commands' final statuses", lambda: agent_reported(agent, len(before)))
        time.sleep(STORE_ATTEMPTS_S)
        assert controller.process.popen.poll() is None, controller.process.output()
        assert controller.http.get("/healthz").status_code == 200
        assert {o["state"] for o in operations(controller)} <= {"DISPATCHING", "CREATED", "RESOLVED"}

        ballast.unlink()
        wait_for("/readyz to recover", lambda: controller.http.get("/readyz").status_code == 200)
        after = create_v0(controller, "after", runs)
        assert after.status_code == 201, after.text

        stored = [*before, "window", *(m for m, a in answers.items() if a.status_code == 201), "after"]
        wait_for(
            "every stored operation to complete",
            lambda: (
                len(found := operations(controller)) == len(stored) and all(o["state"] == "COMPLETED" for o in found)
            ),
        )
        # Exactly the operations answered 201 exist and ran, each once; those answered 507 never run.
        assert ran(runs) == Counter(stored)
        log = controller.process.output()
        assert "Traceback" not in log, log
        assert sum("disk is full" in line for line in log.splitlines()) == 1, log
        assert sum("space is back" in line for line in log.splitlines()) == 1, log
        assert log.count(" resolved to 1 device(s)") == len(stored), log  # none claimed for what a 507 undid
    finally:
        agent.stop()
        controller.stop()


def describe(answers: dict[str, httpx.Response]) -> dict[str, tuple[int, str]]:
    return {marker: (answer.status_code, answer.text[:200]) for marker, answer in answers.items()}


def agent_reported(agent: Agent, commands: int) -> bool:
    """The agent has published the final status of `commands` commands (its log says so)."""
    return agent.process.output().count(" SUCCESSFUL") >= commands

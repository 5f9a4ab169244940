"""The running controller keeps the contract it publishes: schemathesis drives /openapi.json against real processes.

`st run` generates requests for every operation of both APIs (examples, boundary values, random and schema-breaking
data, and stateful sequences that follow the links it infers), and checks each answer: no 5xx, only documented
statuses, content types, headers and bodies, schema-breaking input refused, no endpoint served without a key, an
exact `Allow` on a 405. A real agent is registered, so creates reach the dispatcher and the device; the hooks in
contract_hooks.py keep anything but recording fakes and refusals from running on this machine.
"""

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.contract_hooks import HARMLESS
from tests.e2e.harness import BIN, Agent, Controller

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
DEVICE = "1234"
"""The device of the examples in /openapi.json (seed 004's), so the examples phase reaches a real agent."""
RUN_TIMEOUT_S = 90.0


def test_the_running_controller_keeps_the_contract_it_publishes(tmp_path: Path) -> None:
    controller = Controller(tmp_path)
    agent = Agent(tmp_path, controller.broker_url, DEVICE, "--reboot-grace", "1")
    try:
        controller.wait_online(DEVICE)
        output = schemathesis(controller, tmp_path)
        print(output)  # shown with pytest -s or -rP: what each phase generated
        # What the fuzzer created for the real device was only ever harmless: the hooks' promise, checked.
        reached = {operation for operation, devices in operations(controller) if DEVICE in devices}
        assert reached, "no fuzzed create reached the device: the test no longer exercises dispatch"
        assert reached <= HARMLESS, reached
    finally:
        agent.stop()
        controller.stop()


def schemathesis(controller: Controller, work: Path) -> str:
    """Run `st run` against the controller with its admin key; fail the test with its report unless it passes."""
    argv = [
        str(BIN / "st"),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"http://127.0.0.1:{controller.http_port}/openapi.json",
        "--header",
        f"Authorization: Bearer {controller.key}",
        "--workers",
        "1",  # Hypothesis's lambda-source cache is not thread-safe; one worker also keeps the run deterministic
    ]
    try:
        done = subprocess.run(
            argv,
            cwd=work,  # schemathesis may leave caches or reports in its working directory: not in the repository
            env={**os.environ, "PYTHONPATH": str(ROOT)},  # so that `hooks` in the config imports contract_hooks
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"schemathesis ran over {RUN_TIMEOUT_S:.0f} s:\n{err.stdout!s}\n{err.stderr!s}")
    assert done.returncode == 0, f"schemathesis found the contract broken:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def operations(controller: Controller) -> list[tuple[str, set[str]]]:
    """Every /v0 operation's type and the devices it resolved to, oldest pages included."""
    found, offset = [], 0
    while True:
        page = controller.get("/v0/operations/", limit=1000, offset=offset)
        found += [(o["operation"], set(controller.device_results(o["id"]))) for o in page["results"]]
        offset += 1000
        if offset >= page["count"]:
            return found

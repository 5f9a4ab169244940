"""The agent's policy on a real `tetherd`: denied types run nothing, scripts run as an unprivileged user with a
scrubbed environment and within the device's limits; `tetherd config check` shows the effective settings."""

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Agent, Controller, run_cli

SECRET = "s3cr3t-in-the-agents-environment"


@pytest.fixture
def confined(tmp_path: Path, mosquitto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Controller, Agent]]:
    """The agent `kiosk` denying LOCK, running scripts as `nobody` with limits, with a secret in its environment."""
    if os.geteuid() != 0:
        pytest.skip("switching the scripts' user needs root")
    monkeypatch.setenv("TETHER_TEST_SECRET", SECRET)
    # The state dir must be traversable by the scripts' user: pytest's own temporary directories are not.
    state = Path(tempfile.mkdtemp(prefix="tetherd-state-"))
    state.chmod(0o711)
    config = tmp_path / "agent.toml"
    config.write_text(
        'denied_types = ["LOCK"]\n'
        'run_scripts_as = "nobody"\n'
        'script_environment = { SITE = "lobby" }\n'
        "script_max_timeout_s = 600\n"
    )
    controller = Controller(tmp_path, broker_url=mosquitto_url)
    agent = Agent(tmp_path, mosquitto_url, "kiosk", "--config", str(config), "--state-dir", str(state / "tetherd"))
    try:
        controller.wait_online("kiosk")
        yield controller, agent
    finally:
        agent.stop()
        controller.stop()
        subprocess.run(["rm", "-rf", str(state)], check=False)


def run(controller: Controller, operation_type: str, **arguments: Any) -> dict[str, Any]:
    created = controller.create(
        {"operation_type": operation_type, "operation_device_query": {"device_id": "kiosk"}, "arguments": arguments}
    )
    controller.wait_finished(created["id"])
    return controller.device_results(created["id"])["kiosk"]


def test_a_denied_type_fails_with_the_policy_and_is_not_announced(confined: tuple[Controller, Agent]) -> None:
    controller, agent = confined
    assert "LOCK" not in controller.get("/v0/devices/kiosk/")["capabilities"]
    result = run(controller, "LOCK")
    assert result["status"] == "FAILED"
    # Refused at dispatch, as it was never announced: the controller cannot tell a denied type from a missing one.
    assert result["failure_reason"] == "LOCK is not supported on linux or is denied by the device's agent config"
    assert agent.locks() == []


def test_scripts_run_as_the_configured_user_with_a_scrubbed_environment(confined: tuple[Controller, Agent]) -> None:
    controller, _ = confined
    result = run(controller, "RUN_SHELL_SCRIPT", script='id -un; pwd; env | sort; echo "site=$SITE"')
    assert result["status"] == "SUCCESSFUL", result
    output = result["result"]["stdout"]
    lines = output.splitlines()
    assert lines[0] == "nobody"
    assert "/work/" in lines[1]
    assert SECRET not in output
    assert "TETHER_TEST_SECRET" not in output
    assert "USER=nobody" in lines
    assert "site=lobby" in lines


def test_a_script_asking_for_more_than_the_device_allows_runs_nothing(confined: tuple[Controller, Agent]) -> None:
    controller, _ = confined
    result = run(controller, "RUN_SHELL_SCRIPT", script="echo ran", timeout_s=3600)
    assert result["status"] == "FAILED"
    assert result["failure_reason"] == "timeout_s 3600 is over this device's limit of 600 (script_max_timeout_s)"


def test_config_check_prints_the_effective_settings_without_secrets(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        'broker = "mqtt://kiosk:hunter2@broker.example:1883"\ndevice_id = "kiosk"\n'
        f'state_dir = "{tmp_path}"\ndenied_types = ["WIPE"]\n'
    )
    done = run_cli("tetherd", "config", "check", "--config", str(config))
    assert done.returncode == 0, done.stderr
    effective = json.loads(done.stdout)
    assert effective["broker"] == ["mqtt://kiosk@broker.example:1883"]
    assert effective["denied_types"] == ["WIPE"]
    assert effective["reboot_grace_s"] == 300.0  # defaults included
    assert "hunter2" not in done.stdout


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('denied_types = ["EXPLODE"]', "denied_types.0: Input should be"),
        ('run_scripts_as = "no-such-user-here"', "run_scripts_as: Value error, no user named 'no-such-user-here'"),
        ('script_environment = { "BAD-NAME" = "x" }', "'BAD-NAME' is not an environment variable name"),
        ("script_max_timeout_s = 0", "script_max_timeout_s: Input should be greater than 0"),
    ],
)
def test_config_check_refuses_a_bad_setting_in_one_line(tmp_path: Path, line: str, problem: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'broker = "mqtt://broker:1883"\ndevice_id = "kiosk"\nstate_dir = "{tmp_path}"\n{line}\n')
    done = run_cli("tetherd", "config", "check", "--config", str(config))
    assert done.returncode == 78
    assert done.stdout == ""
    assert done.stderr.startswith(f"tetherd: error: {config}: ")
    assert problem in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

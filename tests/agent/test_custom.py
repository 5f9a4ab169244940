"""RUN_CUSTOM_ACTION and CONVERGE run the operator's configured argv, with parameters as whole arguments."""

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.config import CustomAction, load_settings
from agent.errors import ConfigError, HandlerError, InvalidArguments, ToolFailed
from agent.handlers.base import HandlerContext
from agent.handlers.custom import ConvergeHandler, CustomActionHandler, WipeHandler
from agent.platforms.linux import LinuxPlatform
from shared.arguments import validate_arguments
from shared.messages import Command, utc_now
from shared.operations import OperationType
from tests.fakes import FakeTools

ACTIONS = {
    "restart-kiosk": CustomAction(command=["systemctl", "restart", "{unit}.service"], parameters=["unit"]),
    "greet": CustomAction(command=["greeter", "--name", "{name}", "--loud={loud}"], parameters=["name", "loud"]),
    "ansible": CustomAction(command=["ansible-pull", "-U", "https://git.example/site.git"], timeout_s=600),
    "provision": CustomAction(command=["provisioner"]),
}


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    tools = FakeTools.on_path(tmp_path / "bin", monkeypatch)
    for name in ("greeter", "ansible-pull", "provisioner"):
        tools.add(name, stdout=f"{name} done\n")
    return tools


class Inventory:
    """Records each inventory update; `connected` says whether the announcement reaches the broker now."""

    def __init__(self, connected: bool = True) -> None:
        self.updates: list[Mapping[str, Any]] = []
        self.connected = connected

    async def __call__(self, patch: Mapping[str, Any]) -> bool:
        self.updates.append(patch)
        return self.connected


def context(tmp_path: Path, operation_type: OperationType, inventory: Inventory | None = None) -> HandlerContext:
    command = Command(
        command_id="c1", operation_id="op", device_id="d1", operation_type=operation_type, issued_at=utc_now()
    )
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    platform = LinuxPlatform(boot_id_path=tmp_path / "boot_id")
    return HandlerContext(command, platform, work, update_inventory=inventory or Inventory())


def custom(tmp_path: Path, **arguments: Any) -> dict[str, Any]:
    parsed = validate_arguments(OperationType.RUN_CUSTOM_ACTION, arguments)
    handler = CustomActionHandler(ACTIONS)
    return asyncio.run(handler.run(parsed, context(tmp_path, OperationType.RUN_CUSTOM_ACTION)))


def test_parameters_fill_whole_arguments(tools: FakeTools, tmp_path: Path) -> None:
    result = custom(tmp_path, action="restart-kiosk", parameters={"unit": "kiosk; rm -rf /"})
    assert tools.calls("systemctl") == [["systemctl", "restart", "kiosk; rm -rf /.service"]]
    assert result["action"] == "restart-kiosk"
    assert result["exit_code"] == 0


def test_values_are_stringified(tools: FakeTools, tmp_path: Path) -> None:
    result = custom(tmp_path, action="greet", parameters={"name": "Ada", "loud": True})
    assert tools.calls("greeter") == [["greeter", "--name", "Ada", "--loud=true"]]
    assert result["stdout"] == "greeter done\n"


def test_unknown_action_names_the_known_ones(tools: FakeTools, tmp_path: Path) -> None:
    with pytest.raises(HandlerError, match=r"^unknown custom action 'nope'; known actions: ansible, greet, provision"):
        custom(tmp_path, action="nope")


def test_missing_and_unknown_parameters(tools: FakeTools, tmp_path: Path) -> None:
    with pytest.raises(InvalidArguments, match="needs the parameter 'unit'"):
        custom(tmp_path, action="restart-kiosk")
    with pytest.raises(InvalidArguments, match="takes no parameter force; it takes: unit"):
        custom(tmp_path, action="restart-kiosk", parameters={"unit": "k", "force": True})
    assert tools.calls("systemctl") == []


def test_non_zero_exit_fails_with_output(tools: FakeTools, tmp_path: Path) -> None:
    tools.add("greeter", exit_code=4, stderr="no such person\n")
    with pytest.raises(ToolFailed, match="custom action 'greet' exited 4") as failure:
        custom(tmp_path, action="greet", parameters={"name": "x", "loud": False})
    assert failure.value.result is not None
    assert failure.value.result["stderr"] == "no such person\n"


def test_converge_runs_its_actions_in_order_and_reannounces(tools: FakeTools, tmp_path: Path) -> None:
    inventory = Inventory()
    handler = ConvergeHandler(ACTIONS, ["ansible"], "provision")
    parsed = validate_arguments(OperationType.CONVERGE, {"converge_with_provision": True})
    result = asyncio.run(handler.run(parsed, context(tmp_path, OperationType.CONVERGE, inventory)))
    assert [call[0] for call in tools.calls()] == ["provisioner", "ansible-pull"]
    assert [step["action"] for step in result["actions"]] == ["provision", "ansible"]
    assert result["announced"] is True
    assert inventory.updates == [{}]


def test_converge_says_when_its_announcement_waits_for_the_next_connect(tools: FakeTools, tmp_path: Path) -> None:
    inventory = Inventory(connected=False)
    handler = ConvergeHandler(ACTIONS, ["ansible"], None)
    parsed = validate_arguments(OperationType.CONVERGE, {})
    result = asyncio.run(handler.run(parsed, context(tmp_path, OperationType.CONVERGE, inventory)))
    assert tools.calls() == [["ansible-pull", "-U", "https://git.example/site.git"]]
    assert result["announced"] is False
    assert inventory.updates == [{}]


def test_converge_with_no_converge_actions_fails_having_done_nothing(tools: FakeTools, tmp_path: Path) -> None:
    inventory = Inventory()
    handler = ConvergeHandler(ACTIONS, [], "provision")
    parsed = validate_arguments(OperationType.CONVERGE, {})
    with pytest.raises(HandlerError) as failure:
        asyncio.run(handler.run(parsed, context(tmp_path, OperationType.CONVERGE, inventory)))
    assert str(failure.value) == "nothing to converge: the agent config lists no converge_actions"
    assert (tools.calls(), inventory.updates) == ([], [])


def test_converge_with_no_converge_actions_runs_the_provision_action_when_asked(
    tools: FakeTools, tmp_path: Path
) -> None:
    handler = ConvergeHandler(ACTIONS, [], "provision")
    parsed = validate_arguments(OperationType.CONVERGE, {"converge_with_provision": True})
    result = asyncio.run(handler.run(parsed, context(tmp_path, OperationType.CONVERGE)))
    assert tools.calls() == [["provisioner"]]
    assert [step["action"] for step in result["actions"]] == ["provision"]
    assert result["announced"] is True


def test_converge_with_provision_needs_a_provision_action(tools: FakeTools, tmp_path: Path) -> None:
    handler = ConvergeHandler(ACTIONS, [], None)
    parsed = validate_arguments(OperationType.CONVERGE, {"converge_with_provision": True})
    with pytest.raises(HandlerError, match="provision_action"):
        asyncio.run(handler.run(parsed, context(tmp_path, OperationType.CONVERGE)))


def test_config_refuses_converge_actions_that_do_not_exist(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        'broker = "mqtt://127.0.0.1:1"\ndevice_id = "d1"\nstate_dir = "/tmp/x"\nconverge_actions = ["ghost"]\n'
    )
    with pytest.raises(ConfigError, match="no custom action named ghost"):
        load_settings(config, {})
    config.write_text(
        'broker = "mqtt://127.0.0.1:1"\ndevice_id = "d1"\nstate_dir = "/tmp/x"\nconverge_actions = ["a"]\n'
        '[custom_actions.a]\ncommand = ["true"]\n'
    )
    assert load_settings(config, {}).custom_actions["a"].command == ["true"]


def test_wipe_runs_the_configured_action_or_says_how_to_configure_one(tools: FakeTools, tmp_path: Path) -> None:
    tools.add("restore-image", stdout="restored\n")
    actions = {**ACTIONS, "factory-reset": CustomAction(command=["restore-image", "--all"])}
    result = asyncio.run(WipeHandler(actions, "factory-reset").run(None, context(tmp_path, OperationType.WIPE)))
    assert tools.calls("restore-image") == [["restore-image", "--all"]]
    assert result["action"] == "factory-reset"
    assert WipeHandler.destructive is True
    with pytest.raises(HandlerError, match="WIPE needs wipe_action in the agent config"):
        asyncio.run(WipeHandler(actions, None).run(None, context(tmp_path, OperationType.WIPE)))

"""APPLY_APP_CONFIG on Linux: the app's JSON file written atomically and deterministically, its unit restarted only
when it runs, and every argument that could reach outside the app's file refused."""

import asyncio
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.errors import HandlerError
from agent.handlers.apps import AppConfigHandler
from agent.handlers.base import HandlerContext
from agent.platforms import LinuxPlatform
from shared.arguments import ArgumentsError, validate_arguments
from shared.arguments.app_config import MAX_CONFIG_DEPTH, MAX_CONFIG_KEYS, AppConfigArguments
from shared.messages import Command
from shared.operations import OperationType
from tests.fakes import FakeTools

STATEFUL_SYSTEMCTL = """state="${0%/*}/unit-state"
case "$1" in
  is-active) s=inactive; [ -e "$state" ] && read -r s < "$state"; echo "$s"; [ "$s" = active ] ;;
  try-restart) [ -e "${0%/*}/after-restart" ] && cp "${0%/*}/after-restart" "$state"; exit 0 ;;
esac"""
"""systemctl with one unit, whose state is the file `unit-state` beside it (inactive without it); try-restart moves
it to the state in `after-restart`, if that file exists."""


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    tools = FakeTools.on_path(tmp_path / "bin", monkeypatch)
    tools.add("systemctl", script=STATEFUL_SYSTEMCTL)
    return tools


def unit_states(tools: FakeTools, now: str, after_restart: str | None = None) -> None:
    (tools.directory / "unit-state").write_text(now + "\n")
    if after_restart is not None:
        (tools.directory / "after-restart").write_text(after_restart + "\n")


def apply(tmp_path: Path, arguments: dict[str, Any]) -> dict[str, Any]:
    platform = LinuxPlatform(boot_id_path=tmp_path / "boot_id", tool_timeout=5, etc_dir=tmp_path / "etc")
    command = Command(
        command_id="c1",
        operation_id="op-1",
        device_id="d1",
        operation_type=OperationType.APPLY_APP_CONFIG,
        arguments=arguments,
        issued_at=datetime.now(UTC),
    )
    context = HandlerContext(command=command, platform=platform, work_dir=tmp_path / "work")
    parsed = validate_arguments(OperationType.APPLY_APP_CONFIG, arguments)
    assert isinstance(parsed, AppConfigArguments)
    return asyncio.run(AppConfigHandler().run(parsed, context))


CONFIG = {"url": "https://kiosk.example/start", "zoom": 1.25, "allowed": ["a", "b"], "debug": False, "proxy": None}
DOCUMENT = (
    b'{\n  "allowed": [\n    "a",\n    "b"\n  ],\n  "debug": false,\n  "proxy": null,\n'
    b'  "url": "https://kiosk.example/start",\n  "zoom": 1.25\n}\n'
)


def test_the_file_is_written_whole_and_the_same_config_gives_the_same_bytes(tools: FakeTools, tmp_path: Path) -> None:
    path = tmp_path / "etc" / "tether" / "app-config" / "kiosk.json"

    first = apply(tmp_path, {"app": "kiosk", "config": CONFIG})
    again = apply(tmp_path, {"app": "kiosk", "config": dict(reversed(CONFIG.items()))})

    assert path.read_bytes() == DOCUMENT
    assert json.loads(DOCUMENT) == CONFIG
    assert os.stat(path).st_mode & 0o777 == 0o644
    expected = {
        "app": "kiosk",
        "path": str(path),
        "sha256": hashlib.sha256(DOCUMENT).hexdigest(),
        "size_bytes": len(DOCUMENT),
        "changed": True,
    }
    assert first == expected
    assert again == {**expected, "changed": False}
    assert tools.calls() == []
    assert os.listdir(path.parent) == ["kiosk.json"]  # no temporary file left beside it


def test_a_running_unit_is_restarted_and_read_back(tools: FakeTools, tmp_path: Path) -> None:
    unit_states(tools, "active", after_restart="active")

    result = apply(tmp_path, {"app": "kiosk", "config": {"zoom": 2}, "restart_unit": "kiosk-browser.service"})

    assert tools.calls() == [
        ["systemctl", "is-active", "kiosk-browser.service"],
        ["systemctl", "try-restart", "kiosk-browser.service"],
        ["systemctl", "is-active", "kiosk-browser.service"],
    ]
    assert result["restart_unit"] == "kiosk-browser.service"
    assert (result["restarted"], result["unit_state"]) == (True, "active")


def test_a_stopped_unit_is_left_stopped_and_says_so(tools: FakeTools, tmp_path: Path) -> None:
    result = apply(tmp_path, {"app": "kiosk", "config": {"zoom": 2}, "restart_unit": "kiosk@1.service"})

    assert (result["restarted"], result["unit_state"]) == (False, "inactive")
    assert [argv[1] for argv in tools.calls()] == ["is-active", "try-restart", "is-active"]


def test_a_unit_that_fails_after_its_restart_fails_the_command(tools: FakeTools, tmp_path: Path) -> None:
    unit_states(tools, "active", after_restart="failed")

    with pytest.raises(HandlerError) as caught:
        apply(tmp_path, {"app": "kiosk", "config": {"zoom": 2}, "restart_unit": "kiosk.service"})

    path = tmp_path / "etc" / "tether" / "app-config" / "kiosk.json"
    assert str(caught.value) == (
        f"wrote {path} and restarted kiosk.service, but it is failed now: see journalctl -u kiosk.service"
    )
    assert caught.value.result is not None
    assert (caught.value.result["restarted"], caught.value.result["unit_state"]) == (True, "failed")
    assert path.exists()


def test_a_unit_systemctl_cannot_restart_fails_saying_the_file_was_written(tools: FakeTools, tmp_path: Path) -> None:
    tools.add("systemctl", script='[ "$1" = try-restart ] && { echo "Unit nope.service not found." >&2; exit 5; }')

    with pytest.raises(HandlerError) as caught:
        apply(tmp_path, {"app": "kiosk", "config": {}, "restart_unit": "nope.service"})

    path = tmp_path / "etc" / "tether" / "app-config" / "kiosk.json"
    assert str(caught.value) == (
        f"wrote {path}, but could not restart nope.service: systemctl exited 5: Unit nope.service not found."
    )
    assert caught.value.result is not None
    assert caught.value.result["restarted"] is False
    assert path.read_bytes() == b"{}\n"


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"app": "../passwd", "config": {}}, "app"),
        ({"app": "a..b", "config": {}}, "app"),
        ({"app": "..", "config": {}}, "app"),
        ({"app": "-rf", "config": {}}, "app"),
        ({"app": ".hidden", "config": {}}, "app"),
        ({"app": "a/b", "config": {}}, "app"),
        ({"app": "kiosk\n", "config": {}}, "app"),
        ({"app": "", "config": {}}, "app"),
        ({"app": "a" * 129, "config": {}}, "app"),
        ({"app": "kiosk", "config": []}, "config"),
        ({"app": "kiosk", "config": "{}"}, "config"),
        ({"app": "kiosk", "config": {"x": float("nan")}}, "config"),
        ({"app": "kiosk", "config": {"x": float("inf")}}, "config"),
        ({"app": "kiosk", "config": {"x": nested(MAX_CONFIG_DEPTH)}}, "config"),
        ({"app": "kiosk", "config": {str(i): i for i in range(MAX_CONFIG_KEYS + 1)}}, "config"),
        ({"app": "kiosk", "config": {"k" * 257: 1}}, "config"),
        ({"app": "kiosk", "config": {}, "restart_unit": "--now"}, "restart_unit"),
        ({"app": "kiosk", "config": {}, "restart_unit": "-kiosk.service"}, "restart_unit"),
        ({"app": "kiosk", "config": {}, "restart_unit": "kiosk"}, "restart_unit"),
        ({"app": "kiosk", "config": {}, "restart_unit": "kiosk.timer"}, "restart_unit"),
        ({"app": "kiosk", "config": {}, "restart_unit": "a b.service"}, "restart_unit"),
        ({"app": "kiosk", "config": {}, "restart_unit": "k\\x2d.service"}, "restart_unit"),
        ({"app": "kiosk", "config": {}, "path": "/etc/shadow"}, "path"),
    ],
)
def test_arguments_that_could_reach_outside_the_file_are_refused(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ArgumentsError) as caught:
        validate_arguments(OperationType.APPLY_APP_CONFIG, arguments)
    assert caught.value.field == f"arguments.{field}"


def test_the_limits_themselves_are_allowed() -> None:
    validate_arguments(
        OperationType.APPLY_APP_CONFIG,
        {"app": "com.example.kiosk_2-b", "config": {"x": nested(MAX_CONFIG_DEPTH - 1), "k" * 256: {"y": "é\n"}}},
    )
    validate_arguments(
        OperationType.APPLY_APP_CONFIG, {"app": "kiosk", "config": {str(i): i for i in range(MAX_CONFIG_KEYS)}}
    )

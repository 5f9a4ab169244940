"""Structured logs: JSON lines carrying the ids of what each line is about, across awaits and tasks."""

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest

from shared.logs import JsonFormatter, about, configure


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure() replaces the root logger's handlers: give pytest its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_json_lines_carry_the_ids_of_what_they_are_about(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", "json")
    log = logging.getLogger("tether.test")
    with about(device_id="kiosk-1"):
        log.info("outside any command")
        with about(operation_id="op-1", command_id="c-1"):
            log.warning("about %s", "c-1")
        log.info("back to the device")
    log.info("nothing")
    found = lines(capsys)
    assert [line["message"] for line in found] == ["outside any command", "about c-1", "back to the device", "nothing"]
    assert found[0] == {**found[0], "device_id": "kiosk-1", "level": "info", "logger": "tether.test"}
    assert "command_id" not in found[0]
    assert found[1] == {**found[1], "device_id": "kiosk-1", "operation_id": "op-1", "command_id": "c-1"}
    assert found[1]["level"] == "warning"
    assert "command_id" not in found[2]
    assert set(found[3]) == {"time", "level", "logger", "message"}
    assert str(found[3]["time"]).endswith("Z")


def test_tasks_keep_the_ids_they_were_started_with(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", "json")
    log = logging.getLogger("tether.test")

    async def handler() -> None:
        await asyncio.sleep(0)
        log.info("inside the handler's task")

    async def scenario() -> None:
        with about(command_id="c-7"):
            task = asyncio.create_task(handler())
        log.info("the runner moved on")
        await task

    asyncio.run(scenario())
    found = {line["message"]: line for line in lines(capsys)}
    assert found["inside the handler's task"]["command_id"] == "c-7"
    assert "command_id" not in found["the runner moved on"]


def test_an_explicit_id_wins_and_exceptions_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    configure("info", "json")
    log = logging.getLogger("tether.test")
    with about(command_id="ambient"):
        log.info("refused", extra={"command_id": "explicit"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("crashed")
    refused, crashed = lines(capsys)
    assert refused["command_id"] == "explicit"
    assert "ValueError: boom" in str(crashed["exception"])
    assert JsonFormatter().format(logging.makeLogRecord({"msg": "é"})).endswith('"message": "é"}')

"""A handler's context as the runner builds it, for tests that call a handler directly."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.handlers.base import HandlerContext
from shared.messages import Command
from shared.operations import OperationType


def context_for(platform: Any, work_dir: Path, operation_type: OperationType, **callbacks: Any) -> HandlerContext[Any]:
    """The context of command `cmd-1` of `operation_type`, with the runner's callbacks given (the rest refuse)."""
    command = Command(
        command_id="cmd-1",
        operation_id="op-1",
        device_id="dev-1",
        operation_type=operation_type,
        issued_at=datetime.now(UTC),
    )
    return HandlerContext(command=command, platform=platform, work_dir=work_dir, **callbacks)

"""What every operation handler is: an argument model, the platforms it runs on, and an async `run`."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from agent.errors import InvalidArguments
from shared.messages import Command
from shared.operations import OperationType, Platform


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlatformTools(Protocol):
    """What a handler may ask of the device; `agent.platforms` implements it per platform."""

    kind: Platform

    def boot_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class HandlerContext:
    command: Command
    platform: PlatformTools
    work_dir: Path
    """A private directory for this command's files, created by the runner."""


@dataclass(frozen=True, slots=True)
class RestartOutcome:
    """How a command found in flight after an agent restart ends: SUCCESSFUL with `result`, or FAILED with `reason`."""

    result: dict[str, Any] | None = None
    reason: str | None = None


class Handler:
    """One operation family. Subclasses set the class attributes and implement `run`.

    `run` returns the `result` of a SUCCESSFUL status, or raises a HandlerError whose message is the failure reason.
    """

    operation_types: ClassVar[frozenset[OperationType]]
    platforms: ClassVar[frozenset[Platform]]
    arguments_model: ClassVar[type[BaseModel]] = NoArguments

    def parse_arguments(self, arguments: Mapping[str, Any]) -> BaseModel:
        try:
            return self.arguments_model.model_validate(dict(arguments))
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in err.errors()
            )
            raise InvalidArguments(f"invalid arguments: {problems}") from err

    async def run(self, arguments: Any, context: HandlerContext) -> dict[str, Any]:
        raise NotImplementedError

    def outcome_after_restart(self, started_boot_id: str, current_boot_id: str) -> RestartOutcome:
        """Decide a command that was executing when the agent stopped; by default it failed."""
        return RestartOutcome(reason="agent restarted during execution")

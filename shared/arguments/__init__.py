"""The `arguments` each operation type takes, validated the same way by the REST API and by the agent.

A type without an entry takes no arguments beyond what its handler documents as optional; unknown keys are refused.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.arguments.management import ConvergeArguments
from shared.arguments.network import WifiArguments
from shared.arguments.scripts import ShellArguments
from shared.operations import OperationType


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArgumentsError(ValueError):
    """Invalid `arguments`; `field` is the dotted path of the first problem, starting with `arguments`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


ARGUMENTS: Mapping[OperationType, type[BaseModel]] = MappingProxyType(
    {
        OperationType.CONVERGE: ConvergeArguments,
        OperationType.SET_WIFI_STATE: WifiArguments,
        OperationType.RUN_SHELL_SCRIPT: ShellArguments,
    }
)


def arguments_model(operation_type: OperationType) -> type[BaseModel]:
    return ARGUMENTS.get(operation_type, NoArguments)


def validate_arguments(operation_type: OperationType, arguments: Mapping[str, Any]) -> BaseModel:
    """Parse `arguments` for `operation_type`; raise ArgumentsError naming every problem, the first one's field."""
    try:
        return arguments_model(operation_type).model_validate(dict(arguments))
    except ValidationError as err:
        problems = [(".".join(["arguments", *(str(part) for part in e["loc"])]), e["msg"]) for e in err.errors()]
        message = "invalid arguments: " + "; ".join(
            f"{field.removeprefix('arguments.')}: {msg}" for field, msg in problems
        )
        raise ArgumentsError(problems[0][0], message) from err

"""shared.arguments: an operation's arguments are refused when the commands carrying them could not reach a device."""

import pytest

from shared.arguments import ArgumentsError, validate_arguments
from shared.messages import MAX_ARGUMENTS_BYTES
from shared.operations import OperationType
from shared.signing import canonical


def script_of(size: int, filler: str = "x") -> dict[str, str]:
    """Arguments that take exactly `size` bytes in a command (`filler` one byte, or escaped to two)."""
    overhead, escaped = len(canonical({"script": "#"})), len(canonical([filler])) - len(canonical([""]))
    return {"script": "#" + filler * ((size - overhead) // escaped)}


def test_arguments_that_fit_in_a_command_are_accepted_to_the_byte() -> None:
    arguments = script_of(MAX_ARGUMENTS_BYTES)
    assert len(canonical(arguments)) == MAX_ARGUMENTS_BYTES
    validate_arguments(OperationType.RUN_SHELL_SCRIPT, arguments)


@pytest.mark.parametrize("filler", ["x", '"', "\n"])
def test_arguments_one_step_over_are_refused_however_they_grew(filler: str) -> None:
    arguments = script_of(MAX_ARGUMENTS_BYTES + 2, filler)
    assert len(canonical(arguments)) > MAX_ARGUMENTS_BYTES
    with pytest.raises(ArgumentsError, match="at most") as refused:
        validate_arguments(OperationType.RUN_SHELL_SCRIPT, arguments)
    assert refused.value.field == "arguments"

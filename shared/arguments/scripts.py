"""Arguments of the script operation types."""

from pathlib import PurePosixPath
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.messages import MAX_ARGUMENTS_BYTES

MAX_SCRIPT_BYTES = MAX_ARGUMENTS_BYTES
MAX_OUTPUT_LIMIT = 1024 * 1024


def _fits(script: str) -> str:
    size = len(script.encode())
    if size > MAX_SCRIPT_BYTES:
        raise ValueError(f"the script is {size} bytes; at most {MAX_SCRIPT_BYTES} are allowed")
    return script


def _absolute(interpreter: str) -> str:
    if not PurePosixPath(interpreter).is_absolute() or "\0" in interpreter:
        raise ValueError(f"the interpreter must be an absolute path, got {interpreter!r}")
    return interpreter


class ShellArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    script: Annotated[str, Field(min_length=1), AfterValidator(_fits)]
    timeout_s: float = Field(default=300.0, ge=1, le=86400)
    interpreter: Annotated[str, AfterValidator(_absolute)] = "/bin/sh"
    output_limit: int = Field(default=4096, ge=0, le=MAX_OUTPUT_LIMIT)
    """How many bytes of the end of stdout and of stderr to keep."""

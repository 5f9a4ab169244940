"""RUN_SHELL_SCRIPT: run a script with an interpreter, a timeout and bounded output, and report its exit and output."""

from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Protocol, runtime_checkable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agent.errors import ToolFailed, ToolTimeout, UnsupportedOperation
from agent.handlers.base import Handler, HandlerContext
from agent.process import ProcessResult, last_line
from shared.operations import OperationType, Platform

MAX_SCRIPT_BYTES = 256 * 1024
MAX_OUTPUT_LIMIT = 1024 * 1024


@runtime_checkable
class ScriptRunner(Protocol):
    """What RUN_SHELL_SCRIPT needs of a platform."""

    async def run_script(
        self,
        script: str,
        *,
        interpreter: str,
        timeout: float,  # noqa: ASYNC109  (the script's own limit, passed down to agent.process)
        work_dir: Path,
        output_limit: int,
    ) -> ProcessResult: ...


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


class ShellHandler(Handler):
    """Runs the script for real; a non-zero exit fails the command but keeps exit code and output in the result."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.RUN_SHELL_SCRIPT})
    platforms: ClassVar[frozenset[Platform]] = frozenset({Platform.LINUX})
    arguments_model: ClassVar[type[BaseModel]] = ShellArguments

    async def run(self, arguments: ShellArguments, context: HandlerContext) -> dict[str, Any]:
        platform = context.platform
        if not isinstance(platform, ScriptRunner):
            raise UnsupportedOperation(f"{OperationType.RUN_SHELL_SCRIPT} is not supported on {platform.kind}")
        try:
            outcome = await platform.run_script(
                arguments.script,
                interpreter=arguments.interpreter,
                timeout=arguments.timeout_s,
                work_dir=context.work_dir,
                output_limit=arguments.output_limit,
            )
        except ToolTimeout as err:
            raise ToolTimeout(f"script timed out after {arguments.timeout_s:g}s", result=err.result) from err
        result = outcome.summary()
        if outcome.returncode != 0:
            line = last_line(outcome.stderr_tail)
            raise ToolFailed(f"script {outcome.exit_description}" + (f": {line}" if line else ""), result=result)
        return result

"""RUN_SHELL_SCRIPT: run a script with an interpreter, a timeout and bounded output, and report its exit and output."""

from typing import Any, ClassVar

from agent.errors import ToolFailed, ToolTimeout
from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import ScriptRunner
from agent.process import last_line
from shared.arguments.scripts import ShellArguments
from shared.operations import OperationType


class ShellHandler(Handler[ShellArguments, ScriptRunner]):
    """Runs the script for real; a non-zero exit fails the command but keeps exit code and output in the result."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.RUN_SHELL_SCRIPT})
    cancellable: ClassVar[bool] = True

    async def run(self, arguments: ShellArguments, context: HandlerContext[ScriptRunner]) -> dict[str, Any]:
        platform = context.platform
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

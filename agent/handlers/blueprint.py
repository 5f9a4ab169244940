"""UPDATE_BLUEPRINT: apply a configuration profile, its settings operations one after another as one command."""

from typing import Any, ClassVar

from agent.errors import HandlerError
from agent.handlers.base import Handler, HandlerContext, PlatformTools
from shared.arguments import validate_arguments
from shared.arguments.blueprint import BlueprintArguments
from shared.operations import OperationType


class BlueprintHandler(Handler[BlueprintArguments, object]):
    """Each step runs as its own operation would, with the same checks (allowed types, platform support), so a
    blueprint can do nothing a device would refuse as separate commands. The first step that fails ends the command
    FAILED, with the steps done before it in the result; the later steps are not run."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.UPDATE_BLUEPRINT})

    def supports(self, platform: PlatformTools) -> bool:
        return True  # whether each step runs here is decided step by step, with the step's own reason

    async def run(self, arguments: BlueprintArguments, context: HandlerContext[object]) -> dict[str, Any]:
        done: list[dict[str, Any]] = []
        for number, step in enumerate(arguments.steps, start=1):
            try:
                model = validate_arguments(step.operation_type, step.arguments)
                result = await context.run_step(step.operation_type, model, context.work_dir / f"step-{number}")
            except HandlerError as err:
                raise HandlerError(
                    f"step {number} of {len(arguments.steps)} ({step.operation_type}) failed: {err}",
                    result={
                        "name": arguments.name,
                        "steps": done,
                        "failed": {"step": number, "operation_type": str(step.operation_type), "result": err.result},
                    },
                ) from err
            done.append({"operation_type": str(step.operation_type), "result": result})
        return {"name": arguments.name, "steps": done}

"""RUN_CUSTOM_ACTION, CONVERGE and WIPE: commands the operator defined in the agent's config, run by name."""

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from agent.config import CustomAction
from agent.errors import HandlerError, InvalidArguments, ToolFailed
from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import CommandRunner
from shared.arguments import NoArguments
from shared.arguments.management import ConvergeArguments, CustomActionArguments
from shared.operations import OperationType

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
OUTPUT_LIMIT = 4096


def fill(action_name: str, action: CustomAction, parameters: Mapping[str, object]) -> list[str]:
    """The action's argv with `{name}` placeholders replaced, each inside its own argument (never a shell string)."""
    unknown = sorted(set(parameters) - set(action.parameters))
    if unknown:
        raise InvalidArguments(
            f"custom action {action_name!r} takes no parameter {', '.join(unknown)}; "
            f"it takes: {', '.join(action.parameters) or 'none'}"
        )
    values = {name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in parameters.items()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise InvalidArguments(f"custom action {action_name!r} needs the parameter {name!r}")
        return values[name]

    return [PLACEHOLDER.sub(replace, part) for part in action.command]


async def run_action(
    name: str,
    actions: Mapping[str, CustomAction],
    parameters: Mapping[str, object],
    context: HandlerContext[CommandRunner],
) -> dict[str, Any]:
    action = actions.get(name)
    if action is None:
        known = ", ".join(sorted(actions)) or "none are configured"
        raise HandlerError(f"unknown custom action {name!r}; known actions: {known}")
    argv = fill(name, action, parameters)
    outcome = await context.platform.run_command(
        argv, timeout=action.timeout_s, work_dir=context.work_dir, output_limit=OUTPUT_LIMIT
    )
    result = {"action": name, **outcome.summary()}
    if outcome.returncode != 0:
        raise ToolFailed(f"custom action {name!r} {outcome.exit_description}", result=result)
    return result


class CustomActionHandler(Handler[CustomActionArguments, CommandRunner]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.RUN_CUSTOM_ACTION})
    cancellable: ClassVar[bool] = True

    def __init__(self, actions: Mapping[str, CustomAction]) -> None:
        self.actions = actions

    async def run(self, arguments: CustomActionArguments, context: HandlerContext[CommandRunner]) -> dict[str, Any]:
        return await run_action(arguments.action, self.actions, arguments.parameters, context)


class ConvergeHandler(Handler[ConvergeArguments, CommandRunner]):
    """Re-applies the device's desired configuration: runs the configured converge actions in order, then announces
    the device again (`announced` says whether that reached the broker now, or waits for the next connect).
    `converge_with_provision` runs the provision action first; with no action to run it fails rather than report a
    convergence that did not happen."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.CONVERGE})

    def __init__(
        self, actions: Mapping[str, CustomAction], converge_actions: list[str], provision_action: str | None
    ) -> None:
        self.actions = actions
        self.converge_actions = converge_actions
        self.provision_action = provision_action

    async def run(self, arguments: ConvergeArguments, context: HandlerContext[CommandRunner]) -> dict[str, Any]:
        steps = list(self.converge_actions)
        if arguments.converge_with_provision:
            if self.provision_action is None:
                raise HandlerError("converge_with_provision needs provision_action in the agent config")
            steps.insert(0, self.provision_action)
        if not steps:
            raise HandlerError("nothing to converge: the agent config lists no converge_actions")
        ran = []
        for name in steps:
            outcome = await run_action(name, self.actions, {}, context)
            ran.append({"action": name, "exit_code": outcome["exit_code"], "duration_s": outcome["duration_s"]})
        announced = await context.update_inventory({})
        return {"actions": ran, "announced": announced}


class WipeHandler(Handler[NoArguments, CommandRunner]):
    """Linux has no standard factory reset, so WIPE runs the custom action the config names as `wipe_action`
    (a reflash, an image restore); it is destructive and runs only where `allow_destructive` lists WIPE."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.WIPE})
    destructive: ClassVar[bool] = True

    def __init__(self, actions: Mapping[str, CustomAction], wipe_action: str | None) -> None:
        self.actions = actions
        self.wipe_action = wipe_action

    async def run(self, arguments: NoArguments, context: HandlerContext[CommandRunner]) -> dict[str, Any]:
        if self.wipe_action is None:
            raise HandlerError("WIPE needs wipe_action in the agent config: the custom action that resets this device")
        return await run_action(self.wipe_action, self.actions, {}, context)

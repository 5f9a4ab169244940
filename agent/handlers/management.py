"""UPDATE_DEVICE_CONFIG, NUDGE_DEVICE, REMOVE_AGENT and REMOVE_DEVICE: operations on the agent itself rather than on
the device's system."""

from typing import Any, ClassVar

from agent.errors import HandlerError
from agent.handlers.base import Handler, HandlerContext, PlatformTools
from agent.platforms.contract import AgentRemover, DeviceRemover, Surveyor
from shared.arguments import NoArguments
from shared.arguments.management import DeviceConfigArguments
from shared.operations import OperationType

REMOVE_DELAY_S = 5.0
"""Time for the SUCCESSFUL status to reach the broker before the agent's service is stopped."""


class DeviceConfigHandler(Handler[DeviceConfigArguments, object]):
    """Changes the tags, groups and time zone the device announces; kept across restarts, in force at once."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.UPDATE_DEVICE_CONFIG})

    def supports(self, platform: PlatformTools) -> bool:
        return True  # it changes only the agent's own state, which every platform has

    async def run(self, arguments: DeviceConfigArguments, context: HandlerContext[object]) -> dict[str, Any]:
        return await context.update_profile(arguments)


class RemoveAgentHandler(Handler[NoArguments, AgentRemover]):
    """Uninstalls the agent's service a few seconds after reporting success; its files and package stay."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.REMOVE_AGENT})
    destructive: ClassVar[bool] = True

    async def run(self, arguments: NoArguments, context: HandlerContext[AgentRemover]) -> dict[str, Any]:
        unit = await context.platform.remove_agent(REMOVE_DELAY_S)
        return {"unit": unit, "stops_in_s": REMOVE_DELAY_S}


class RemoveDeviceHandler(Handler[NoArguments, DeviceRemover]):
    """Unenrols the device: REMOVE_AGENT, then its credentials and state are deleted, so it can no longer connect."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.REMOVE_DEVICE})
    destructive: ClassVar[bool] = True

    async def run(self, arguments: NoArguments, context: HandlerContext[DeviceRemover]) -> dict[str, Any]:
        unit, removed = await context.platform.remove_device(REMOVE_DELAY_S)
        return {"unit": unit, "stops_in_s": REMOVE_DELAY_S, "removes": [str(path) for path in removed]}


class NudgeHandler(Handler[NoArguments, Surveyor]):
    """Reads the device's inventory and time zone afresh and announces them, with its online presence, at once."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.NUDGE_DEVICE})

    async def run(self, arguments: NoArguments, context: HandlerContext[Surveyor]) -> dict[str, Any]:
        survey = await context.platform.survey()
        announced = await context.announce(survey)
        if announced is None:
            raise HandlerError(
                "the device is not connected to the broker now: its fresh announcement goes out when it reconnects"
            )
        return {
            "announced": True,
            "presence": "online",
            "inventory": sorted(survey.inventory),
            "time_zone": announced.time_zone,
        }

"""Device-wide restrictions: ALLOW_BLUETOOTH and ALLOW_CAMERA."""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Restrictions
from shared.arguments.restrictions import AllowArguments, Restriction
from shared.operations import OperationType

RESTRICTIONS = {OperationType.ALLOW_BLUETOOTH: Restriction.BLUETOOTH, OperationType.ALLOW_CAMERA: Restriction.CAMERA}


class AllowHandler(Handler[AllowArguments, Restrictions]):
    """ALLOW_BLUETOOTH, ALLOW_CAMERA: disallow the feature on the device, or allow it again."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset(RESTRICTIONS)

    async def run(self, arguments: AllowArguments, context: HandlerContext[Restrictions]) -> dict[str, Any]:
        restriction = RESTRICTIONS[context.command.operation_type]
        return await context.platform.set_allowed(restriction, arguments.allowed)

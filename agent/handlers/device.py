"""SET_ROTATION_STATE, SET_GPS_STATE and SET_LOCATION_SERVICE: the device's orientation and location switches."""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Location, RotationControl
from shared.arguments.system import GpsArguments, LocationMode, LocationServiceArguments, RotationArguments
from shared.operations import OperationType


class RotationHandler(Handler[RotationArguments, RotationControl]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_ROTATION_STATE})

    async def run(self, arguments: RotationArguments, context: HandlerContext[RotationControl]) -> dict[str, Any]:
        await context.platform.set_rotation(arguments.rotation)
        return {"rotation": str(arguments.rotation)}


class LocationHandler(Handler[GpsArguments | LocationServiceArguments, Location]):
    """Both types drive one switch: platforms expose location as on or off (on Android, GPS and network together)."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset(
        {OperationType.SET_GPS_STATE, OperationType.SET_LOCATION_SERVICE}
    )

    async def run(
        self, arguments: GpsArguments | LocationServiceArguments, context: HandlerContext[Location]
    ) -> dict[str, Any]:
        if isinstance(arguments, LocationServiceArguments):
            mode = arguments.mode
        else:
            mode = LocationMode.ON if arguments.gps_state else LocationMode.OFF
        await context.platform.set_location_mode(mode)
        return {"location": str(mode)}

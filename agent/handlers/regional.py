"""SET_TIMEZONE and SET_DEVICE_LANGUAGE: the device's time zone and system language."""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Clock, Locale
from shared.arguments.management import DeviceConfigArguments
from shared.arguments.system import LanguageArguments, TimeZoneArguments
from shared.operations import OperationType


class TimeZoneHandler(Handler[TimeZoneArguments, Clock]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_TIMEZONE})

    async def run(self, arguments: TimeZoneArguments, context: HandlerContext[Clock]) -> dict[str, Any]:
        await context.platform.set_time_zone(arguments.timezone)
        # Kept and announced as UPDATE_DEVICE_CONFIG's time_zone, so it wins over a config time_zone: device-time
        # schedules follow the device to its new zone.
        await context.update_profile(DeviceConfigArguments(time_zone=arguments.timezone))
        return {"timezone": arguments.timezone}


class LanguageHandler(Handler[LanguageArguments, Locale]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_DEVICE_LANGUAGE})

    async def run(self, arguments: LanguageArguments, context: HandlerContext[Locale]) -> dict[str, Any]:
        applied = await context.platform.set_language(arguments.language)
        return {"language": arguments.language, **applied}

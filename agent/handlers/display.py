"""SET_BRIGHTNESS_SCALE and SET_SCREEN_OFF_TIMEOUT: the screen's backlight and when it turns off."""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Display
from shared.arguments.system import BrightnessArguments, ScreenOffTimeoutArguments
from shared.operations import OperationType


class BrightnessHandler(Handler[BrightnessArguments, Display]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_BRIGHTNESS_SCALE})

    async def run(self, arguments: BrightnessArguments, context: HandlerContext[Display]) -> dict[str, Any]:
        await context.platform.set_brightness(arguments.brightness)
        return {"brightness": arguments.brightness}


class ScreenOffTimeoutHandler(Handler[ScreenOffTimeoutArguments, Display]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_SCREEN_OFF_TIMEOUT})

    async def run(self, arguments: ScreenOffTimeoutArguments, context: HandlerContext[Display]) -> dict[str, Any]:
        applied = await context.platform.set_screen_off_timeout(arguments.timeout_s)
        return {"timeout_s": arguments.timeout_s, **(applied or {})}

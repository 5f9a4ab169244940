"""SET_BRIGHTNESS_SCALE and SET_SCREEN_OFF_TIMEOUT: the screen's backlight and when it turns off."""

from typing import Any, ClassVar, cast

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import Display
from shared.arguments.system import BrightnessArguments, ScreenOffTimeoutArguments
from shared.operations import OperationType


class BrightnessHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_BRIGHTNESS_SCALE})
    needs: ClassVar[type[Any]] = Display

    async def run(self, arguments: BrightnessArguments, context: HandlerContext) -> dict[str, Any]:
        await cast(Display, context.platform).set_brightness(arguments.brightness)
        return {"brightness": arguments.brightness}


class ScreenOffTimeoutHandler(Handler):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_SCREEN_OFF_TIMEOUT})
    needs: ClassVar[type[Any]] = Display

    async def run(self, arguments: ScreenOffTimeoutArguments, context: HandlerContext) -> dict[str, Any]:
        await cast(Display, context.platform).set_screen_off_timeout(arguments.timeout_s)
        return {"timeout_s": arguments.timeout_s}

"""Per-app controls: CLEAR_APP_DATA, SET_APP_PERMISSION, SET_APP_STATE and SET_APP_NOTIFICATIONS (Android), and
APPLY_APP_CONFIG (Linux)."""

from typing import Any, ClassVar

from agent.handlers.base import Handler, HandlerContext
from agent.platforms.contract import AppConfiguration, AppControl, AppNotifications
from shared.arguments.app_config import AppConfigArguments
from shared.arguments.apps import (
    AppNotificationsArguments,
    AppPackageArguments,
    AppPermissionArguments,
    AppStateArguments,
)
from shared.operations import OperationType


class ClearAppDataHandler(Handler[AppPackageArguments, AppControl]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.CLEAR_APP_DATA})

    async def run(self, arguments: AppPackageArguments, context: HandlerContext[AppControl]) -> dict[str, Any]:
        await context.platform.clear_app_data(arguments.package)
        return {"package": arguments.package, "cleared": True}


class AppPermissionHandler(Handler[AppPermissionArguments, AppControl]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_APP_PERMISSION})

    async def run(self, arguments: AppPermissionArguments, context: HandlerContext[AppControl]) -> dict[str, Any]:
        await context.platform.set_app_permission(arguments.package, arguments.permission, arguments.granted)
        return {"package": arguments.package, "permission": arguments.permission, "granted": arguments.granted}


class AppStateHandler(Handler[AppStateArguments, AppControl]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_APP_STATE})

    async def run(self, arguments: AppStateArguments, context: HandlerContext[AppControl]) -> dict[str, Any]:
        await context.platform.set_app_state(arguments.package, arguments.state)
        return {"package": arguments.package, "state": str(arguments.state)}


class AppNotificationsHandler(Handler[AppNotificationsArguments, AppNotifications]):
    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_APP_NOTIFICATIONS})

    async def run(
        self, arguments: AppNotificationsArguments, context: HandlerContext[AppNotifications]
    ) -> dict[str, Any]:
        await context.platform.set_app_notifications(arguments.package, arguments.enabled)
        return {"package": arguments.package, "enabled": arguments.enabled}


class AppConfigHandler(Handler[AppConfigArguments, AppConfiguration]):
    """APPLY_APP_CONFIG: the app's managed configuration, as a file it reads (docs/operations.md, App configuration)."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.APPLY_APP_CONFIG})

    async def run(self, arguments: AppConfigArguments, context: HandlerContext[AppConfiguration]) -> dict[str, Any]:
        return await context.platform.apply_app_config(arguments.app, arguments.document(), arguments.restart_unit)

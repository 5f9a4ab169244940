"""SET_KIOSK_APP, SET_MULTI_APP_MODE, ADD_TO_WHITELIST and REMOVE_FROM_WHITELIST.

Linux: a cage kiosk session running one app (multi-app mode and the allowlist are not offered: nothing there could
confine a session to a list of apps). Android: an app made the home screen, and the allowlist enforced in multi-app
mode by suspending every other launchable app; the allowlist is kept per device in `kiosk.json` (agent.kiosk).
"""

from typing import Any, ClassVar

from agent.errors import HandlerError, InvalidArguments, ToolFailed, UnsupportedOperation
from agent.handlers.base import Handler, HandlerContext, PlatformTools
from agent.kiosk import KioskState, KioskStore, enforce
from agent.platforms.android_kiosk import full_component, package_of
from agent.platforms.contract import AndroidKiosk, KioskSession
from shared.arguments.kiosk import AllowlistArguments, KioskAppArguments, MultiAppModeArguments
from shared.operations import OperationType

KIOSK_STATE = "kiosk.json"


def kiosk_store(context: HandlerContext[Any]) -> KioskStore:
    return KioskStore(context.state_dir / KIOSK_STATE)


async def enforced(
    platform: AndroidKiosk, store: KioskStore, state: KioskState, also_unsuspend: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Enforce `state` on the device, keep what it changed, and return the result; FAILED if any app resisted."""
    kept = [state.kiosk_component, await platform.home_activity() if state.multi_app else None]
    state, done = await enforce(
        platform,
        state,
        keep=frozenset(package_of(component) for component in kept if component),
        also_unsuspend=also_unsuspend,
    )
    await store.save(state)
    result = done.result(state)
    if done.failures:
        raise HandlerError(
            f"{len(done.failures)} app(s) could not be changed: {'; '.join(done.failures)}", result=result
        )
    return result


async def switch_home(platform: AndroidKiosk, component: str) -> str:
    """Make `component` the home activity and read it back; ToolFailed if the device resolves HOME otherwise."""
    await platform.set_home_activity(component)
    home = await platform.home_activity()
    if home != full_component(component):
        raise ToolFailed(f"HOME opens {home or 'a chooser'} after set-home-activity, not {component}")
    return home


class KioskAppHandler(Handler[KioskAppArguments, object]):
    """Linux: the kiosk session unit (agent.platforms.linux_kiosk). Android: the home activity, not lock-task mode."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_KIOSK_APP})

    def supports(self, platform: PlatformTools) -> bool:
        return isinstance(platform, KioskSession | AndroidKiosk)

    async def run(self, arguments: KioskAppArguments, context: HandlerContext[object]) -> dict[str, Any]:
        platform = context.platform
        if isinstance(platform, KioskSession):
            if not arguments.enabled:
                return {"enabled": False, **await platform.stop_kiosk()}
            if arguments.app is None:
                raise InvalidArguments("SET_KIOSK_APP on linux needs 'app', the program and arguments to run")
            return {"enabled": True, **await platform.start_kiosk(arguments.app, arguments.user)}
        if isinstance(platform, AndroidKiosk):
            store = kiosk_store(context)
            if not arguments.enabled:
                return await self._give_home_back(platform, store)
            if arguments.component is None:
                raise InvalidArguments("SET_KIOSK_APP on android needs 'component', the activity to make the home")
            return await self._make_home(platform, store, arguments.component)
        raise UnsupportedOperation(f"{OperationType.SET_KIOSK_APP} is not supported here")

    async def _make_home(self, platform: AndroidKiosk, store: KioskStore, component: str) -> dict[str, Any]:
        state = store.load()
        wanted = full_component(component)
        # The home before the first kiosk app is the one to give back; a kiosk app replacing another keeps it.
        before = state.home_before if state.kiosk_component else await platform.home_activity()
        state = state.model_copy(
            update={"kiosk_component": wanted, "home_before": None if before == wanted else before}
        )
        await store.save(state)  # before acting, so that what was there before is known whatever happens next
        result: dict[str, Any] = {}
        if state.multi_app:  # the kiosk app is never suspended: unsuspend it if it was
            result = await enforced(platform, store, state, also_unsuspend=frozenset({package_of(wanted)}))
        home = await switch_home(platform, component)
        return {**result, "enabled": True, "component": component, "home": home, "home_before": state.home_before}

    async def _give_home_back(self, platform: AndroidKiosk, store: KioskStore) -> dict[str, Any]:
        state = store.load()
        if state.kiosk_component is None:
            return {"enabled": False, "changed": False, "home": await platform.home_activity()}
        if state.home_before is None:
            raise HandlerError(
                "no home app was chosen before the kiosk app was set, so there is none to give back: send "
                "SET_KIOSK_APP with the launcher's component instead"
            )
        home = await switch_home(platform, state.home_before)
        state = state.model_copy(update={"kiosk_component": None, "home_before": None})
        await store.save(state)
        result = await enforced(platform, store, state) if state.multi_app else {}
        return {**result, "enabled": False, "changed": True, "home": home}


class MultiAppModeHandler(Handler[MultiAppModeArguments, AndroidKiosk]):
    """On: every launchable app outside the allowlist is suspended. Off: every app Tether suspended is unsuspended."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset({OperationType.SET_MULTI_APP_MODE})

    async def run(self, arguments: MultiAppModeArguments, context: HandlerContext[AndroidKiosk]) -> dict[str, Any]:
        store = kiosk_store(context)
        state = store.load().model_copy(update={"multi_app": arguments.enabled})
        return await enforced(context.platform, store, state)


class AllowlistHandler(Handler[AllowlistArguments, AndroidKiosk]):
    """Changes the allowlist; in multi-app mode the device follows at once (added apps unsuspended, removed ones
    suspended), otherwise it takes effect when multi-app mode is turned on."""

    operation_types: ClassVar[frozenset[OperationType]] = frozenset(
        {OperationType.ADD_TO_WHITELIST, OperationType.REMOVE_FROM_WHITELIST}
    )

    async def run(self, arguments: AllowlistArguments, context: HandlerContext[AndroidKiosk]) -> dict[str, Any]:
        store = kiosk_store(context)
        state = store.load()
        given = frozenset(arguments.packages)
        adding = context.command.operation_type is OperationType.ADD_TO_WHITELIST
        allowlist = set(state.allowlist) | given if adding else set(state.allowlist) - given
        state = state.model_copy(update={"allowlist": sorted(allowlist)})
        return await enforced(context.platform, store, state, also_unsuspend=given if adding else frozenset())

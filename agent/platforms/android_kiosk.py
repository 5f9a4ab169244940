"""Android's kiosk over adb: an app made the home screen, and apps suspended or unsuspended one by one.

`cmd package set-home-activity` needs SET_PREFERRED_APPLICATIONS, which AOSP grants the shell user; `pm suspend` and
`pm unsuspend` need SUSPEND_APPS, also the shell's (Android 9+). Neither is lock-task mode, which only a
device-owner app can start: the home button brings back the kiosk app, but notifications and the recent-apps screen
still work.
"""

import re

from agent.errors import ToolFailed
from agent.platforms.android_adb import AdbTools
from agent.process import last_line

HOME_INTENT = ("-a", "android.intent.action.MAIN", "-c", "android.intent.category.HOME")
LAUNCHER_INTENT = ("-a", "android.intent.action.MAIN", "-c", "android.intent.category.LAUNCHER")
CHOOSER = "android/com.android.internal.app.ResolverActivity"
"""What HOME resolves to when no home app is chosen and several could be: the user would be asked."""

_COMPONENT_LINE = re.compile(r"^\s*(?P<package>[A-Za-z][\w.]*)/(?P<name>[\w.$]+)\s*$")


def full_component(component: str) -> str:
    """`package/.Name` as `package/package.Name`, so that two spellings of one activity compare equal."""
    package, _, name = component.partition("/")
    return f"{package}/{package}{name}" if name.startswith(".") else component


def package_of(component: str) -> str:
    return component.partition("/")[0]


def components(text: str) -> list[str]:
    """The `package/class` lines of `cmd package resolve-activity|query-activities --components`, in order."""
    return [f"{m['package']}/{m['name']}" for line in text.splitlines() if (m := _COMPONENT_LINE.match(line))]


class AndroidKiosk(AdbTools):
    async def home_activity(self) -> str | None:
        """`adb -s S shell cmd package resolve-activity --components -a MAIN -c HOME`: the last component it prints."""
        found = components(await self.read_text("cmd", "package", "resolve-activity", "--components", *HOME_INTENT))
        if not found or full_component(found[-1]) == full_component(CHOOSER):
            return None
        return full_component(found[-1])

    async def set_home_activity(self, component: str) -> None:
        """`cmd package set-home-activity COMPONENT`, then `am start -W -n COMPONENT` to show it now."""
        await self.shell_ok("cmd", "package", "set-home-activity", component)
        await self.shell_ok("am", "start", "-W", "-n", component)

    async def launchable_packages(self) -> list[str]:
        """`cmd package query-activities --components -a MAIN -c LAUNCHER`: the packages of every launcher icon."""
        text = await self.read_text("cmd", "package", "query-activities", "--components", *LAUNCHER_INTENT)
        return sorted({package_of(component) for component in components(text)})

    async def set_suspended(self, package: str, suspended: bool) -> None:
        """`pm suspend|unsuspend PACKAGE`, which answers with the package's state read back; anything else fails.

        The system itself refuses to suspend some packages (the installer, the permission controller, an active
        device admin, the default dialer); `pm` then reports the state unchanged and this raises.
        """
        verb = "suspend" if suspended else "unsuspend"
        result = await self.shell("pm", verb, package)
        if f"new suspended state: {str(suspended).lower()}" not in result.stdout_tail:
            line = last_line(result.stderr_tail) or last_line(result.stdout_tail) or "no answer"
            raise ToolFailed(f"pm {verb} {package} on {self.serial} failed: {line}", result=result.summary())

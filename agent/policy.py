"""What a device lets its operator do, from the agent's config: which operation types run at all, and how scripts
and custom actions run (as which user, with which environment, within which limits). Pure: the agent applies it.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.operations import OperationType

INHERITED_VARIABLES = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TERM"})
"""What a script keeps of the agent's environment, with the LC_* locale variables: nothing that could carry a
secret (credentials in the agent's unit, SSH agent sockets, proxies with passwords)."""


def harmless_environment(inherited: Mapping[str, str]) -> dict[str, str]:
    """What a process run as another user keeps of the agent's environment (INHERITED_VARIABLES and LC_*): that
    user can read its /proc/PID/environ."""
    return {k: v for k, v in inherited.items() if k in INHERITED_VARIABLES or k.startswith("LC_")}


@dataclass(frozen=True, slots=True)
class TypePolicy:
    allowed: frozenset[OperationType] | None = None
    """None: every type the device supports."""
    denied: frozenset[OperationType] = frozenset()

    def refusal(self, operation_type: OperationType) -> str | None:
        """Why this device does not run `operation_type`, or None if it may."""
        if operation_type in self.denied:
            return f"{operation_type} is denied on this device (denied_types in its agent config)"
        if self.allowed is not None and operation_type not in self.allowed:
            return f"{operation_type} is not allowed on this device (it is not in allowed_types in its agent config)"
        return None


@dataclass(frozen=True, slots=True)
class Account:
    """The user scripts run as, as the system knows it."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True, slots=True)
class ScriptPolicy:
    """How RUN_SHELL_SCRIPT and custom actions run on Linux."""

    account: Account | None = None
    """None: as the agent's own user."""
    extra_environment: Mapping[str, str] = field(default_factory=dict)
    max_timeout_s: float | None = None
    max_output_bytes: int | None = None

    def environment(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """A scrubbed environment: a few harmless variables of the agent's, the account's identity, then the
        configured extras."""
        kept = harmless_environment(inherited)
        if self.account is not None:
            kept |= {"HOME": self.account.home, "USER": self.account.name, "LOGNAME": self.account.name}
        return kept | dict(self.extra_environment)

    def limit_refusal(self, timeout_s: float, output_limit: int) -> str | None:
        """Why a script with these limits may not run here, or None."""
        if self.max_timeout_s is not None and timeout_s > self.max_timeout_s:
            limit = self.max_timeout_s
            return f"timeout_s {timeout_s:g} is over this device's limit of {limit:g} (script_max_timeout_s)"
        if self.max_output_bytes is not None and output_limit > self.max_output_bytes:
            return (
                f"output_limit {output_limit} is over this device's limit of {self.max_output_bytes} "
                "(script_max_output_bytes)"
            )
        return None

"""How long a device may take over one command, unless the operation sets its own limits.

Two clocks run per device: from dispatch until the agent acknowledges the command (`delivery_timeout_s`, which covers
a device that is offline), and from that acknowledgement until a final status (`timeout_s`, which covers a handler that
hangs or a device that goes silent). Either one passing ends the device `FAILED` with a reason starting "timed out".
"""

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from shared.arguments import validate_arguments
from shared.arguments.scripts import ShellArguments
from shared.operations import OperationType

MIN_TIMEOUT_S = 1
MAX_TIMEOUT_S = 30 * 86400
DEFAULT_DELIVERY_TIMEOUT_S = 86400
"""A day for an offline device to come back and take its command."""
DEFAULT_TIMEOUT_S = 600
SCRIPT_MARGIN_S = 120
"""Added to a script's own `timeout_s`: the agent kills the script first, and its status still has to arrive."""

_T = OperationType
TIMEOUT_BY_TYPE: Mapping[OperationType, int] = MappingProxyType(
    {
        _T.REBOOT: 900,  # the agent's reboot grace (300 s) plus a slow boot
        _T.SHUT_DOWN: 86400,  # succeeds only once someone powers the device on again
        **dict.fromkeys(
            (
                _T.INSTALL,
                _T.UNINSTALL,
                _T.INSTALL_APP,
                _T.UNINSTALL_APP,
                _T.INSTALL_OTA,
                _T.SYNC_CONTENT,
                _T.REQUEST_BUGREPORT,
                _T.CONVERGE,
                _T.RUN_CUSTOM_ACTION,
                _T.WIPE,
            ),
            3600,
        ),
    }
)


def default_timeout_s(operation_type: OperationType, arguments: Mapping[str, Any]) -> int:
    """The execution timeout of a device's command when the operation gives none; `arguments` must be valid."""
    if operation_type is OperationType.RUN_SHELL_SCRIPT:
        script = validate_arguments(operation_type, arguments)
        assert isinstance(script, ShellArguments)
        return math.ceil(script.timeout_s) + SCRIPT_MARGIN_S
    return TIMEOUT_BY_TYPE.get(operation_type, DEFAULT_TIMEOUT_S)

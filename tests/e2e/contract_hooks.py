"""Schemathesis hooks for the contract test: no fuzzed request makes the test agent change anything for real.

Loaded by `st run` through SCHEMATHESIS_HOOKS. The test agent's reboot, lock and network tools are recording fakes
(tests/fakes.py), but a shell script, a package manager, a download from a fuzzed URL or a time zone change would
run on this machine. So a request that would create one of those is retargeted, just before it is sent, at a device
that does not exist: it still exercises the API's validation and storage, and no agent ever receives it.
"""

from typing import Any

import schemathesis
from pydantic import ValidationError
from schemathesis import Case, HookContext

from controller.api.devicecontrol_schemas import NewOperation
from controller.errors import InvalidRequest
from controller.fragments import to_operation
from shared.operations import OperationType

NOBODY = "contract-test-nobody"
"""A device id no agent uses."""

HARMLESS = frozenset(
    {
        OperationType.REBOOT,  # systemctl: a recording fake
        OperationType.LOCK,  # loginctl: a recording fake
        OperationType.COLLECT_LOGS,  # reads the journal, uploads it to the controller on 127.0.0.1
        OperationType.RUN_CUSTOM_ACTION,  # the test agent defines no custom action, so it refuses every one
    }
)
"""Everything else the test agent could run is a shell script, a package manager, a download from a fuzzed URL, a
time zone or locale change..., so a request to create one is retargeted whatever else it holds."""


@schemathesis.hook
def before_call(context: HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    """Retarget every create unless it is certainly harmless, parsing the body exactly as the controller does."""
    body = case.body
    if case.method.upper() != "POST" or not isinstance(body, dict):
        return
    if case.path == "/v0/operations/" and str(body.get("operation_type")) not in HARMLESS:
        body["operation_device_query"] = {"device_id": NOBODY}
    elif case.path == "/devicecontrol/operations" and _devicecontrol_type(body) not in HARMLESS:
        body["deviceId"] = NOBODY


def _devicecontrol_type(body: dict[str, Any]) -> OperationType | None:
    """The type the controller makes of a /devicecontrol body (c8y_Command is a shell script); None if refused."""
    try:
        return to_operation(NewOperation.model_validate(body).fragments())[0]
    except (ValidationError, InvalidRequest):
        return None

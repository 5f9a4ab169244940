"""Cumulocity operation fragments <-> Tether operation types, pure: what /devicecontrol/operations speaks.

A Cumulocity operation carries its instruction as a fragment, a top-level key such as `c8y_Restart`. The standard
ones map to Tether types; any other fragment reaches the agent as RUN_CUSTOM_ACTION named after the fragment, with
the fragment's scalar members (and those of its `parameters` object) as parameters.
"""

from collections.abc import Mapping
from typing import Any

from controller.errors import InvalidRequest
from shared.operations import OperationType

RESTART = "c8y_Restart"
COMMAND = "c8y_Command"
SOFTWARE_UPDATE = "c8y_SoftwareUpdate"
LOGFILE_REQUEST = "c8y_LogfileRequest"
TETHER_OPERATION = "tether_Operation"
"""How an operation created through /v0 with no standard fragment shows here: {"type", "arguments"}."""

OPERATION_KEYS = frozenset(
    {
        "id",
        "self",
        "deviceId",
        "deviceName",
        "status",
        "creationTime",
        "description",
        "failureReason",
        "bulkOperationId",
        "deviceExternalIDs",
    }
)
"""Keys of the Operation object itself; every other top-level key of a request is a fragment."""


STANDARD = frozenset({RESTART, COMMAND, SOFTWARE_UPDATE, LOGFILE_REQUEST, TETHER_OPERATION})
"""Fragments with a shape of their own, which a /v0 custom action's parameters do not have."""
_RESERVED = OPERATION_KEYS | STANDARD


def fragments_of(body: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in OPERATION_KEYS}


def to_operation(fragments: Mapping[str, Any]) -> tuple[OperationType, dict[str, Any], str]:
    """(type, arguments, fragment type) for a request's fragments; InvalidRequest naming the fragment otherwise."""
    if len(fragments) != 1:
        names = ", ".join(sorted(fragments)) or "none"
        raise InvalidRequest("fragments", f"an operation needs exactly one fragment, got {names}")
    ((name, value),) = fragments.items()
    if name == RESTART:
        return OperationType.REBOOT, {}, name
    if name == COMMAND:
        text = value.get("text") if isinstance(value, dict) else None
        if not isinstance(text, str) or not text:
            raise InvalidRequest(f"{COMMAND}.text", "the shell command to run is required")
        return OperationType.RUN_SHELL_SCRIPT, {"script": text}, name
    if name == SOFTWARE_UPDATE:
        return (*_software_update(value), name)
    if name == LOGFILE_REQUEST:
        return OperationType.COLLECT_LOGS, _logfile_request(value), name
    return OperationType.RUN_CUSTOM_ACTION, {"action": name, "parameters": _parameters(name, value)}, name


def _software_update(value: Any) -> tuple[OperationType, dict[str, Any]]:
    if not isinstance(value, list) or not value or not all(isinstance(entry, dict) for entry in value):
        raise InvalidRequest(SOFTWARE_UPDATE, "a non-empty list of {name, version, action} entries is required")
    actions = {entry.get("action", "install") for entry in value}
    entries = [_software_entry(entry) for entry in value]
    if actions == {"install"}:
        return OperationType.INSTALL, {"packages": entries}
    if actions == {"delete"}:
        # UNINSTALL removes its packages through one package manager; a url or version says nothing about removal.
        software_types = {entry.get("software_type") for entry in entries}
        if len(software_types) > 1:
            raise InvalidRequest(
                f"{SOFTWARE_UPDATE}.softwareType", "all delete entries must have the same softwareType in one operation"
            )
        arguments: dict[str, Any] = {"packages": [entry.get("name") for entry in entries]}
        (software_type,) = software_types
        if software_type is not None:
            arguments["software_type"] = software_type
        return OperationType.UNINSTALL, arguments
    raise InvalidRequest(
        f"{SOFTWARE_UPDATE}.action", "all entries must have the same action, install or delete, in one operation"
    )


def _software_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as INSTALL's package: name, version, softwareType, url and (a Tether extension) sha256.

    Cumulocity sends "" for a version, type or url it has none of, and older tenants send the type inside the version
    as `1.0::debian`, as thin-edge.io reads it.
    """
    version, software_type = entry.get("version"), entry.get("softwareType")
    if isinstance(version, str) and "::" in version and not software_type:
        version, software_type = version.split("::", 1)
    package = {
        "name": entry.get("name"),
        "version": version,
        "software_type": software_type,
        "url": entry.get("url"),
        "sha256": entry.get("sha256"),
    }
    return {key: item for key, item in package.items() if item not in (None, "")}


def _logfile_request(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(LOGFILE_REQUEST, "must be an object")
    arguments: dict[str, Any] = {}
    if "maximumLines" in value:
        arguments["max_lines"] = value["maximumLines"]
    return arguments


def _parameters(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    nested = value.get("parameters")
    members = {**value, **(nested if isinstance(nested, dict) else {})}
    return {key: item for key, item in members.items() if isinstance(item, str | int | float | bool)}


def to_fragments(
    operation_type: OperationType,
    arguments: Mapping[str, Any],
    stored: Mapping[str, Any] | None,
    result: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The fragments an operation shows: as sent when created here, else derived from its type and arguments.

    A finished c8y_Command also carries the script's output in `result`.
    """
    fragments = dict(stored) if stored is not None else _derived(operation_type, arguments)
    if COMMAND in fragments and result is not None and "stdout" in result:
        fragments[COMMAND] = {**fragments[COMMAND], "result": result["stdout"]}
    return fragments


def fragment_type_of(operation_type: OperationType, arguments: Mapping[str, Any]) -> str:
    """The fragment an operation created through /v0 shows, for the fragmentType filter."""
    return next(iter(_derived(operation_type, arguments)))


def _derived(operation_type: OperationType, arguments: Mapping[str, Any]) -> dict[str, Any]:
    if operation_type is OperationType.REBOOT:
        return {RESTART: {}}
    if operation_type is OperationType.RUN_SHELL_SCRIPT:
        return {COMMAND: {"text": arguments.get("script", "")}}
    action = arguments.get("action")
    # An action named like a member of the Operation, or like a standard fragment, cannot show as that fragment.
    if operation_type is OperationType.RUN_CUSTOM_ACTION and isinstance(action, str) and action not in _RESERVED:
        return {action: dict(arguments.get("parameters") or {})}
    return {TETHER_OPERATION: {"type": str(operation_type), "arguments": dict(arguments)}}

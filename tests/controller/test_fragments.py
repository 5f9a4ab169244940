"""Cumulocity fragments <-> Tether operation types, as pure mappings."""

from typing import Any

import pytest

from controller.errors import InvalidRequest
from controller.fragments import fragment_type_of, fragments_of, to_fragments, to_operation
from shared.arguments import validate_arguments
from shared.operations import OperationType


@pytest.mark.parametrize(
    ("fragments", "operation_type", "arguments"),
    [
        ({"c8y_Restart": {}}, OperationType.REBOOT, {}),
        ({"c8y_Command": {"text": "uptime"}}, OperationType.RUN_SHELL_SCRIPT, {"script": "uptime"}),
        (
            {"c8y_SoftwareUpdate": [{"name": "curl", "version": "7.88.1", "action": "install"}, {"name": "htop"}]},
            OperationType.INSTALL,
            {"packages": [{"name": "curl", "version": "7.88.1"}, {"name": "htop"}]},
        ),
        (
            {"c8y_SoftwareUpdate": [{"name": "telnet", "action": "delete"}]},
            OperationType.UNINSTALL,
            {"packages": ["telnet"]},
        ),
        (
            {
                "c8y_SoftwareUpdate": [
                    {
                        "name": "tool",
                        "version": "1.0",
                        "softwareType": "apt",
                        "url": "https://example.com/tool_1.0_all.deb",
                        "action": "install",
                    },
                    {"name": "curl", "version": "", "softwareType": "", "url": "", "action": "install"},
                    {"name": "jq", "version": "1.6-2::debian", "url": "http://mirror/jq.deb", "sha256": "a" * 64},
                ]
            },
            OperationType.INSTALL,
            {
                "packages": [
                    {
                        "name": "tool",
                        "version": "1.0",
                        "software_type": "apt",
                        "url": "https://example.com/tool_1.0_all.deb",
                    },
                    {"name": "curl"},
                    {
                        "name": "jq",
                        "version": "1.6-2",
                        "software_type": "debian",
                        "url": "http://mirror/jq.deb",
                        "sha256": "a" * 64,
                    },
                ]
            },
        ),
        (
            {
                "c8y_SoftwareUpdate": [
                    {"name": "a", "softwareType": "rpm", "url": "https://x/a.rpm", "action": "delete"},
                    {"name": "b", "version": "2::rpm", "action": "delete"},
                ]
            },
            OperationType.UNINSTALL,
            {"packages": ["a", "b"], "software_type": "rpm"},
        ),
        (
            {"c8y_LogfileRequest": {"logFile": "syslog", "maximumLines": 500}},
            OperationType.COLLECT_LOGS,
            {"max_lines": 500},
        ),
        (
            {
                "com_cumulocity_model_WebCamDevice": {
                    "name": "take picture",
                    "parameters": {"duration": "5s", "hd": True},
                }
            },
            OperationType.RUN_CUSTOM_ACTION,
            {
                "action": "com_cumulocity_model_WebCamDevice",
                "parameters": {"name": "take picture", "duration": "5s", "hd": True},
            },
        ),
    ],
)
def test_fragments_map_to_types_with_valid_arguments(
    fragments: dict[str, Any], operation_type: OperationType, arguments: dict[str, Any]
) -> None:
    mapped_type, mapped_arguments, fragment = to_operation(fragments)
    assert (mapped_type, mapped_arguments, fragment) == (operation_type, arguments, next(iter(fragments)))
    validate_arguments(mapped_type, mapped_arguments)


@pytest.mark.parametrize(
    ("fragments", "field"),
    [
        ({}, "fragments"),
        ({"c8y_Restart": {}, "c8y_Command": {"text": "x"}}, "fragments"),
        ({"c8y_Command": {}}, "c8y_Command.text"),
        ({"c8y_Command": "uptime"}, "c8y_Command.text"),
        ({"c8y_SoftwareUpdate": []}, "c8y_SoftwareUpdate"),
        ({"c8y_SoftwareUpdate": [{"name": "a"}, {"name": "b", "action": "delete"}]}, "c8y_SoftwareUpdate.action"),
        (
            {
                "c8y_SoftwareUpdate": [
                    {"name": "a", "action": "delete", "softwareType": "apt"},
                    {"name": "b", "action": "delete"},
                ]
            },
            "c8y_SoftwareUpdate.softwareType",
        ),
        ({"c8y_LogfileRequest": "all"}, "c8y_LogfileRequest"),
    ],
)
def test_bad_fragments_name_the_field(fragments: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_operation(fragments)
    assert caught.value.field == field


def test_operation_keys_are_not_fragments() -> None:
    body = {"deviceId": "d1", "description": "restart it", "status": "PENDING", "c8y_Restart": {}}
    assert fragments_of(body) == {"c8y_Restart": {}}


def test_a_finished_command_carries_its_output_as_result() -> None:
    stored = {"c8y_Command": {"text": "uptime"}}
    shown = to_fragments(OperationType.RUN_SHELL_SCRIPT, {"script": "uptime"}, stored, {"stdout": "up 3 days\n"})
    assert shown == {"c8y_Command": {"text": "uptime", "result": "up 3 days\n"}}
    assert stored == {"c8y_Command": {"text": "uptime"}}  # not changed in place


@pytest.mark.parametrize(
    ("operation_type", "arguments", "fragments"),
    [
        (OperationType.REBOOT, {}, {"c8y_Restart": {}}),
        (OperationType.RUN_SHELL_SCRIPT, {"script": "ls"}, {"c8y_Command": {"text": "ls"}}),
        (OperationType.RUN_CUSTOM_ACTION, {"action": "reflash", "parameters": {"v": 2}}, {"reflash": {"v": 2}}),
        (OperationType.LOCK, {}, {"tether_Operation": {"type": "LOCK", "arguments": {}}}),
        # A custom action named like the Operation's own members or a standard fragment would clobber or misshape it.
        *[
            (
                OperationType.RUN_CUSTOM_ACTION,
                {"action": name, "parameters": {"v": 2}},
                {
                    "tether_Operation": {
                        "type": "RUN_CUSTOM_ACTION",
                        "arguments": {"action": name, "parameters": {"v": 2}},
                    }
                },
            )
            for name in ("status", "deviceId", "c8y_Command", "c8y_SoftwareUpdate", "tether_Operation")
        ],
    ],
)
def test_v0_operations_show_a_derived_fragment(
    operation_type: OperationType, arguments: dict[str, Any], fragments: dict[str, Any]
) -> None:
    assert to_fragments(operation_type, arguments, None, None) == fragments
    assert fragment_type_of(operation_type, arguments) == next(iter(fragments))

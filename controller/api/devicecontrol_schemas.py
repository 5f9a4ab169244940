"""The Cumulocity shapes of /devicecontrol (seed 004): the Operation, its collection and the bodies of POST and PUT.

Members an answer may leave out are absent, never null (`absent_not_null`); in a request, null means absent. A
fragment is any top-level member that is not one of the Operation's own; the standard ones are typed here, any
other is an object of its own.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controller.api.contract import absent_not_null
from controller.fragments import OPERATION_KEYS
from shared.arguments.apps import PACKAGE_NAME
from shared.arguments.diagnostics import LogsArguments
from shared.arguments.management import CustomActionArguments
from shared.operations import DeviceStatus, OperationType

FRAGMENT_NAME: str = CustomActionArguments.model_json_schema()["properties"]["action"]["pattern"]
"""A custom fragment becomes the custom action of that name, so its name follows the action's rule."""

_MAX_LINES = LogsArguments.model_json_schema()["properties"]["max_lines"]


class _Shape(BaseModel):
    """Python names inside, the seed's camelCase names on the wire, and only those: a member named `command` is a
    custom fragment, never c8y_Command."""

    model_config = ConfigDict(serialize_by_alias=True)


class _Fragment(_Shape):
    """A fragment keeps members Tether does not read, as Cumulocity clients may send more than the seed shows."""

    model_config = ConfigDict(extra="allow")


class CommandFragment(_Fragment):
    """c8y_Command: a shell command, run as RUN_SHELL_SCRIPT (at most 256 KiB of UTF-8)."""

    text: str = Field(min_length=1)


class CommandResultFragment(CommandFragment):
    """c8y_Command as an answer shows it: once the command has finished, `result` is its standard output."""

    model_config = ConfigDict(json_schema_extra=absent_not_null)

    result: str | None = None


class SoftwareUpdateEntry(_Fragment):
    """One package of c8y_SoftwareUpdate; every entry of an operation has the same action."""

    # Checked by INSTALL's and UNINSTALL's arguments models, as for /v0, so an error names `packages.<n>.name`.
    name: str = Field(json_schema_extra={"pattern": PACKAGE_NAME})
    version: str | None = None
    action: Literal["install", "delete"] = "install"


class LogfileRequestFragment(_Fragment):
    """c8y_LogfileRequest: the system log, at most `maximumLines` lines, run as COLLECT_LOGS."""

    maximum_lines: int | None = Field(
        default=None,
        alias="maximumLines",
        # The bounds are COLLECT_LOGS's and checked by its arguments model, so an error names `max_lines`.
        json_schema_extra={"minimum": _MAX_LINES["minimum"], "maximum": _MAX_LINES["maximum"]},
    )


class TetherOperationFragment(_Shape):
    """tether_Operation: how an operation created through /v0 with no standard fragment shows its type."""

    type: OperationType
    arguments: dict[str, Any]


_READ_ONLY = OPERATION_KEYS - {"deviceId", "description"}


NEW_OPERATION_EXAMPLES = [
    {
        "deviceId": "1234",
        "com_cumulocity_model_WebCamDevice": {
            "name": "take picture",
            "parameters": {"duration": "5s", "quality": "HD"},
        },
    },  # seed 004's example
    {"deviceId": "1234", "description": "Restart the kiosk", "c8y_Restart": {}},
    {"deviceId": "1234", "c8y_Command": {"text": "uptime"}},
    {"deviceId": "1234", "c8y_SoftwareUpdate": [{"name": "htop", "version": "3.2.2-2", "action": "install"}]},
    {"deviceId": "1234", "c8y_LogfileRequest": {"maximumLines": 1000}},
]


def _new_operation_schema(schema: dict[str, Any]) -> None:
    schema["examples"] = NEW_OPERATION_EXAMPLES
    schema["propertyNames"] = {"pattern": FRAGMENT_NAME}
    for key in sorted(_READ_ONLY):
        schema["properties"][key] = {"readOnly": True, "description": "Part of an answer; ignored in a request."}


class NewOperation(_Shape):
    """POST body: the device, an optional description and exactly one fragment, standard or custom.

    A custom fragment (any other member, an object) runs as the custom action of its name, with its scalar
    members and those of its `parameters` as the action's parameters.
    """

    model_config = ConfigDict(extra="allow", json_schema_extra=_new_operation_schema)
    __pydantic_extra__: dict[str, dict[str, Any]] = Field(init=False)

    device_id: str = Field(alias="deviceId", min_length=1, description="The id of a registered device.")
    description: str | None = None
    restart: dict[str, Any] | None = Field(default=None, alias="c8y_Restart", description="Reboot the device.")
    command: CommandFragment | None = Field(default=None, alias="c8y_Command")
    software_update: list[SoftwareUpdateEntry] | None = Field(
        default=None,
        alias="c8y_SoftwareUpdate",
        min_length=1,
        description="Install (action install) or remove (action delete) packages, run as INSTALL or UNINSTALL.",
    )
    logfile_request: LogfileRequestFragment | None = Field(default=None, alias="c8y_LogfileRequest")

    @model_validator(mode="before")
    @classmethod
    def _ignore_read_only(cls, data: Any) -> Any:
        # An Operation read back may be sent again: its own members are not fragments.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in _READ_ONLY}
        return data

    def fragments(self) -> dict[str, Any]:
        """The fragments as sent (a standard one given as null counts as absent)."""
        sent = self.model_dump(mode="json", exclude_unset=True, exclude={"device_id", "description"})
        return {name: value for name, value in sent.items() if value is not None}


_UNCHANGEABLE = (_READ_ONLY | {"deviceId"}) - {"status", "failureReason"}
"""Members of an Operation a PUT ignores: an answer's, and the device, which an operation keeps."""


class OperationUpdate(_Shape):
    """PUT body: a status to move to along a legal transition (with FAILED, why), and fragments to add or replace.

    A fragment given as null is removed. The fragment the operation runs, and the operation's own members, may be
    sent as they are (an Operation read back may be sent again) but not changed.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"status": "EXECUTING"},
                {"status": "FAILED", "failureReason": "no power"},
                {"c8y_Progress": {"percent": 40}},
            ],
            "propertyNames": {"pattern": FRAGMENT_NAME},
            "if": {"properties": {"failureReason": {"type": "string"}}, "required": ["failureReason"]},
            "then": {"properties": {"status": {"const": DeviceStatus.FAILED.value}}, "required": ["status"]},
        },
    )
    __pydantic_extra__: dict[str, Any] = Field(init=False)

    status: DeviceStatus | None = None
    failure_reason: str | None = Field(
        default=None, alias="failureReason", description="Only with status FAILED; the reason it failed."
    )
    description: str | None = Field(default=None, description="May be sent as it is; it cannot be changed.")

    @model_validator(mode="before")
    @classmethod
    def _ignore_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if key not in _UNCHANGEABLE}
        return data

    def fragments(self) -> dict[str, Any]:
        """The fragments as sent, None for one to remove."""
        return dict(self.__pydantic_extra__)


class ExternalId(_Shape):
    """One of the ids a device is known by outside Tether; a Tether device has its device id."""

    external_id: str = Field(alias="externalId")
    type: str


class ExternalIds(_Shape):
    external_ids: list[ExternalId] = Field(alias="externalIds")


class Operation(_Shape):
    """One operation on one device; its fragments say what it does."""

    model_config = ConfigDict(extra="allow", json_schema_extra=absent_not_null)

    id: str = Field(pattern=r"^[0-9]+$", description="Numeric, in creation order.")
    self_: str = Field(alias="self", json_schema_extra={"format": "uri"})
    device_id: str = Field(alias="deviceId")
    device_name: str | None = Field(default=None, alias="deviceName", description="Only inside a collection.")
    status: DeviceStatus
    creation_time: str = Field(alias="creationTime", json_schema_extra={"format": "date-time"})
    description: str | None = None
    failure_reason: str | None = Field(default=None, alias="failureReason")
    bulk_operation_id: str | None = Field(
        default=None, alias="bulkOperationId", description="The /v0 operation, for one created through /v0."
    )
    restart: dict[str, Any] | None = Field(default=None, alias="c8y_Restart")
    command: CommandResultFragment | None = Field(default=None, alias="c8y_Command")
    software_update: list[SoftwareUpdateEntry] | None = Field(default=None, alias="c8y_SoftwareUpdate")
    logfile_request: LogfileRequestFragment | None = Field(default=None, alias="c8y_LogfileRequest")
    tether_operation: TetherOperationFragment | None = Field(default=None, alias="tether_Operation")
    device_external_ids: ExternalIds | None = Field(
        default=None, alias="deviceExternalIDs", description="Inside a collection queried with agentId."
    )


class PagingStatistics(_Shape):
    model_config = ConfigDict(json_schema_extra=absent_not_null)

    page_size: int = Field(alias="pageSize")
    current_page: int = Field(alias="currentPage")
    total_pages: int | None = Field(default=None, alias="totalPages", description="With withTotalPages=true.")
    total_elements: int | None = Field(default=None, alias="totalElements", description="With withTotalElements=true.")


class OperationCollection(_Shape):
    """A page of operations, first in first out, with links to its neighbours."""

    model_config = ConfigDict(json_schema_extra=absent_not_null)

    self_: str = Field(alias="self", json_schema_extra={"format": "uri"})
    operations: list[Operation]
    statistics: PagingStatistics
    prev: str | None = Field(default=None, json_schema_extra={"format": "uri"})
    next: str | None = Field(default=None, json_schema_extra={"format": "uri"})


def dump(model: BaseModel) -> dict[str, Any]:
    """An answer's JSON: by alias, without the members that are absent."""
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)

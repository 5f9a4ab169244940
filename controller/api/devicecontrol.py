"""The Cumulocity-style device control API (seed 004): one operation per device, over the same store as /v0.

An operation created here becomes a single-device /v0 operation; each device of a /v0 operation shows up here as
one operation with `bulkOperationId` naming the /v0 operation.
"""

import json
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from controller.api.auth import Admin, Reader
from controller.api.deps import services
from controller.clock import to_iso
from controller.completion import finish_if_done
from controller.errors import InvalidRequest, NotFound
from controller.fragments import fragments_of, to_fragments, to_operation
from controller.store.devicecontrol import DeviceControlFilters, DeviceControlRow
from shared.arguments import ArgumentsError, validate_arguments
from shared.operations import DeviceStatus, ScheduleType
from shared.timeouts import DEFAULT_DELIVERY_TIMEOUT_S, default_timeout_s

router = APIRouter(prefix="/devicecontrol", tags=["devicecontrol"])

OPERATION_TYPE = "application/vnd.com.nsn.cumulocity.operation+json"
COLLECTION_TYPE = "application/vnd.com.nsn.cumulocity.operationcollection+json"
MAX_PAGE_SIZE = 2000
MAX_PAGE = 1_000_000
"""Beyond any fleet's history; it keeps the row offset within what SQLite can take."""


def _answer(request: Request, body: dict[str, Any], media_type: str, status_code: int = 200) -> JSONResponse:
    """JSON in the Cumulocity media type when the client asked for it (Accept), else application/json."""
    accepted = request.headers.get("accept", "").lower()
    chosen = media_type if "vnd.com.nsn.cumulocity" in accepted else "application/json"
    return JSONResponse(body, status_code=status_code, media_type=chosen)


def _operation_url(request: Request, operation_id: str) -> str:
    return str(request.url_for("get_devicecontrol_operation", operation_id=operation_id))


def _operation(request: Request, row: DeviceControlRow, *, in_collection: bool = False) -> dict[str, Any]:
    """The Operation object; as the seed says, `deviceName` only inside a collection."""
    body: dict[str, Any] = {"id": row.id, "self": _operation_url(request, row.id), "deviceId": row.device_id}
    if in_collection:
        body["deviceName"] = row.device_id
    body |= {"status": str(row.status), "creationTime": row.creation_time}
    if row.fragments is None:
        body["bulkOperationId"] = row.operation_id
    if row.description is not None:
        body["description"] = row.description
    if row.failure_reason is not None:
        body["failureReason"] = row.failure_reason
    return {**body, **to_fragments(row.operation_type, row.arguments, row.fragments, row.result)}


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidRequest("body", f"not valid JSON: {err}") from err
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object (an Operation)")
    return body


@router.post("/operations", status_code=201, summary="Create an operation for one device")
@router.post("/operations/", include_in_schema=False)
async def create_devicecontrol_operation(request: Request, key: Admin) -> JSONResponse:
    body = await _json_object(request)
    device_id = body.get("deviceId")
    if not isinstance(device_id, str) or not device_id:
        raise InvalidRequest("deviceId", "the id of the device to operate is required")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequest("description", "must be a string")
    store = services(request).store
    try:
        store.get_device(device_id)
    except NotFound as err:
        raise InvalidRequest("deviceId", f"no device {device_id!r} is registered") from err
    fragments = fragments_of(body)
    operation_type, arguments, fragment = to_operation(fragments)
    try:
        validate_arguments(operation_type, arguments)
    except ArgumentsError as err:
        field = err.field.replace("arguments", fragment, 1)
        raise InvalidRequest(field, str(err).replace(err.field, field)) from err
    operation_id = store.create_operation(
        operation_type=operation_type,
        schedule_type=ScheduleType.IMMEDIATE,
        schedule_args=None,
        device_query={"device_id": device_id},
        arguments=arguments,
        created_by=key.name,
        timeout_s=default_timeout_s(operation_type, arguments),
        delivery_timeout_s=DEFAULT_DELIVERY_TIMEOUT_S,
        fragments=fragments,
        description=description,
    )
    services(request).scheduler.submit(operation_id)
    (device,) = store.commands.list_for_operation(operation_id, status=None, limit=1, offset=0).items
    row = store.devicecontrol.get(store.devicecontrol.seq_of_command(device.command_id))
    answer = _answer(request, _operation(request, row), OPERATION_TYPE, status_code=201)
    answer.headers["Location"] = _operation_url(request, row.id)
    return answer


@router.get("/operations/{operation_id}", summary="One operation")
async def get_devicecontrol_operation(operation_id: str, request: Request, _: Reader) -> JSONResponse:
    row = services(request).store.devicecontrol.get(operation_id)
    return _answer(request, _operation(request, row), OPERATION_TYPE)


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(?P<offset>Z|[+-]\d\d:\d\d)?", re.IGNORECASE)
DATE_TIME = {"format": "date-time"}


def _moment(value: str | None, name: str) -> str | None:
    """An RFC 3339 date and time with its offset, as the store compares them (UTC, milliseconds)."""
    if value is None:
        return None
    written = _RFC3339.fullmatch(value)
    try:
        moment = datetime.fromisoformat(value) if written else None
    except ValueError:
        moment = None
    if written is None or moment is None:
        raise InvalidRequest(name, f"not an ISO 8601 date and time: {value!r}")
    if written["offset"] is None:
        raise InvalidRequest(name, f"needs an offset, e.g. {value}Z")
    return to_iso(moment)


class CollectionQuery:
    """The filters GET and DELETE of the collection share, under the seed's parameter names."""

    def __init__(
        self,
        device_id: Annotated[str | None, Query(alias="deviceId", min_length=1)] = None,
        agent_id: Annotated[str | None, Query(alias="agentId", min_length=1)] = None,
        status: DeviceStatus | None = None,
        fragment_type: Annotated[str | None, Query(alias="fragmentType")] = None,
        date_from: Annotated[str | None, Query(alias="dateFrom", json_schema_extra=DATE_TIME)] = None,
        date_to: Annotated[str | None, Query(alias="dateTo", json_schema_extra=DATE_TIME)] = None,
        bulk_operation_id: Annotated[str | None, Query(alias="bulkOperationId")] = None,
    ) -> None:
        # Each Tether device runs its own agent, so agentId names a device too; both given must agree.
        self.contradictory = device_id is not None and agent_id is not None and device_id != agent_id
        self.filters = DeviceControlFilters(
            device_id=device_id if device_id is not None else agent_id,
            status=status,
            fragment_type=fragment_type,
            date_from=_moment(date_from, "dateFrom"),
            date_to=_moment(date_to, "dateTo"),
            bulk_operation_id=bulk_operation_id,
        )


Filters = Annotated[CollectionQuery, Depends()]


@router.get("/operations", summary="Operations, first in first out")
async def list_devicecontrol_operations(
    request: Request,
    _: Reader,
    query: Filters,
    revert: bool = False,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE)] = 5,
    current_page: Annotated[int, Query(alias="currentPage", ge=1, le=MAX_PAGE)] = 1,
    with_total_pages: Annotated[bool, Query(alias="withTotalPages")] = False,
    with_total_elements: Annotated[bool, Query(alias="withTotalElements")] = False,
) -> Response:
    with_total = with_total_pages or with_total_elements
    rows: list[DeviceControlRow] = []
    total: int | None = 0
    if not query.contradictory:
        rows, total = services(request).store.devicecontrol.page(
            query.filters,
            revert=revert,
            limit=page_size,
            offset=(current_page - 1) * page_size,
            with_total=with_total,
        )
    body = _collection(request, rows, page_size, current_page, total if with_total else None, with_total_pages)
    if with_total_elements:
        body["statistics"]["totalElements"] = total
    return _answer(request, body, COLLECTION_TYPE)


@router.delete("/operations", status_code=204, summary="Delete the operations the filters select")
async def delete_devicecontrol_operations(request: Request, key: Admin, query: Filters) -> Response:
    """Unfinished ones end FAILED "deleted by <key>", their retained commands are cleared and their devices told."""
    if not query.contradictory:
        store = services(request).store
        for operation_id in store.devicecontrol.hide(query.filters, f"deleted by {key.name}"):
            finish_if_done(store, operation_id)
        services(request).wake_supervisor()
    return Response(status_code=204)


@router.put("/operations/{operation_id}", summary="Change an operation's status")
async def update_devicecontrol_operation(operation_id: str, request: Request, key: Admin) -> JSONResponse:
    body = await _json_object(request)
    try:
        status = DeviceStatus(str(body.get("status")))
    except ValueError as err:
        choices = ", ".join(DeviceStatus)
        raise InvalidRequest("status", f"must be one of {choices}, got {body.get('status')!r}") from err
    reason = body.get("failureReason")
    if reason is not None and (not isinstance(reason, str) or status is not DeviceStatus.FAILED):
        raise InvalidRequest("failureReason", "is a string, and only goes with status FAILED")
    store = services(request).store
    bulk = store.devicecontrol.set_status(operation_id, status, reason or f"set to FAILED by {key.name}")
    finish_if_done(store, bulk)
    services(request).wake_supervisor()
    return _answer(request, _operation(request, store.devicecontrol.get(operation_id)), OPERATION_TYPE)


def _collection(
    request: Request,
    rows: list[DeviceControlRow],
    page_size: int,
    current_page: int,
    total: int | None,
    with_total_pages: bool,
) -> dict[str, Any]:
    statistics: dict[str, Any] = {"pageSize": page_size, "currentPage": current_page}
    if with_total_pages and total is not None:
        statistics["totalPages"] = -(-total // page_size)
    more = len(rows) == page_size if total is None else current_page * page_size < total
    body: dict[str, Any] = {
        "self": str(request.url),
        "operations": [_operation(request, row, in_collection=True) for row in rows],
        "statistics": statistics,
    }
    if current_page > 1:
        body["prev"] = str(request.url.include_query_params(currentPage=current_page - 1))
    if more:
        body["next"] = str(request.url.include_query_params(currentPage=current_page + 1))
    return body

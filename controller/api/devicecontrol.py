"""The Cumulocity-style device control API (seed 004): one operation per device, over the same store as /v0.

An operation created here becomes a single-device /v0 operation; each device of a /v0 operation shows up here as
one operation with `bulkOperationId` naming the /v0 operation.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from controller.api.auth import Admin, Reader
from controller.api.contract import errors, json_or
from controller.api.deps import services
from controller.api.devicecontrol_schemas import (
    NewOperation,
    Operation,
    OperationCollection,
    PagingStatistics,
    StatusUpdate,
    dump,
)
from controller.api.links import here, route_url
from controller.api.routing import KeyFirstRoute
from controller.clock import to_iso
from controller.completion import finish_if_done
from controller.errors import InvalidRequest, NotFound, Unprocessable
from controller.fragments import to_fragments, to_operation
from controller.store.devicecontrol import DeviceControlFilters, DeviceControlRow
from shared.arguments import ArgumentsError, validate_arguments
from shared.operations import DeviceStatus, ScheduleType
from shared.text import displayable
from shared.timeouts import DEFAULT_DELIVERY_TIMEOUT_S, default_timeout_s

router = APIRouter(prefix="/devicecontrol", tags=["devicecontrol"], route_class=KeyFirstRoute)

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


def _answers(status: int, media_type: str, model: type[BaseModel], what: str, **extra: Any) -> dict[int | str, Any]:
    """The success entry of `responses=`: `model` as application/json, or as `media_type` when Accept names it."""
    return {status: {"model": model, "description": what, "content": json_or(media_type, model), **extra}}


def _operation_url(request: Request, operation_id: str) -> str:
    return route_url(request, "get_devicecontrol_operation", operation_id=operation_id)


def _operation(request: Request, row: DeviceControlRow, *, in_collection: bool = False) -> Operation:
    """The Operation object; as the seed says, `deviceName` only inside a collection."""
    members = {
        "id": row.id,
        "self": _operation_url(request, row.id),
        "deviceId": row.device_id,
        "deviceName": row.device_id if in_collection else None,
        "status": row.status,
        "creationTime": row.creation_time,
        "bulkOperationId": row.operation_id if row.fragments is None else None,
        "description": row.description,
        "failureReason": row.failure_reason,
    }
    # displayable: what an older version stored may hold text UTF-8 cannot encode; it is shown, not a 500.
    fragments = to_fragments(row.operation_type, displayable(row.arguments), displayable(row.fragments), row.result)
    return Operation.model_validate(fragments | members)


REQUEST_BODY = {"requestBody": {"content": json_or(OPERATION_TYPE, NewOperation)}}
STATUS_BODY = {"requestBody": {"content": json_or(OPERATION_TYPE, StatusUpdate)}}
LOCATION = {"Location": {"description": "The new operation's URL.", "schema": {"type": "string", "format": "uri"}}}


@router.post(
    "/operations",
    status_code=201,
    summary="Create an operation for one device",
    responses={
        **_answers(201, OPERATION_TYPE, Operation, "Created", headers=LOCATION),
        **errors(400, 401, 403, 413, 422, 507),
    },
    openapi_extra=REQUEST_BODY,
)
async def create_devicecontrol_operation(
    body: Annotated[NewOperation, Body()], request: Request, key: Admin
) -> JSONResponse:
    store = services(request).store
    try:
        store.get_device(body.device_id)
    except NotFound as err:
        # Cumulocity documents 422 for a payload naming what does not exist; c8y-api raises ValueError for it.
        raise Unprocessable("deviceId", f"no device {body.device_id!r} is registered") from err
    fragments = body.fragments()
    operation_type, arguments, fragment = to_operation(fragments)
    try:
        validate_arguments(operation_type, arguments)
    except ArgumentsError as err:
        field = err.field.replace("arguments", fragment, 1)
        raise InvalidRequest(field, str(err).replace(err.field, field)) from err
    device_query = {"device_id": body.device_id}
    scheduler = services(request).scheduler
    # Stored and resolved off this loop, as /v0 operations are: it never waits for the write lock (scheduler.py).
    operation_id = await scheduler.create(
        device_query,
        lambda store: store.create_operation(
            operation_type=operation_type,
            schedule_type=ScheduleType.IMMEDIATE,
            schedule_args=None,
            device_query=device_query,
            arguments=arguments,
            created_by=key.name,
            timeout_s=default_timeout_s(operation_type, arguments),
            delivery_timeout_s=DEFAULT_DELIVERY_TIMEOUT_S,
            fragments=fragments,
            description=body.description,
        ),
    )
    try:
        (device,) = store.commands.list_for_operation(operation_id, status=None, limit=1, offset=0).items
        row = store.devicecontrol.get(store.devicecontrol.seq_of_command(device.command_id))
    finally:
        # Only now: a device that answers within milliseconds had the answer read EXECUTING, where a new
        # Cumulocity operation is PENDING.
        scheduler.wake_dispatcher()
    answer = _answer(request, dump(_operation(request, row)), OPERATION_TYPE, status_code=201)
    answer.headers["Location"] = _operation_url(request, row.id)
    return answer


@router.get(
    "/operations/{operation_id}",
    summary="One operation",
    responses={**_answers(200, OPERATION_TYPE, Operation, "The operation"), **errors(401, 404)},
)
async def get_devicecontrol_operation(operation_id: str, request: Request, _: Reader) -> JSONResponse:
    row = services(request).store.devicecontrol.get(operation_id)
    return _answer(request, dump(_operation(request, row)), OPERATION_TYPE)


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d(?P<time>T\d\d:\d\d:\d\d(\.\d+)?(?P<offset>Z|[+-]\d\d:\d\d)?)?", re.IGNORECASE)
DATE_OR_DATE_TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}


def _moment(value: str | None, name: str) -> str | None:
    """An RFC 3339 date and time with its offset, or a date (its midnight UTC, as Cumulocity reads one), as the store
    compares them (UTC, milliseconds). c8y-api's get_last sends dateFrom=1970-01-01."""
    if value is None:
        return None
    written = _RFC3339.fullmatch(value)
    try:
        moment = datetime.fromisoformat(value) if written else None
    except ValueError:
        moment = None
    if written is None or moment is None:
        raise InvalidRequest(name, f"not an ISO 8601 date or date and time: {value!r}")
    if written["time"] is None:
        return to_iso(moment.replace(tzinfo=UTC))
    if written["offset"] is None:
        raise InvalidRequest(name, f"needs an offset, e.g. {value}Z")
    return to_iso(moment)


@dataclass(frozen=True, slots=True)
class CollectionQuery:
    """The filters GET and DELETE of the collection share."""

    filters: DeviceControlFilters
    contradictory: bool
    """deviceId and agentId name different devices: nothing matches."""


async def collection_query(
    device_id: Annotated[str | None, Query(alias="deviceId", min_length=1)] = None,
    agent_id: Annotated[str | None, Query(alias="agentId", min_length=1)] = None,
    status: DeviceStatus | None = None,
    fragment_type: Annotated[str | None, Query(alias="fragmentType")] = None,
    date_from: Annotated[str | None, Query(alias="dateFrom", json_schema_extra=DATE_OR_DATE_TIME)] = None,
    date_to: Annotated[str | None, Query(alias="dateTo", json_schema_extra=DATE_OR_DATE_TIME)] = None,
    bulk_operation_id: Annotated[str | None, Query(alias="bulkOperationId")] = None,
) -> CollectionQuery:
    """The seed's parameter names; a coroutine, so that FastAPI does not run it in a worker thread."""
    # Each Tether device runs its own agent, so agentId names a device too; both given must agree.
    return CollectionQuery(
        DeviceControlFilters(
            device_id=device_id if device_id is not None else agent_id,
            status=status,
            fragment_type=fragment_type,
            date_from=_moment(date_from, "dateFrom"),
            date_to=_moment(date_to, "dateTo"),
            bulk_operation_id=bulk_operation_id,
        ),
        contradictory=device_id is not None and agent_id is not None and device_id != agent_id,
    )


Filters = Annotated[CollectionQuery, Depends(collection_query)]


@router.get(
    "/operations",
    summary="Operations, first in first out",
    responses={**_answers(200, COLLECTION_TYPE, OperationCollection, "A page of operations"), **errors(400, 401)},
)
async def list_devicecontrol_operations(
    request: Request,
    _: Reader,
    query: Filters,
    revert: bool = False,
    page_size: Annotated[int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE)] = 5,
    current_page: Annotated[int, Query(alias="currentPage", ge=1, le=MAX_PAGE)] = 1,
    with_total_pages: Annotated[bool, Query(alias="withTotalPages")] = False,
    with_total_elements: Annotated[bool, Query(alias="withTotalElements")] = False,
) -> JSONResponse:
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
    more = len(rows) == page_size if total is None or not with_total else current_page * page_size < total
    collection = OperationCollection.model_validate(
        {
            "self": here(request),
            "operations": [_operation(request, row, in_collection=True) for row in rows],
            "statistics": PagingStatistics.model_validate(
                {
                    "pageSize": page_size,
                    "currentPage": current_page,
                    "totalPages": -(-(total or 0) // page_size) if with_total_pages else None,
                    "totalElements": total if with_total_elements else None,
                }
            ),
            "prev": here(request, currentPage=current_page - 1) if current_page > 1 else None,
            "next": here(request, currentPage=current_page + 1) if more else None,
        }
    )
    return _answer(request, dump(collection), COLLECTION_TYPE)


@router.delete(
    "/operations",
    status_code=204,
    summary="Delete the operations the filters select",
    responses={204: {"description": "Deleted"}, **errors(400, 401, 403, 507)},
)
async def delete_devicecontrol_operations(request: Request, key: Admin, query: Filters) -> Response:
    """Unfinished ones end FAILED "deleted by <key>", their retained commands are cleared and their devices told."""
    if not query.contradictory:
        store = services(request).store
        with store.transaction():  # all or (a full disk: 507) nothing
            for operation_id in store.devicecontrol.hide(query.filters, f"deleted by {key.name}"):
                finish_if_done(store, operation_id)
        services(request).wake_supervisor()
    return Response(status_code=204)


@router.put(
    "/operations/{operation_id}",
    summary="Change an operation's status",
    responses={
        **_answers(200, OPERATION_TYPE, Operation, "The operation"),
        **errors(400, 401, 403, 404, 409, 413, 507),
    },
    openapi_extra=STATUS_BODY,
)
async def update_devicecontrol_operation(
    operation_id: str, body: Annotated[StatusUpdate, Body()], request: Request, key: Admin
) -> JSONResponse:
    if body.failure_reason is not None and body.status is not DeviceStatus.FAILED:
        raise InvalidRequest("failureReason", "only goes with status FAILED")
    store = services(request).store
    reason = body.failure_reason or f"set to FAILED by {key.name}"
    with store.transaction():  # all or (a full disk: 507) nothing
        finish_if_done(store, store.devicecontrol.set_status(operation_id, body.status, reason))
    services(request).wake_supervisor()
    return _answer(request, dump(_operation(request, store.devicecontrol.get(operation_id))), OPERATION_TYPE)

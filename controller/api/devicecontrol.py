"""The Cumulocity-style device control API (seed 004): one operation per device, over the same store as /v0.

An operation created here becomes a single-device /v0 operation; each device of a /v0 operation shows up here as
one operation with `bulkOperationId` naming the /v0 operation.
"""

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from controller.api.auth import Admin, Reader
from controller.api.contract import errors, json_or
from controller.api.deps import services
from controller.api.devicecontrol_query import DEFAULT_PAGE_SIZE, Filters
from controller.api.devicecontrol_schemas import (
    FRAGMENT_NAME,
    NewOperation,
    Operation,
    OperationCollection,
    OperationUpdate,
    PagingStatistics,
    dump,
)
from controller.api.links import here, route_url
from controller.api.routing import KeyFirstRoute
from controller.completion import finish_if_done
from controller.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from controller.fragments import STANDARD, to_fragments, to_operation
from controller.store import Store
from controller.store.devicecontrol import DeviceControlRow
from shared.arguments import ArgumentsError, validate_arguments
from shared.operations import DeviceStatus, ScheduleType
from shared.text import displayable
from shared.timeouts import DEFAULT_DELIVERY_TIMEOUT_S, default_timeout_s

router = APIRouter(prefix="/devicecontrol", tags=["devicecontrol"], route_class=KeyFirstRoute)

OPERATION_TYPE = "application/vnd.com.nsn.cumulocity.operation+json"
COLLECTION_TYPE = "application/vnd.com.nsn.cumulocity.operationcollection+json"
DEVICE_ID_TYPE = "tether_DeviceId"
"""The type of a device's one external id, its Tether device id."""


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


def _created_row(store: Store, operation_id: str) -> DeviceControlRow:
    """The one device operation a new Cumulocity operation made."""
    (device,) = store.commands.list_for_operation(operation_id, status=None, limit=1, offset=0).items
    return store.devicecontrol.get(store.devicecontrol.seq_of_command(device.command_id))


def _operation(
    request: Request, row: DeviceControlRow, *, in_collection: bool = False, by_agent: bool = False
) -> Operation:
    """The Operation object; as the seed says, `deviceName` only inside a collection, and `deviceExternalIDs` only
    inside one queried with agentId."""
    external_ids = {"externalIds": [{"externalId": row.device_id, "type": DEVICE_ID_TYPE}]}
    members = {
        "id": row.id,
        "self": _operation_url(request, row.id),
        "deviceId": row.device_id,
        "deviceName": displayable(row.device_name) if in_collection else None,
        "deviceExternalIDs": external_ids if by_agent else None,
        "status": row.status,
        "creationTime": row.creation_time,
        "bulkOperationId": row.operation_id if row.fragments is None else None,
        "description": row.description,
        "failureReason": row.failure_reason,
    }
    return Operation.model_validate(_running(row) | row.updated_fragments | members)


def _running(row: DeviceControlRow) -> dict[str, Any]:
    """The fragments of what the operation runs, as created (a finished c8y_Command with its output)."""
    # displayable: what an older version stored may hold text UTF-8 cannot encode; it is shown, not a 500.
    return to_fragments(row.operation_type, displayable(row.arguments), displayable(row.fragments), row.result)


REQUEST_BODY = {"requestBody": {"content": json_or(OPERATION_TYPE, NewOperation)}}
FRAGMENT_PATTERN = re.compile(FRAGMENT_NAME)
UPDATE_BODY = {"requestBody": {"content": json_or(OPERATION_TYPE, OperationUpdate)}}
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
    try:
        await services(request).database.read(lambda store: store.devices.get(body.device_id))
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
    row = await scheduler.create(
        device_query,
        lambda store: store.operations.create(
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
        _created_row,
    )
    # Only now: a device that answers within milliseconds would have had the answer read EXECUTING, where a new
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
    row = await services(request).database.read(lambda store: store.devicecontrol.get(operation_id))
    return _answer(request, dump(_operation(request, row)), OPERATION_TYPE)


@router.get(
    "/operations",
    summary="Operations, first in first out",
    responses={**_answers(200, COLLECTION_TYPE, OperationCollection, "A page of operations"), **errors(400, 401)},
)
async def list_devicecontrol_operations(request: Request, _: Reader, query: Filters) -> JSONResponse:
    # Read and rendered on a reading connection's thread: a page of 2,000 operations is also a fifth of a second of
    # Python, which on the loop held up every request (docs/performance.md, bench/healthz_during_delete.py).
    page = await services(request).database.read(lambda store: _collection(request, store, query))
    return _answer(request, page, COLLECTION_TYPE)


def _collection(request: Request, store: Store, query: Filters) -> dict[str, Any]:
    """The page of operations `query` selects, as the JSON object to send."""
    page = query.page(DEFAULT_PAGE_SIZE)
    size = page.limit or DEFAULT_PAGE_SIZE
    with_total = query.with_total_pages or query.with_total_elements
    rows: list[DeviceControlRow] = []
    total: int | None = 0
    if not query.contradictory:
        rows, total = store.devicecontrol.page(query.filters, page, with_total=with_total)
    more = len(rows) == size if total is None or not with_total else query.current_page * size < total
    operations = [_operation(request, row, in_collection=True, by_agent=query.by_agent) for row in rows]
    collection = OperationCollection.model_validate(
        {
            "self": here(request),
            "operations": operations,
            "statistics": PagingStatistics.model_validate(
                {
                    "pageSize": size,
                    "currentPage": query.current_page,
                    "totalPages": -(-(total or 0) // size) if query.with_total_pages else None,
                    "totalElements": total if query.with_total_elements else None,
                }
            ),
            "prev": here(request, currentPage=query.current_page - 1) if query.current_page > 1 else None,
            "next": here(request, currentPage=query.current_page + 1) if more else None,
        }
    )
    return dump(collection)


@router.delete(
    "/operations",
    status_code=204,
    summary="Delete the operations the filters select",
    responses={204: {"description": "Deleted"}, **errors(400, 401, 403, 507)},
)
async def delete_devicecontrol_operations(request: Request, key: Admin, query: Filters) -> Response:
    """The parameters are GET's: what GET lists with them is deleted, every match when pageSize is absent.

    Unfinished ones end FAILED "deleted by <key>", their retained commands are cleared and their devices told."""
    if not query.contradictory:

        def delete(store: Store) -> None:
            with store.transaction():  # all or (a full disk: 507) nothing
                for operation_id in store.devicecontrol.hide(query.filters, f"deleted by {key.name}", query.page(None)):
                    finish_if_done(store, operation_id)

        # Seconds for a large fleet: on the API's writing connection, while its loop and readers keep answering.
        await services(request).database.write(delete)
        services(request).wake_supervisor()
    return Response(status_code=204)


@router.put(
    "/operations/{operation_id}",
    summary="Change an operation's status, add or replace its fragments",
    responses={
        **_answers(200, OPERATION_TYPE, Operation, "The operation"),
        **errors(400, 401, 403, 404, 409, 413, 507),
    },
    openapi_extra=UPDATE_BODY,
)
async def update_devicecontrol_operation(
    operation_id: str, body: Annotated[OperationUpdate, Body()], request: Request, key: Admin
) -> JSONResponse:
    if body.failure_reason is not None and body.status is not DeviceStatus.FAILED:
        raise InvalidRequest("failureReason", "only goes with status FAILED")
    reason = body.failure_reason or f"set to FAILED by {key.name}"
    max_body_bytes = services(request).max_body_bytes

    def update(store: Store) -> DeviceControlRow:
        changes = _fragment_changes(store.devicecontrol.get(operation_id), body)
        with store.transaction():  # all or (a full disk: 507) nothing
            if changes:
                store.devicecontrol.update_fragments(operation_id, changes, max_body_bytes)
            if body.status is not None:
                finish_if_done(store, store.devicecontrol.set_status(operation_id, body.status, reason))
        return store.devicecontrol.get(operation_id)

    row = await services(request).database.write(update)
    services(request).wake_supervisor()
    return _answer(request, dump(_operation(request, row)), OPERATION_TYPE)


def _fragment_changes(row: DeviceControlRow, body: OperationUpdate) -> dict[str, Any]:
    """The fragments the PUT adds, replaces or (None) removes. What the operation already shows may be sent again as
    it is; changing what it runs, or its description, conflicts with the operation as created (409)."""
    if body.description is not None and body.description != row.description:
        raise Conflict(f"operation {row.id}: its description is set when it is created and cannot be changed")
    running = _running(row)
    changes: dict[str, Any] = {}
    for name, value in body.fragments().items():
        if not FRAGMENT_PATTERN.fullmatch(name):
            raise InvalidRequest(name, f"a fragment's name must match {FRAGMENT_NAME}")
        if name in running:
            if value != running[name]:
                raise Conflict(f"operation {row.id}: {name} is what it runs and cannot be changed")
        elif name in STANDARD:
            raise Conflict(f"operation {row.id}: {name} says what an operation runs and cannot be added to one")
        elif value != row.updated_fragments.get(name):
            changes[name] = value
    return changes

"""The Esper-style /v0 routes: operations and devices."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from controller.api.auth import Admin, Reader
from controller.api.contract import errors
from controller.api.database import ApiDatabase
from controller.api.deps import services
from controller.api.links import here
from controller.api.routing import KeyFirstRoute
from controller.api.schemas import DeviceOperationOut, DeviceOut, Envelope, OperationCreate, OperationOut, PageOut
from controller.errors import InvalidRequest
from controller.store import Store
from controller.store.records import DeviceOperationRecord, OperationRecord, Page
from shared.arguments import ArgumentsError, validate_arguments
from shared.messages import utc_now
from shared.operations import DeviceStatus, OperationState, OperationType, ScheduleType, TimeType
from shared.schedule import ScheduleError, Window, valid_zone
from shared.timeouts import DEFAULT_DELIVERY_TIMEOUT_S, default_timeout_s

router = APIRouter(prefix="/v0", route_class=KeyFirstRoute)

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
MAX_OFFSET = 1_000_000_000
"""Beyond any fleet's history; it keeps the row offset within what SQLite can take."""
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many items to skip.")]


CREATE_EXAMPLES = {
    "converge": {
        "summary": "Seed 000's example",
        "value": {
            "operation_type": "CONVERGE",
            "schedule_type": "IMMEDIATE",
            "operation_device_query": {"device_id": "1234"},
            "arguments": {"converge_with_provision": False, "sample_key": "sample"},
        },
    },
    "lock": {
        "summary": "Lock one device",
        "value": {"operation_type": "LOCK", "operation_device_query": {"device_id": "1234"}},
    },
    "script": {
        "summary": "A script on the devices tagged lobby",
        "value": {
            "operation_type": "RUN_SHELL_SCRIPT",
            "operation_device_query": {"tags": "lobby"},
            "arguments": {"script": "uname -a; uptime"},
        },
    },
}


def _database(request: Request) -> ApiDatabase:
    return services(request).database


def _links(request: Request, limit: int, offset: int, total: int) -> tuple[str | None, str | None]:
    following = offset + limit
    next_url = here(request, limit=limit, offset=following) if following < total else None
    previous = here(request, limit=limit, offset=max(offset - limit, 0)) if offset > 0 else None
    return next_url, previous


@router.post(
    "/operations/",
    status_code=status.HTTP_201_CREATED,
    response_model=Envelope[OperationOut],
    responses=errors(400, 401, 403, 413, 507),
    openapi_extra={"requestBody": {"content": {"application/json": {"examples": CREATE_EXAMPLES}}}},
)
async def create_operation(body: OperationCreate, request: Request, key: Admin) -> Envelope[OperationOut]:
    """Answered once the device query is resolved (`RESOLVED`), or at once in state `CREATED` when the query may select
    more than 20,000 devices: the controller then resolves it right after (docs/operations-lifecycle.md)."""
    schedule_args = _schedule_args(body, key.time_zone)
    try:
        validate_arguments(body.operation_type, body.arguments)
    except ArgumentsError as err:
        raise InvalidRequest(err.field, str(err)) from err
    scheduler = services(request).scheduler
    # Checked, stored and resolved off this loop, which keeps answering meanwhile (controller/scheduler.py).
    operation = await scheduler.create(
        body.operation_device_query,
        lambda store: store.operations.create(
            operation_type=body.operation_type,
            schedule_type=body.schedule_type,
            schedule_args=schedule_args,
            device_query=body.operation_device_query,
            arguments=body.arguments,
            created_by=key.name,
            timeout_s=body.timeout_s or default_timeout_s(body.operation_type, body.arguments),
            delivery_timeout_s=body.delivery_timeout_s or DEFAULT_DELIVERY_TIMEOUT_S,
            rollout=None if body.rollout is None else body.rollout.model_dump(exclude_none=True),
        ),
        lambda store, operation_id: store.operations.get(operation_id),
    )
    scheduler.wake_dispatcher()
    return Envelope(content=OperationOut.of(operation))


def _schedule_args(body: OperationCreate, key_zone: str | None) -> dict[str, Any] | None:
    """The validated schedule as stored and returned, with window_start_time and window_end_time filled in.

    Console time is the creator's: the request's `time_zone`, else the API key's; kept with the schedule."""
    given = body.schedule_args
    if body.schedule_type is ScheduleType.IMMEDIATE:
        if given is not None and given.model_dump(exclude_none=True):
            raise InvalidRequest("schedule_args", "is only used with schedule_type WINDOW")
        return None
    if given is None:
        raise InvalidRequest(
            "schedule_args", "a WINDOW schedule needs schedule_args with start_datetime and end_datetime"
        )
    try:
        window = Window.from_request(
            start=given.start_datetime,
            end=given.end_datetime,
            time_type=given.time_type,
            days=given.days,
            now=utc_now(),
            time_zone=given.time_zone if given.time_zone is not None else _console_zone(key_zone, given.time_type),
        )
    except ScheduleError as err:
        raise InvalidRequest(err.field, str(err)) from err
    return window.describe()


def _console_zone(key_zone: str | None, time_type: TimeType | None) -> str | None:
    """The key's zone is the creator's, which only console time reads; one this host's time zone database no longer
    has (checked when the key was made) falls back to start_datetime's offset rather than refusing every request."""
    console = time_type in (None, TimeType.CONSOLE)
    return key_zone if console and key_zone is not None and valid_zone(key_zone) else None


@router.post(
    "/operations/{operation_id}/cancel/",
    response_model=Envelope[OperationOut],
    responses=errors(401, 403, 404, 409, 507),
)
async def cancel_operation(operation_id: str, request: Request, key: Admin) -> Envelope[OperationOut]:
    """Devices that have not started end FAILED "cancelled by <key>"; running ones are asked to stop."""

    def cancel(store: Store) -> OperationRecord:
        store.control.cancel(operation_id, key.name)
        return store.operations.get(operation_id)

    operation = await _database(request).write(cancel)
    services(request).wake_supervisor()
    return Envelope(content=OperationOut.of(operation))


@router.get("/operations/", response_model=Envelope[PageOut[OperationOut]], responses=errors(400, 401))
async def list_operations(
    request: Request,
    _: Reader,
    state: OperationState | None = None,
    operation_type: OperationType | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> Envelope[PageOut[OperationOut]]:
    page = await _database(request).read(
        lambda store: store.operations.page(state=state, operation_type=operation_type, limit=limit, offset=offset)
    )
    next_url, previous = _links(request, limit, offset, page.total)
    results = [OperationOut.of(record) for record in page.items]
    return Envelope(content=PageOut(count=page.total, next=next_url, previous=previous, results=results))


@router.get("/operations/{operation_id}/", response_model=Envelope[OperationOut], responses=errors(401, 404))
async def get_operation(operation_id: str, request: Request, _: Reader) -> Envelope[OperationOut]:
    return Envelope(
        content=OperationOut.of(await _database(request).read(lambda store: store.operations.get(operation_id)))
    )


@router.get(
    "/operations/{operation_id}/devices/",
    response_model=Envelope[PageOut[DeviceOperationOut]],
    responses=errors(400, 401, 404),
)
async def list_operation_devices(
    operation_id: str,
    request: Request,
    _: Reader,
    status: DeviceStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Envelope[PageOut[DeviceOperationOut]]:

    def read(store: Store) -> Page[DeviceOperationRecord]:
        store.operations.get(operation_id)  # 404 for an unknown operation rather than an empty page
        return store.commands.list_for_operation(operation_id, status=status, limit=limit, offset=offset)

    page = await _database(request).read(read)
    next_url, previous = _links(request, limit, offset, page.total)
    results = [DeviceOperationOut.model_validate(record) for record in page.items]
    return Envelope(content=PageOut(count=page.total, next=next_url, previous=previous, results=results))


@router.get("/devices/", response_model=Envelope[PageOut[DeviceOut]], responses=errors(400, 401))
async def list_devices(
    request: Request, _: Reader, online: bool | None = None, limit: Limit = 100, offset: Offset = 0
) -> Envelope[PageOut[DeviceOut]]:
    page = await _database(request).read(lambda store: store.devices.page(online=online, limit=limit, offset=offset))
    next_url, previous = _links(request, limit, offset, page.total)
    results = [DeviceOut.model_validate(record) for record in page.items]
    return Envelope(content=PageOut(count=page.total, next=next_url, previous=previous, results=results))


@router.get("/devices/{device_id}/", response_model=Envelope[DeviceOut], responses=errors(401, 404))
async def get_device(device_id: str, request: Request, _: Reader) -> Envelope[DeviceOut]:
    device = await _database(request).read(lambda store: store.devices.get(device_id))
    return Envelope(content=DeviceOut.model_validate(device))

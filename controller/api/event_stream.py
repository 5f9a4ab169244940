"""GET /v0/operations/{id}/events: an operation's events as server-sent events, from a snapshot to its end."""

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from controller.api.auth import Reader
from controller.api.contract import errors
from controller.api.deps import services
from controller.events import OperationEvents, snapshot
from controller.store import Store
from shared.events import OperationEvent, OperationEventKind

router = APIRouter(prefix="/v0")

KEEPALIVE_S = 15.0
DESCRIPTION = (
    "A text/event-stream of OperationEvent objects (docs/mqtt-api.md#operation-events): `event: snapshot` first, "
    "then `activity` and `stats` events; the stream ends after the event whose state is COMPLETED or FAILED."
)


@router.get(
    "/operations/{operation_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"description": DESCRIPTION, "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **errors(401, 404),
    },
)
async def stream_operation_events(operation_id: str, request: Request, _: Reader) -> StreamingResponse:
    """Server-sent events: a `snapshot`, then `activity` and `stats` events until the operation ends."""
    found = services(request)
    snapshot(found.store, operation_id)  # 404 for an unknown operation, before the stream starts
    return StreamingResponse(
        _event_stream(found.events, found.store, operation_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _event_stream(events: OperationEvents, store: Store, operation_id: str) -> AsyncIterator[str]:
    # Subscribed here rather than in the route, so that a stream that never starts leaves no subscription behind;
    # the snapshot is taken right after, with no await between, so that no event falls between the two.
    queue = events.subscribe(operation_id)
    try:
        first = last = snapshot(store, operation_id)
        yield _frame(first)
        if first.ended:
            return
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    event = await queue.get()
            except TimeoutError:
                yield ": keep-alive\n\n"  # a comment: keeps proxies and idle timeouts from closing the stream
                continue
            if event is None:  # the controller is stopping
                return
            unseen = _unseen(event, first, last)
            if unseen is None:
                continue  # the snapshot, or what followed it, already shows it
            yield _frame(unseen)
            last = unseen
            if unseen.ended:
                return
    finally:
        events.unsubscribe(operation_id, queue)


def _unseen(event: OperationEvent, snapshot: OperationEvent, last: OperationEvent) -> OperationEvent | None:
    """What of `event` the stream has not shown yet, given its snapshot and the last event it sent; None if nothing.

    The hub runs on another thread, so it may have read an event just before the snapshot and delivered it after:
    the snapshot already shows it. An activity entry the snapshot includes may also have been read after it, in the
    same read as newer counts (ingest and the hub run on different threads): those counts go out as a stats event.
    """
    if event.at < snapshot.at:
        return None
    if event.activity is None or snapshot.activity is None or event.activity.seq > snapshot.activity.seq:
        return event
    if (event.devices, event.operation_stats) == (last.devices, last.operation_stats):
        return None
    # The entry's state is an older one than the stream has shown: the counts go out with the latest.
    return event.model_copy(
        update={"event": OperationEventKind.STATS, "activity": None, "state": last.state, "reason": last.reason}
    )


def _frame(event: OperationEvent) -> str:
    return f"event: {event.event}\ndata: {event.model_dump_json()}\n\n"

"""GET /v0/operations/{id}/events: an operation's events as server-sent events, from a snapshot to its end."""

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from controller.api.auth import Reader
from controller.api.contract import errors
from controller.api.database import ApiDatabase
from controller.api.deps import services
from controller.events import MAX_QUEUED, OperationEvents, Subscription, snapshot
from shared.events import OperationEvent, OperationEventKind

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v0")

KEEPALIVE_S = 15.0
DESCRIPTION = (
    "A text/event-stream of OperationEvent objects (docs/mqtt-api.md#operation-events): `event: snapshot` first, "
    "then `activity` and `stats` events; the stream ends after the event whose state is COMPLETED or FAILED."
)


@router.get(
    "/operations/{operation_id}/events",
    response_class=StreamingResponse,  # for the document only: what the route returns is an EventStream
    responses={
        200: {"description": DESCRIPTION, "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **errors(401, 404),
    },
)
async def stream_operation_events(operation_id: str, request: Request, _: Reader) -> Response:
    """Server-sent events: a `snapshot`, then `activity` and `stats` events until the operation ends."""
    found = services(request)
    # 404 for an unknown operation, before the stream starts
    await found.database.read(lambda store: store.operations.get(operation_id))
    return EventStream(found.events, found.database, operation_id)


class EventStream(Response):
    """The response: it ends with the operation, when its client disconnects, or when its client stops reading.

    A client that stops reading makes the write of a frame wait (the server's buffers are full) while events queue
    up for it: once MAX_QUEUED are waiting, its subscription is dropped and the response ends at once, mid-write,
    which closes the connection. The client sees the stream end without a final event, and may open another.
    """

    media_type = "text/event-stream"

    def __init__(self, events: OperationEvents, database: ApiDatabase, operation_id: str) -> None:
        # As StreamingResponse does: no body, so no Content-Length.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._events = events
        self._database = database
        self._operation_id = operation_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Subscribed here rather than in the route, so that a stream that never starts leaves no subscription behind.
        subscription = self._events.subscribe(self._operation_id)
        frames = _frames(subscription, self._database, self._operation_id)
        writer = asyncio.create_task(self._write(frames, send))
        ends = [writer, asyncio.create_task(_disconnect(receive)), asyncio.create_task(subscription.dropped.wait())]
        try:
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in ends:
                task.cancel()
            await asyncio.wait(ends)
            await frames.aclose()
            self._events.unsubscribe(subscription)
        if subscription.dropped.is_set():
            log.warning(
                "dropped an event stream of operation %s: its client fell %d events behind",
                self._operation_id,
                MAX_QUEUED,
            )
        elif not writer.cancelled() and (error := writer.exception()) is not None:
            raise error

    async def _write(self, frames: AsyncIterator[str], send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for frame in frames:
            await send({"type": "http.response.body", "body": frame.encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _frames(subscription: Subscription, database: ApiDatabase, operation_id: str) -> AsyncGenerator[str, None]:
    # The snapshot is taken after subscribing, so that no event falls between the two; _unseen skips what both show.
    first = last = await database.read(lambda store: snapshot(store, operation_id))
    yield _frame(first)
    if first.ended:
        return
    while True:
        try:
            async with asyncio.timeout(KEEPALIVE_S):
                event = await subscription.queue.get()
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

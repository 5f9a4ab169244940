"""The REST API on a thread and event loop of its own, so requests stay fast while dispatch and ingest are busy.

Sharing the main loop, a GET waited behind every batch of statuses and commands: ~100 ms at the median while a
100,000-device operation ran. On its own loop it waits only for the interpreter lock, which the main thread hands
over every `SWITCH_INTERVAL_S`. Its SQL runs on connections of its own, each on a store thread (WAL lets them read
while ingest writes; controller/api/database.py), and it reaches the main loop only through `call_soon_threadsafe`
(see `on_main_loop`).
"""

import asyncio
import socket
import sys
import threading
from collections.abc import Callable

import uvicorn

SWITCH_INTERVAL_S = 0.0002
"""How long a busy thread keeps the interpreter lock from a waiting one (Python's default is 5 ms)."""


class ApiStoppedUnexpectedly(RuntimeError):
    pass


def on_main_loop(loop: asyncio.AbstractEventLoop, call: Callable[[], None]) -> Callable[[], None]:
    """`call`, made safe to call from the API's thread: it runs on `loop`."""

    def schedule() -> None:
        loop.call_soon_threadsafe(call)

    return schedule


async def serve_in_thread(server: uvicorn.Server, http_socket: socket.socket) -> None:
    """Run `server` on its own thread until it stops; set `server.should_exit` to stop it.

    Raises ApiStoppedUnexpectedly if it stops without being asked, or with the error it failed with.
    """
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[BaseException | None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if not ended.done():
            ended.set_result(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            asyncio.run(server.serve(sockets=[http_socket]))
        except BaseException as err:  # reported to the main loop, which stops the controller with it
            error = err
        loop.call_soon_threadsafe(settle, error)

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    thread = threading.Thread(target=run, name="tether-api", daemon=True)
    thread.start()
    try:
        error = await asyncio.shield(ended)
    except asyncio.CancelledError:
        server.should_exit = True
        await asyncio.shield(ended)
        raise
    if error is not None:
        raise ApiStoppedUnexpectedly(f"the REST API failed: {error}") from error
    if not server.should_exit:
        raise ApiStoppedUnexpectedly("the REST API stopped without being asked to")

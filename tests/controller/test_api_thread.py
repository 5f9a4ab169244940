"""The REST API's own thread: a real uvicorn server on a real socket, answering while the main loop is blocked."""

import asyncio
import socket
import threading
import time
from typing import Any

import httpx
import pytest
import uvicorn

from controller.api_thread import ApiStoppedUnexpectedly, on_main_loop, serve_in_thread
from controller.broker import ListenAddress
from controller.service import bind_http
from tests.fixtures_brokers import free_port


async def answer_thread_name(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = threading.current_thread().name.encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def server() -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(answer_thread_name, lifespan="off", log_level="warning"))


def test_requests_are_answered_on_the_api_thread_while_the_main_loop_is_blocked() -> None:
    port = free_port()

    async def scenario() -> tuple[str, float, float]:
        web = server()
        serving = asyncio.create_task(serve_in_thread(web, bind_http(ListenAddress("127.0.0.1", port))))
        await asyncio.sleep(0.5)
        answers: list[tuple[str, float]] = []
        client = threading.Thread(
            target=lambda: answers.append((httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text, time.monotonic()))
        )
        client.start()
        time.sleep(1.0)  # noqa: ASYNC251 -- blocking the main loop is the point: the API must answer meanwhile
        unblocked = time.monotonic()
        client.join(5)
        web.should_exit = True
        await asyncio.wait_for(serving, 5)
        ((answer, answered_at),) = answers
        return answer, answered_at, unblocked

    answer, answered_at, unblocked = asyncio.run(scenario())
    assert answer == "tether-api"
    assert answered_at < unblocked


def test_a_server_that_fails_stops_the_controller_with_its_error() -> None:
    closed = socket.socket()
    closed.close()

    async def scenario() -> None:
        await asyncio.wait_for(serve_in_thread(server(), closed), 5)

    with pytest.raises(ApiStoppedUnexpectedly, match="the REST API failed"):
        asyncio.run(scenario())


def test_calls_from_the_api_thread_run_on_the_main_loop() -> None:
    async def scenario() -> tuple[str, str]:
        ran_on = asyncio.get_running_loop().create_future()
        call = on_main_loop(asyncio.get_running_loop(), lambda: ran_on.set_result(threading.current_thread().name))
        other = threading.Thread(target=call, name="caller")
        other.start()
        other.join()
        return threading.current_thread().name, await asyncio.wait_for(ran_on, 5)

    main, ran_on = asyncio.run(scenario())
    assert ran_on == main

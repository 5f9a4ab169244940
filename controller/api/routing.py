"""The route class of the JSON APIs: a body is read only from a client whose key is valid, only up to the size limit,
and refused when it holds text that UTF-8 cannot encode.

FastAPI reads and parses a route's body before it runs the route's dependencies, authentication among them: an
anonymous client could make the controller hold and parse a body of any size. Here the key is checked first, and its
role where the route needs an admin key (the route's own dependencies check again after); then the body is read in
chunks and refused with 413 past the limit, whether or not it declared its length, and with 408 if it has not all
arrived within BODY_TIMEOUT_S; a body that is not sent as JSON (Content-Type application/json or a +json type) is
refused with 415, one not in UTF-8 with 400; FastAPI then parses what was read.
"""

import asyncio
import email.message
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect
from starlette.types import Message

from controller.api.auth import admin, authenticated, basic, bearer
from controller.api.deps import services
from controller.errors import InvalidRequest, TooLarge, TooSlow, UnsupportedMediaType
from shared.text import DESCRIPTION, unencodable_field

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

BODY_TIMEOUT_S = 30.0
"""For a whole body: the largest the default limit allows (1 MiB) needs 35 KB/s, and most are a few hundred bytes.
Without it a key holder sending a byte now and then held a connection for as long as it liked."""

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
"""JSON can only carry a lone surrogate as such an escape; a body without one needs no second look."""


class KeyFirstRoute(APIRoute):
    """For routers whose every route needs an API key; routes without a body are left as FastAPI makes them."""

    def get_route_handler(self) -> Handler:
        handler: Handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        needs_admin = _depends_on(self.dependant, admin)

        async def key_first(request: Request) -> Response:
            key = await authenticated(request, await bearer(request), await basic(request))
            if needs_admin:
                await admin(key)
            body = await _read_within(request, services(request).max_body_bytes)
            _refuse_unless_json(body, request.headers.get("content-type"))
            _refuse_unless_utf8(body)
            _refuse_unencodable(body)
            return await handler(Request(request.scope, _replay(body)))

        return key_first


def _depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


async def _read_within(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError as err:
        raise TooSlow(f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s") from err
    except ClientDisconnect as err:
        # Nobody reads the answer; a 400 keeps it out of the error log, where FastAPI's own reading put it too.
        raise InvalidRequest("body", "the connection closed before the whole body arrived") from err
    return b"".join(chunks)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"the body exceeds the {limit}-byte limit")


def _refuse_unless_json(body: bytes, content_type: str | None) -> None:
    """415 for a body sent as anything but JSON, as Cumulocity answers; an empty body is FastAPI's 400 (required)."""
    if not body:
        return
    declared = email.message.Message()
    declared["content-type"] = content_type or "none/given"
    subtype = declared.get_content_subtype()
    if declared.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
        given = repr(content_type) if content_type else "none"
        raise UnsupportedMediaType(f"send JSON, with Content-Type application/json or a +json type (given: {given})")


def _refuse_unless_utf8(body: bytes) -> None:
    """JSON between systems is UTF-8 (RFC 8259). json.loads would read bytes holding NULs as UTF-16 or -32, and let
    UTF-8's bytes for a lone surrogate through: neither shows the escape _refuse_unencodable looks for."""
    nul = body.find(b"\0")  # no JSON text holds one; UTF-16 and -32 are full of them
    if nul >= 0:
        raise InvalidRequest("body", f"not UTF-8 at byte {nul}: send JSON as UTF-8")
    try:
        body.decode()
    except UnicodeDecodeError as err:
        raise InvalidRequest("body", f"not UTF-8 at byte {err.start}: send JSON as UTF-8") from err


def _refuse_unencodable(body: bytes) -> None:
    if _SURROGATE_ESCAPE.search(body) is None:
        return
    try:
        parsed = json.loads(body)
    except ValueError:
        return  # not JSON: FastAPI's parsing refuses it, in its own words
    field = unencodable_field(parsed)
    if field is not None:
        raise InvalidRequest(field, DESCRIPTION)


def _replay(body: bytes) -> Callable[[], Coroutine[Any, Any, Message]]:
    """A `receive` that hands FastAPI the body already read."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive

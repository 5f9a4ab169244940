"""One rule for trailing slashes: every route answers at its path with or without one, the same way, never a redirect.

Seed 000 writes /v0 paths with a trailing slash (`/v0/operations/`), seed 004 writes /devicecontrol paths both ways
(`POST /devicecontrol/operations/`, `GET /devicecontrol/operations`), and clients follow whichever they were written
against. Starlette's own answer to the other form is a 307 redirect, which many clients do not follow for a POST, or
follow without its body; a route declared at one form only answered the other with a 405. Here a path no route knows
is served as the route at its other form, before routing, so the answer, its links and its errors are the route's own.
"""

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send


class EitherSlash:
    """ASGI middleware: a path no route matches, with its trailing slash added or removed, if a route matches that."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = _served(scope, scope["app"].router.routes)
        await self.app(scope, receive, send)


def _served(scope: Scope, routes: list[BaseRoute]) -> Scope:
    """`scope` itself, or with its path's other form when only that form names a route (for any method)."""
    path: str = scope["path"]
    if path == "/" or _known(scope, routes):
        return scope
    other = path[:-1] if path.endswith("/") else path + "/"
    raw: bytes = scope.get("raw_path") or path.encode()
    other_raw = raw[:-1] if raw.endswith(b"/") else raw + b"/"
    toggled = {**scope, "path": other, "raw_path": other_raw}
    return toggled if _known(toggled, routes) else scope


def _known(scope: Scope, routes: list[BaseRoute]) -> bool:
    # PARTIAL is a path match with another method: that route's 405, with its Allow header, is the right answer.
    return any(route.matches(scope)[0] is not Match.NONE for route in routes)

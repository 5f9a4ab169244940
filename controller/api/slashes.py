"""One rule for trailing slashes: every route answers at its path with or without one, the same way, never a redirect.

Seed 000 writes /v0 paths with a trailing slash (`/v0/operations/`), seed 004 writes /devicecontrol paths both ways
(`POST /devicecontrol/operations/`, `GET /devicecontrol/operations`), and clients follow whichever they were written
against. Starlette's own answer to the other form is a 307 redirect, which many clients do not follow for a POST, or
follow without its body; a route declared at one form only answered the other with a 405. Here a path no route knows
is served as the route at its other form, so the answer, its links and its errors are the route's own.

It is the router's answer to a path no route matches, rather than a middleware in front of it: a path that does
match, every request but a few, costs nothing more than before.
"""

from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send


class EitherSlash:
    """Installed as the router's `default`: the route at the path's other form if there is one, else the 404."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._not_found: ASGIApp = router.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        other = _other_form(scope) if scope["type"] == "http" else None
        if other is None or not _known({**scope, **other}, self._router.routes):
            await self._not_found(scope, receive, send)
            return
        # In place, as the router updates a scope: what handles an error raised below (a 405 naming the methods the
        # path allows) reads this same scope, and must see the path that was served.
        scope.update(other)
        await self._router(scope, receive, send)  # it matches now: the router does not come back here


def _other_form(scope: Scope) -> dict[str, str | bytes] | None:
    """`path` and `raw_path` with the trailing slash removed or added; None for the root, which has no other form."""
    path: str = scope["path"]
    if path == "/":
        return None
    raw: bytes = scope.get("raw_path") or path.encode()
    if path.endswith("/"):
        return {"path": path[:-1], "raw_path": raw[:-1] if raw.endswith(b"/") else raw}
    return {"path": path + "/", "raw_path": raw + b"/"}


def _known(scope: Scope, routes: list[BaseRoute]) -> bool:
    # PARTIAL is a path match with another method: that route's 405, with its Allow header, is the right answer.
    return any(route.matches(scope)[0] is not Match.NONE for route in routes)

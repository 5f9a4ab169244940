"""The one table that turns errors into HTTP responses with a readable message that names the field."""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from controller.api.schemas import ErrorOut, FieldError
from controller.errors import (
    Conflict,
    ControllerError,
    Forbidden,
    InvalidRequest,
    NotFound,
    StorageFull,
    StorageUnavailable,
    TooLarge,
    TooSlow,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from controller.query import QueryError

log = logging.getLogger(__name__)

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

STATUS_BY_ERROR: dict[type[Exception], int] = {
    Unprocessable: 422,  # before InvalidRequest, of which it is one
    InvalidRequest: 400,
    QueryError: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    TooSlow: 408,
    Conflict: 409,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    StorageFull: 507,  # before StorageUnavailable, of which it is one
    StorageUnavailable: 503,
}


def _response(
    status: int, message: str, errors: list[FieldError] | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    headers = {**({"WWW-Authenticate": "Bearer"} if status == 401 else {}), **(headers or {})}
    body = ErrorOut(message=message, errors=errors or [])
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _field_path(location: tuple[int | str, ...]) -> str:
    # Drop FastAPI's "body"/"query" prefix so the field reads as the client sent it.
    parts = [str(part) for part in location[1:]] if location and location[0] in ("body", "query", "path") else []
    return ".".join(parts) or str(location[0] if location else "request")


def _field_error(error: Mapping[str, Any]) -> FieldError:
    location = tuple(error["loc"])
    if error["type"] == "json_invalid":
        return FieldError(field="body", message=f"not valid JSON: {error['ctx']['error']} at character {location[-1]}")
    return FieldError(field=_field_path(location), message=error["msg"])


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(error) for error in exc.errors()]
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:3])
    return _response(400, f"invalid request: {summary}", errors)


async def _controller_error(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in STATUS_BY_ERROR.items() if isinstance(exc, kind)), 500)
    if status == 500:
        log.error("unmapped error on %s %s: %s", request.method, request.url.path, exc)
        return _response(500, "internal error")
    if isinstance(exc, InvalidRequest):
        return _response(status, str(exc), [FieldError(field=exc.field, message=exc.message)])
    if isinstance(exc, QueryError):
        return _response(status, str(exc), [FieldError(field=exc.field, message=str(exc))])
    return _response(status, str(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    # Keep the exception's headers: a 401 says how to authenticate, a 405 which methods the path allows.
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return _response(exc.status_code, str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> str:
    """The methods some route serves this path with; Starlette's 405 names only those of the first such route."""
    allowed = []
    for method in METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for kind in (ControllerError, QueryError):
        app.add_exception_handler(kind, _controller_error)

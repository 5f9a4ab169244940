"""What /openapi.json says about each route beyond its body: the error statuses it answers and its media types.

Routes declare `responses=errors(400, 401, ...)` with the statuses they really return, each with the `ErrorOut`
body that controller/api/errors.py writes. FastAPI would also document a 422 for every route with parameters;
this API answers validation errors with 400 instead, so `openapi()` leaves that 422 out (a route's own stays). It
adds the 415 of every route that takes a JSON body, which controller/api/routing.py answers for all of them.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from controller.api.schemas import ErrorOut

JSON = "application/json"

_ERROR_DESCRIPTIONS = {
    400: "A parameter or body field is wrong; `errors` names each one as the client sent it.",
    401: "No API key, or not a valid one.",
    403: "The key's role may not do this (a `read` key changing something).",
    404: "No such resource.",
    408: "The body did not arrive within the time allowed.",
    409: "The resource is not in a state that allows this.",
    413: "The body is over the size limit.",
    415: "The body is not sent as JSON: its Content-Type must be application/json or a +json type.",
    422: "A well-formed field names something that does not exist (a deviceId no device has).",
    507: "The controller's disk is full: nothing was stored. Retrying once space is freed is safe.",
}

_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": "The scheme to authenticate with.", "schema": {"type": "string"}}
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries of the error statuses a route returns, each with the ErrorOut body."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorOut, "description": _ERROR_DESCRIPTIONS[status]}
        if status == 401:
            entry["headers"] = _WWW_AUTHENTICATE
        responses[status] = entry
    return responses


def ref(model: type[BaseModel]) -> dict[str, str]:
    """A JSON reference to `model`'s schema under components, where FastAPI puts every model a route uses."""
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def json_or(media_type: str, model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """`content` for a body that is `model` as application/json or as `media_type` (a Cumulocity `+json` type)."""
    return {JSON: {"schema": ref(model)}, media_type: {"schema": ref(model)}}


def install_openapi(app: FastAPI) -> None:
    """Serve the document FastAPI generates, less the 422 responses this API never sends."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path in document["paths"].values():
                for operation in path.values():
                    responses = operation.get("responses", {})
                    if _validation_error(responses.get("422")):
                        del responses["422"]
                    if JSON in operation.get("requestBody", {}).get("content", {}):
                        # Every JSON body is checked by controller/api/routing.py, for every route that takes one.
                        operation["responses"]["415"] = {
                            "description": _ERROR_DESCRIPTIONS[415],
                            "content": {JSON: {"schema": ref(ErrorOut)}},
                        }
            schemas = document.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _validation_error(response: dict[str, Any] | None) -> bool:
    """Whether a 422 is the one FastAPI documents for every route, rather than one a route declares itself."""
    schema = (response or {}).get("content", {}).get(JSON, {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def absent_not_null(schema: dict[str, Any]) -> None:
    """For an answer's model (json_schema_extra): an optional member is left out, never sent as null."""
    required = set(schema.get("required", ()))
    for name, member in schema.get("properties", {}).items():
        choices = member.get("anyOf", [])
        kept = [choice for choice in choices if choice != {"type": "null"}]
        if name in required or len(kept) != 1 or len(kept) == len(choices):
            continue
        del member["anyOf"]
        member.pop("default", None)
        member.update(kept[0])

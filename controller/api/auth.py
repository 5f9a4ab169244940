"""API keys on every endpoint: `Authorization: Bearer <key>`; `admin` keys may create, `read` keys may only read."""

from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.api.deps import services
from controller.errors import Forbidden, Unauthorized
from controller.store.records import ApiKeyRecord


class Role(StrEnum):
    ADMIN = "admin"
    READ = "read"


bearer = HTTPBearer(auto_error=False, description="An API key made with `tether keys create`.")


def authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiKeyRecord:
    if credentials is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    key = services(request).store.find_key(credentials.credentials)
    if key is None:
        raise Unauthorized("invalid API key")
    return key


def admin(key: Annotated[ApiKeyRecord, Depends(authenticated)]) -> ApiKeyRecord:
    if key.role != Role.ADMIN:
        raise Forbidden(f"API key {key.name!r} has role {key.role!r}; this needs an admin key")
    return key


Reader = Annotated[ApiKeyRecord, Depends(authenticated)]
Admin = Annotated[ApiKeyRecord, Depends(admin)]

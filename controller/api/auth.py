"""API keys on every endpoint; `admin` keys may create, `read` keys may only read.

Both dependencies are coroutines: FastAPI runs a plain function dependency in a worker thread of its own pool, and
with every request grew the process by another malloc arena; the key is looked up on one of the API's reading
connections (controller/api/database.py) instead.

A key is sent as `Authorization: Bearer <key>`, or, for Cumulocity clients, as HTTP Basic with the key's name as the
user and the key as the password. Cumulocity clients write the user as `<tenant>/<user>`: Tether has a single tenant,
so the tenant part is not checked, and the name after it must still be the key's. `admin` keys hold
ROLE_DEVICE_CONTROL_ADMIN, `read` keys ROLE_DEVICE_CONTROL_READ.
"""

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer

from controller.api.deps import services
from controller.errors import Forbidden, Unauthorized
from controller.keys import Role
from controller.store.records import ApiKeyRecord

bearer = HTTPBearer(auto_error=False, description="An API key made with `tether keys create`.")


basic = HTTPBasic(
    auto_error=False,
    description="The key's name as the user (or `<tenant>/<name>`, any tenant), the key as the password.",
)


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    basic_credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
) -> ApiKeyRecord:
    database = services(request).database
    if credentials is not None:
        plaintext = credentials.credentials
        key = await database.read(lambda store: store.keys.find(plaintext))
    elif basic_credentials is not None:
        password = basic_credentials.password
        key = await database.read(lambda store: store.keys.find(password))
        if key is not None and not _names(key.name, basic_credentials.username):
            key = None
    else:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or Basic <name>:<key>")
    if key is None:
        raise Unauthorized("invalid API key")
    return key


def _names(name: str, user: str) -> bool:
    """Whether a Basic user names the key `name`: as it is, or after a Cumulocity client's `<tenant>/` prefix."""
    _, slash, after_tenant = user.partition("/")
    # Both compared, in constant time: a name may itself hold a slash.
    as_is = secrets.compare_digest(name.encode(), user.encode())
    tenant_prefixed = secrets.compare_digest(name.encode(), after_tenant.encode())
    return as_is or (bool(slash) and tenant_prefixed)


async def admin(key: Annotated[ApiKeyRecord, Depends(authenticated)]) -> ApiKeyRecord:
    if key.role != Role.ADMIN:
        raise Forbidden(f"API key {key.name!r} has role {key.role!r}; this needs an admin key")
    return key


Reader = Annotated[ApiKeyRecord, Depends(authenticated)]
Admin = Annotated[ApiKeyRecord, Depends(admin)]

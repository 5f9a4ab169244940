"""Errors of the controller; the REST API maps them to HTTP in one table (controller/api/errors.py).

ControllerError
├── StartupError          `tether serve` cannot start (port in use, bad flag); one line, exit non-zero
│   └── BrokerError       the embedded broker cannot start
├── NotFound              404: no such operation, device or key
├── InvalidRequest        400: a request field is wrong; `field` names it
│   └── Unprocessable     422: a well-formed field names what does not exist (a /devicecontrol deviceId)
├── Unauthorized          401: no valid API key
├── Forbidden             403: the key's role may not do this
├── TooSlow               408: a request body that did not arrive in time
├── Conflict              409: e.g. a key name already taken
├── TooLarge              413: an artifact over the size limit
├── UnsupportedMediaType  415: a body sent as something other than JSON
└── StorageUnavailable    503: the database cannot store anything now (unreachable); nothing was stored
    └── StorageFull       507: the database's disk is full; nothing of the write was stored
"""


class ControllerError(Exception):
    """Base of every error the controller raises on purpose."""


class StartupError(ControllerError):
    pass


class BrokerError(StartupError):
    pass


class NotFound(ControllerError):
    pass


class InvalidRequest(ControllerError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Unprocessable(InvalidRequest):
    pass


class Unauthorized(ControllerError):
    pass


class Forbidden(ControllerError):
    pass


class TooSlow(ControllerError):
    pass


class Conflict(ControllerError):
    pass


class TooLarge(ControllerError):
    pass


class UnsupportedMediaType(ControllerError):
    pass


class StorageUnavailable(ControllerError):
    """The database could not be used (its server is unreachable, or restarting): nothing of the work was stored,
    and retrying it later is safe."""


class StorageFull(StorageUnavailable):
    """A write failed for lack of disk space and was rolled back whole: retrying it later is safe."""

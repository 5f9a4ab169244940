"""What routes get from the running controller, kept on `app.state`."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request

from controller.api.database import ApiDatabase
from controller.events import OperationEvents
from controller.metrics import Metrics
from controller.scheduler import Scheduler
from controller.store.space import Space

DEFAULT_MAX_ARTIFACT_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""The largest JSON body: the largest request Tether takes, a RUN_SHELL_SCRIPT with its 256 KiB script, fits four
times over, so even a script JSON-escaped to twice its size or more passes; what a key holder can make the controller
parse at once stays small."""
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class ApiServices:
    database: ApiDatabase
    """Every read and write of a request, off the API's loop."""
    space: Space
    """Whether the database's disk is full, for /readyz and a failed artifact upload."""
    scheduler: Scheduler
    wake_supervisor: Callable[[], None]
    """Called after a cancellation, so it reaches the devices at once rather than at the next tick."""
    artifact_dir: Path
    events: OperationEvents
    metrics: Metrics = field(default_factory=Metrics)
    broker_connected: Callable[[], bool] = lambda: True
    """Whether the controller's MQTT connection is up, for /readyz."""
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    public_url: str = DEFAULT_PUBLIC_URL
    """The base of every link an answer holds (`next`, `self`, Location): never the Host header a client sent."""


def services(request: Request) -> ApiServices:
    found: ApiServices = request.app.state.services
    return found

"""What routes get from the running controller, kept on `app.state`."""

from dataclasses import dataclass

from fastapi import Request

from controller.scheduler import Scheduler
from controller.store import Store


@dataclass(frozen=True, slots=True)
class ApiServices:
    store: Store
    scheduler: Scheduler


def services(request: Request) -> ApiServices:
    found: ApiServices = request.app.state.services
    return found

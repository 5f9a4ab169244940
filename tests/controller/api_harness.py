"""The controller's ASGI app over a real database, driven synchronously; the `api` fixture is in conftest.py."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from controller.api.app import create_app
from controller.api.database import ApiDatabase
from controller.api.deps import ApiServices
from controller.events import OperationEvents
from controller.scheduler import Scheduler
from controller.store import Store
from shared.messages import Announcement, utc_now
from shared.operations import Platform
from shared.topics import Topics

T = TypeVar("T")


class OnTheRequestsLoop:
    """Store work run at once, with the API's own store: requests here come one at a time, so nothing waits for it
    (the real controller runs it on a store thread; tests/e2e/attacks/test_query_bombs.py shows why)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def call(self, work: Callable[[Store], T]) -> T:
        return work(self._store)


class Api:
    """A synchronous face over an ASGI client, so tests read top to bottom."""

    def __init__(self, store: Store, artifact_dir: Path) -> None:
        self.store = store
        self.wakes = 0
        on_this_loop = OnTheRequestsLoop(store)
        services = ApiServices(
            database=ApiDatabase(readers=[on_this_loop], writer=on_this_loop),
            space=store.space,
            scheduler=Scheduler(on_this_loop, self._wake),
            wake_supervisor=self._wake,
            artifact_dir=artifact_dir,
            events=OperationEvents(store, Topics(), publish=None),
            max_artifact_bytes=1000,
            public_url="http://tether",
        )
        self.app = create_app(services)
        self.admin_key = store.keys.create("ops", "admin")[1]
        self.read_key = store.keys.create("auditor", "read")[1]

    def _wake(self) -> None:
        self.wakes += 1

    def request(self, method: str, path: str, key: str | None = "admin", **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["Authorization"] = f"Bearer {self.admin_key if key == 'admin' else key}"

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://tether") as client:
                return await client.request(method, path, headers=headers, **kwargs)

        return asyncio.run(send())

    def announce(self, device_id: str, **fields: Any) -> None:
        self.store.devices.record_announcement(
            Announcement(
                device_id=device_id,
                platform=Platform.LINUX,
                agent_version="0.1.0",
                announced_at=utc_now(),
                capabilities=["RUN_SHELL_SCRIPT", "LOCK"],
                **fields,
            )
        )

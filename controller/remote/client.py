"""A client of a running controller's /v0 API; every failure becomes one RemoteError with a readable line."""

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import SSEError, connect_sse

from controller.errors import ControllerError
from shared.events import OperationEvent

DEFAULT_URL = "http://127.0.0.1:8080"
PAGE_SIZE = 1000
TIMEOUT_S = 30.0
STREAM_READ_TIMEOUT_S = 60.0
"""The controller sends a keep-alive every 15 s on an idle event stream; four missed ones mean it is gone."""


class RemoteError(ControllerError):
    """The controller could not be reached, refused the key, or answered with an error."""


class Unreachable(RemoteError):
    """No answer at all: connection refused, reset or timed out. Worth retrying for a long-running watch."""


def no_delay_transport() -> httpx.HTTPTransport:
    """httpx with TCP_NODELAY: without it, a request written in two parts (headers, then body) waits for the
    server's delayed ACK of the first, ~40 ms more for a POST on a reused connection."""
    return httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])


class TetherClient:
    def __init__(self, url: str, api_key: str | None, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout_s,
            transport=no_delay_transport(),
        )

    def __enter__(self) -> "TetherClient":
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    # -- operations -----------------------------------------------------------------------------------------------

    def create_operation(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._content(self._send("POST", "/v0/operations/", json=body))

    def list_operations(self, limit: int, **filters: str | None) -> list[dict[str, Any]]:
        params = {name: value for name, value in filters.items() if value is not None}
        return self._pages("/v0/operations/", params, limit)

    def get_operation(self, operation_id: str) -> dict[str, Any]:
        return self._content(self._send("GET", f"/v0/operations/{_segment(operation_id)}/"))

    def operation_devices(self, operation_id: str, status: str | None, limit: int | None) -> list[dict[str, Any]]:
        params = {} if status is None else {"status": status}
        return self._pages(f"/v0/operations/{_segment(operation_id)}/devices/", params, limit)

    def cancel_operation(self, operation_id: str) -> dict[str, Any]:
        return self._content(self._send("POST", f"/v0/operations/{_segment(operation_id)}/cancel/"))

    def operation_events(self, operation_id: str) -> Iterator[OperationEvent]:
        """The operation's server-sent events, from a snapshot until it ends (or the connection drops)."""
        path = f"/v0/operations/{_segment(operation_id)}/events"
        timeout = httpx.Timeout(TIMEOUT_S, read=STREAM_READ_TIMEOUT_S)
        try:
            with connect_sse(self._http, "GET", path, timeout=timeout) as source:
                if source.response.status_code != 200:
                    source.response.read()
                    raise _answer_error(source.response)
                for sse in source.iter_sse():
                    yield OperationEvent.model_validate_json(sse.data)
        except httpx.TransportError as err:
            raise self._unreachable(err) from err
        except (SSEError, ValueError) as err:
            raise RemoteError(f"the controller at {self.url} sent an event stream Tether cannot read: {err}") from err

    # -- devices --------------------------------------------------------------------------------------------------

    def list_devices(self, online: bool | None, limit: int | None) -> list[dict[str, Any]]:
        params = {} if online is None else {"online": str(online).lower()}
        return self._pages("/v0/devices/", params, limit)

    def get_device(self, device_id: str) -> dict[str, Any]:
        return self._content(self._send("GET", f"/v0/devices/{_segment(device_id)}/"))

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _pages(self, path: str, params: dict[str, str], limit: int | None) -> list[dict[str, Any]]:
        """Every item of a paged list, or the first `limit`."""
        items: list[dict[str, Any]] = []
        while limit is None or len(items) < limit:
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(items))
            page = self._content(self._send("GET", path, params={**params, "limit": size, "offset": len(items)}))
            items += page["results"]
            if not page["results"] or page["next"] is None:
                break
        return items

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise self._unreachable(err) from err
        if response.status_code >= 400:
            raise _answer_error(response)
        return response

    def _unreachable(self, err: httpx.TransportError) -> Unreachable:
        if isinstance(err, httpx.TimeoutException):
            return Unreachable(f"the controller at {self.url} did not answer in time ({type(err).__name__})")
        reason = str(err) or type(err).__name__
        return Unreachable(
            f"cannot reach the controller at {self.url} ({reason}); is `tether serve` running? Set --url or TETHER_URL"
        )

    def _content(self, response: httpx.Response) -> dict[str, Any]:
        try:
            content: dict[str, Any] = response.json()["content"]
        except (ValueError, KeyError, TypeError) as err:
            raise RemoteError(f"{self.url} answered {response.status_code} without a Tether body") from err
        return content


def _segment(value: str) -> str:
    """An id as one path segment, whatever it contains."""
    return quote(value, safe="")


def _answer_error(response: httpx.Response) -> RemoteError:
    try:
        message = str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        message = response.reason_phrase or "error"
    if response.status_code == 401:
        return RemoteError(f"the controller refused the API key (401: {message}); set --api-key or TETHER_API_KEY")
    return RemoteError(f"the controller answered {response.status_code}: {message}")

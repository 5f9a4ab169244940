"""A client written for Cumulocity's device control API; against Tether only the base URL and credentials change.

    python3 c8y_device_control.py BASE_URL USER PASSWORD DEVICE_ID... --idle DEVICE_ID

It restarts each device with `c8y_Restart`, waits for the operations to succeed, pages through the collection with
`pageSize` and `next`, filters it by `status`, then queues a restart for the idle device and bulk-deletes the
pending operations. Only the Python standard library: nothing in it knows about Tether.
"""

import argparse
import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

OPERATION = "application/vnd.com.nsn.cumulocity.operation+json;ver=0.9"
COLLECTION = "application/vnd.com.nsn.cumulocity.operationcollection+json;ver=0.9"


class DeviceControl:
    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(self, method: str, url: str, body: Any = None, accept: str = OPERATION) -> tuple[int, Any, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": self.auth, "Accept": accept}
        if data is not None:
            headers["Content-Type"] = OPERATION
        full = url if url.startswith("http") else self.base_url + url
        request = urllib.request.Request(full, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, response.headers, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raise SystemExit(f"{method} {full} answered {err.code}: {err.read().decode(errors='replace')}") from err

    def create(self, fragments: dict[str, Any]) -> dict[str, Any]:
        status, headers, operation = self.request("POST", "/devicecontrol/operations", fragments)
        check(status == 201, f"create answered {status}")
        check(headers["Location"] == operation["self"], "Location is the new operation's self link")
        check(operation["status"] == "PENDING", f"a new operation is PENDING, not {operation['status']}")
        return dict(operation)

    def collection(self, **params: Any) -> list[dict[str, Any]]:
        """Every operation the filters select, following `next` page by page."""
        url: str | None = "/devicecontrol/operations?" + urllib.parse.urlencode(params)
        operations: list[dict[str, Any]] = []
        while url:
            status, headers, page = self.request("GET", url, accept=COLLECTION)
            check(status == 200, f"GET collection answered {status}")
            check(headers["Content-Type"].startswith(COLLECTION.split(";")[0]), "collection media type")
            check(page["statistics"]["pageSize"] == params.get("pageSize", 5), "statistics.pageSize")
            operations += page["operations"]
            url = page.get("next") if page["operations"] else None
        return operations


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"check failed: {what}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("user")
    parser.add_argument("password")
    parser.add_argument("devices", nargs="+")
    parser.add_argument("--idle", required=True, help="a device that will not run its operation yet")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    c8y = DeviceControl(args.base_url, args.user, args.password)

    created = [c8y.create({"deviceId": device, "description": "Restart", "c8y_Restart": {}}) for device in args.devices]
    print(f"created {len(created)} c8y_Restart operation(s)")

    ids = {operation["id"] for operation in created}
    deadline = time.monotonic() + args.timeout
    while {o["id"] for o in c8y.collection(status="SUCCESSFUL", pageSize=100)} & ids != ids:
        check(time.monotonic() < deadline, "every restart SUCCESSFUL in time")
        time.sleep(0.5)
    print(f"{len(ids)} SUCCESSFUL")

    everything = c8y.collection(pageSize=2)
    check([o["id"] for o in everything] == sorted((o["id"] for o in everything), key=int), "first in, first out")
    check(ids <= {o["id"] for o in everything}, "paging with pageSize=2 and next reaches every operation")
    check(all("deviceName" in o and "c8y_Restart" in o for o in everything), "deviceName and the fragment")
    print(f"paged through {len(everything)} operation(s), 2 per page")

    for device in args.devices:
        mine = c8y.collection(deviceId=device, pageSize=5)
        check({o["deviceId"] for o in mine} == {device}, f"deviceId={device} selects that device only")

    queued = c8y.create({"deviceId": args.idle, "c8y_Restart": {}})
    check(queued["id"] in {o["id"] for o in c8y.collection(status="PENDING", pageSize=50)}, "status=PENDING")
    status, _, _ = c8y.request("DELETE", "/devicecontrol/operations?status=PENDING")
    check(status == 204, f"bulk delete answered {status}")
    check(c8y.collection(status="PENDING", pageSize=50) == [], "no PENDING operation is left")
    status, _, _ = c8y.request("DELETE", f"/devicecontrol/operations?deviceId={args.idle}")
    check(status == 204, "bulk delete by deviceId")
    check(c8y.collection(deviceId=args.idle) == [], f"nothing is left for {args.idle}")
    print("bulk-deleted the pending operations")


if __name__ == "__main__":
    main()

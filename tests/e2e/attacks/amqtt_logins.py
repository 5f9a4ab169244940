"""The embedded amqtt broker under `tether serve --broker-auth` as the attack modules drive it: raw MQTT clients with
a login each, and the controller's view of what they did."""

from dataclasses import dataclass

from shared.messages import Announcement, encode, utc_now
from shared.operations import OperationType, Platform
from tests.e2e.harness import Controller, wait_for
from tests.e2e.test_broker_acl import Client

PREFIX = "tether/v1/devices"


@dataclass
class AmqttLogins:
    controller: Controller
    credentials: dict[str, str]

    @property
    def port(self) -> int:
        return self.controller.mqtt_port

    def device(self, user: str, **options: object) -> Client:
        """A connection with `user`'s own login and, unless `options` say otherwise, the client id tetherd uses."""
        options.setdefault("client_id", f"tetherd-{user}")
        return Client(self.port, user, self.credentials[user], **options)  # type: ignore[arg-type]

    def register(self, device_id: str) -> None:
        """Announce `device_id` (as its agent would, then leave) so the controller dispatches to it."""
        announcement = Announcement(
            device_id=device_id,
            platform=Platform.LINUX,
            agent_version="test",
            capabilities=[OperationType.LOCK],
            announced_at=utc_now(),
        )
        device = self.device(device_id)
        device.publish(f"{PREFIX}/{device_id}/announce", encode(announcement), retain=True)
        device.close()
        wait_for(f"{device_id} registered", lambda: device_id in self.devices())

    def devices(self) -> set[str]:
        return {d["device_id"] for d in self.controller.get("/v0/devices/")["results"] if d["platform"]}

    def lock(self, device_id: str) -> tuple[str, str]:
        """Create a LOCK for `device_id`; (operation id, command id) once the command is on the broker."""
        operation_id = self.controller.create(
            {"operation_type": "LOCK", "operation_device_query": {"device_id": device_id}}
        )["id"]
        result = wait_for(
            "the command dispatched",
            lambda: (
                (r := self.controller.device_results(operation_id).get(device_id))
                and r["dispatch_state"] == "dispatched"
                and r
            ),
        )
        return operation_id, result["command_id"]

    def status_of(self, operation_id: str, device_id: str) -> str:
        return str(self.controller.device_results(operation_id)[device_id]["status"])

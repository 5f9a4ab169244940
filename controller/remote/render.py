"""How the operator CLI shows operations and devices: tables for people, JSON for scripts."""

import json
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from agent.command_line import one_line
from shared.events import DeviceCounts

STATUS_STYLES = {"SUCCESSFUL": "green", "FAILED": "red", "EXECUTING": "yellow", "PENDING": "cyan"}
STATE_STYLES = {"COMPLETED": "green", "FAILED": "red", "DISPATCHING": "yellow"}
DETAIL_WIDTH = 60
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters but line breaks and tabs: ESC (and C1's CSI) begins a terminal's escape sequences, CR writes
over a line."""


class PlainConsole(Console):
    """A console that shows strings as they are: what the controller and its devices send (failure reasons, a script's
    output, hostnames) is never read as rich markup or emoji codes, and its control characters are shown escaped
    (`\\x1b`) rather than sent to the terminal. Styles are given as Text or `style=`, never as markup."""

    def render_str(self, text: str, **options: Any) -> Text:
        visible = _CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", text)
        return super().render_str(visible, **{**options, "markup": False, "emoji": False})


def print_json(console: Console, data: Any) -> None:
    # Plain print, not rich's: scripts get exactly the JSON, without colour codes or wrapping.
    console.file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def when(moment: str | None) -> str:
    """An API timestamp (UTC) as `2026-12-01 19:20:40`, or `-`."""
    return "-" if not moment else moment[:19].replace("T", " ")


def counts_line(counts: DeviceCounts) -> str:
    total = counts.waiting + counts.pending + counts.executing + counts.successful + counts.failed
    return (
        f"{counts.successful} successful, {counts.failed} failed, {counts.executing} executing, "
        f"{counts.pending} pending, {counts.waiting} waiting of {total} device(s)"
    )


def _styled(value: str, styles: dict[str, str]) -> Text:
    return Text(value, style=styles.get(value, ""))


def operations_table(operations: Iterable[dict[str, Any]]) -> Table:
    table = Table("ID", "TYPE", "STATE", "DEVICES", "OK", "FAILED", "CREATED (UTC)", "BY", box=None)
    for operation in operations:
        counts = DeviceCounts.model_validate(operation["devices"])
        table.add_row(
            operation["id"],
            operation["operation"],
            _styled(operation["state"], STATE_STYLES),
            str(operation["operation_stats"]["device_operation_statuses_count"]["resolved_device_count"]),
            str(counts.successful),
            str(counts.failed),
            when(operation["created_at"]),
            operation["created_by"],
        )
    return table


def operation_detail(operation: dict[str, Any]) -> RenderableType:
    facts = Table(box=None, show_header=False)
    facts.add_column(style="bold")
    facts.add_column()
    rows = [
        ("id", operation["id"]),
        ("type", operation["operation"]),
        ("state", _styled(operation["state"], STATE_STYLES)),
        ("reason", operation["reason"] or "-"),
        ("devices", counts_line(DeviceCounts.model_validate(operation["devices"]))),
        ("query", json.dumps(operation["operation_device_query"])),
        ("arguments", json.dumps(operation["arguments"])),
        ("schedule", _schedule(operation)),
        ("timeouts", f"{operation['delivery_timeout_s']} s to start, {operation['timeout_s']} s to finish"),
        ("created", f"{when(operation['created_at'])} by {operation['created_by']}"),
        ("updated", f"{when(operation['updated_at'])} by {operation['updated_by']}"),
    ]
    if operation.get("next_dispatch_at"):
        rows.append(("next dispatch", when(operation["next_dispatch_at"])))
    for name, value in rows:
        facts.add_row(name, value)
    activity = Table("ACTIVITY", "AT (UTC)", "MESSAGE", box=None)
    for entry in operation["operation_activity"]:
        activity.add_row(entry["operation_state"], when(entry["timestamp"]), entry["message"] or "")
    return Group(facts, Text(), activity)


def _schedule(operation: dict[str, Any]) -> str:
    args = operation["schedule_args"]
    if operation["schedule_type"] != "WINDOW" or not args:
        return str(operation["schedule_type"])
    days = ", ".join(args.get("days") or []) or "every day"
    return (
        f"WINDOW {args['window_start_time']}-{args['window_end_time']} ({args.get('time_type', 'console')} time, "
        f"{days}) from {args['start_datetime']} to {args['end_datetime']}"
    )


def device_results_table(results: Iterable[dict[str, Any]], detail_width: int | None) -> Table:
    """Each device's row; its DETAIL cut to `detail_width` with an ellipsis, or whole (None)."""
    table = Table("DEVICE", "STATUS", "STARTED (UTC)", "FINISHED (UTC)", "DETAIL", box=None)
    for result in results:
        table.add_row(
            result["device_id"],
            _styled(result["status"], STATUS_STYLES),
            when(result["started_at"]),
            when(result["finished_at"]),
            cut(_detail(result), detail_width),
        )
    return table


def cut(text: str, width: int | None) -> str:
    """`text` in at most `width` characters, ending with "…" if it was cut; whole if `width` is None."""
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _detail(result: dict[str, Any]) -> str:
    """The failure reason, the earlier operation a pending device is queued behind, or the gist of the result; on one
    line, so that a row in a pipe is one line however a device wrote its reason."""
    if result["failure_reason"]:
        return one_line(str(result["failure_reason"]))
    if result.get("queued_behind"):
        return f"queued behind operation {result['queued_behind']}"
    outcome = result["result"]
    if not outcome:
        return ""
    if "exit_code" in outcome:
        first_line = str(outcome.get("stdout") or "").strip().splitlines()[:1]
        return " ".join([f"exit {outcome['exit_code']}", *first_line])
    return json.dumps(outcome, separators=(",", ":"))


def devices_table(devices: Iterable[dict[str, Any]]) -> Table:
    table = Table("DEVICE", "PLATFORM", "ONLINE", "AGENT", "TIME ZONE", "TAGS", "LAST SEEN (UTC)", box=None)
    for device in devices:
        table.add_row(
            device["device_id"],
            device["platform"] or "-",
            Text("online", style="green") if device["online"] else Text("offline", style="red"),
            device["agent_version"] or "-",
            device["time_zone"] or "-",
            ", ".join(device["tags"]) or "-",
            when(device["last_seen"]),
        )
    return table


def device_detail(device: dict[str, Any]) -> Table:
    facts = Table(box=None, show_header=False)
    facts.add_column(style="bold")
    facts.add_column()
    for name in ("device_id", "platform", "agent_version", "time_zone"):
        facts.add_row(name, device[name] or "-")
    facts.add_row("online", f"{'yes' if device['online'] else 'no'} (since {when(device['presence_changed_at'])})")
    for name in ("tags", "groups", "capabilities"):
        facts.add_row(name, ", ".join(device[name]) or "-")
    facts.add_row("first seen", when(device["first_seen"]))
    facts.add_row("last seen", when(device["last_seen"]))
    facts.add_row("inventory", json.dumps(device["inventory"], indent=2, sort_keys=True))
    return facts

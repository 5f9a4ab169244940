"""`tether op ...` and `tether devices ...`: the operator's commands against a running controller's REST API.

Every command takes --url (TETHER_URL) and --api-key (TETHER_API_KEY), prints tables for people and, with --json,
the API's objects for scripts. Exit codes: 0 done, 1 the controller could not be reached or refused the request,
2 bad usage, 3 (`op watch`, `op create`) the operation ended, or failed at once, without every device succeeding.
"""

import difflib
import json
import re
import sys
from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from typing import Any

import click
from rich.console import RenderableType

from controller.remote.client import DEFAULT_URL, TetherClient
from controller.remote.render import (
    DETAIL_WIDTH,
    PlainConsole,
    counts_line,
    device_detail,
    device_results_table,
    devices_table,
    operation_detail,
    operations_table,
    print_json,
)
from controller.remote.watch import LineDisplay, LiveDisplay, QueueNotes, follow, succeeded
from shared.events import OperationEvent
from shared.operations import DeviceStatus, OperationState, OperationType, TimeType

EXIT_NOT_ALL_SUCCEEDED = 3
PIPE_WIDTH = 1_000_000
"""Without a terminal, rich would squeeze tables into 80 columns and cut or wrap cells: in a pipe, each row is one
line and no value is cut, for grep, awk and logs. On a terminal, tables fit its width and long details end in "…"."""


class Remote:
    """What the common options give each command: a client, where to print, and whether as JSON."""

    def __init__(self, url: str, api_key: str | None, as_json: bool) -> None:
        self.client = TetherClient(url, api_key)
        self.as_json = as_json
        self.out = PlainConsole(soft_wrap=True, width=None if sys.stdout.isatty() else PIPE_WIDTH)
        self.errors = PlainConsole(stderr=True, soft_wrap=True, highlight=False)
        self.detail_width = DETAIL_WIDTH if self.out.is_terminal else None

    def show(self, data: Any, for_people: RenderableType) -> None:
        """`data` as JSON with --json, else the rendering for people."""
        if self.as_json:
            print_json(self.out, data)
        else:
            self.out.print(for_people, highlight=False)


_VISIBLE_ASCII = re.compile(r"[!-~]+")
"""What an API key is made of (`tth_` and URL-safe base64), and all an HTTP header value can carry unquoted."""


def _header_safe(_: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A key pasted with a blank or a line break is refused here, never shown: httpx's refusal of the header quotes it,
    and that would print the whole key."""
    if value and _VISIBLE_ASCII.fullmatch(value) is None:  # an empty one is no key: the controller says 401
        raise click.BadParameter(
            "holds a blank, a line break or another character no API key has (it is not shown here)", param=param
        )
    return value


def remote_command(action: Callable[..., int | None]) -> Callable[..., None]:
    """Adds --url, --api-key and --json; `tether`'s group turns a RemoteError into one line on stderr and exit 1."""

    @click.option("--url", envvar="TETHER_URL", default=DEFAULT_URL, show_default=True, help="The controller.")
    @click.option(
        "--api-key",
        envvar="TETHER_API_KEY",
        callback=_header_safe,
        help="An API key (tether keys create); TETHER_API_KEY.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
    @wraps(action)
    def command(url: str, api_key: str | None, as_json: bool, **options: Any) -> None:
        remote = Remote(url, api_key, as_json)
        with remote.client:
            code = action(remote, **options)
        sys.exit(code or 0)

    return command


def _values(enum: type[StrEnum]) -> list[str]:
    # Choices by value: click would offer an enum's member names (CONSOLE, not console).
    return [member.value for member in enum]


def _operation_type(_: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An operation type in any case, as the API spells it; refused with the nearest types, not all 91 of them."""
    if value is None:
        return None
    known = _values(OperationType)
    if value.upper() in known:
        return value.upper()
    # Types that contain it (SCRIPT: RUN_SHELL_SCRIPT) first, then those spelled alike (REBOT: REBOOT).
    containing = [known_type for known_type in known if value.upper() in known_type]
    nearest = list(dict.fromkeys([*containing, *difflib.get_close_matches(value.upper(), known, n=3)]))[:3]
    named = " or ".join([", ".join(nearest[:-1]), nearest[-1]] if len(nearest) > 1 else nearest)
    hint = f"did you mean {named}?" if nearest else "the types are listed in docs/operations.md"
    raise click.BadParameter(f"no operation type {value!r}; {hint}", param=param)


def _json_object(_: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise click.BadParameter(f"not valid JSON: {err}", param=param) from err
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param=param)
    return parsed


def _window(_: click.Context, param: click.Parameter, value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    start, separator, end = value.partition("/")
    if not separator or not start or not end or "/" in end:
        raise click.BadParameter("give START/END, two ISO 8601 times with offsets", param=param)
    return start, end


@click.group(name="op")
def op() -> None:
    """Create, inspect, follow and cancel operations on a running controller."""


@op.command(name="create")
@click.argument("operation_type", metavar="TYPE", callback=_operation_type)
@click.option("--query", callback=_json_object, help='The device query as JSON, e.g. \'{"tags": "lobby"}\'.')
@click.option("--device", "devices", multiple=True, help="Target this device (repeatable); instead of --query.")
@click.option("--args", "arguments", callback=_json_object, help="The operation's arguments as JSON.")
@click.option("--window", callback=_window, help="Run in a WINDOW: START/END, e.g. 2026-12-02T02:00+01:00/2026-...")
@click.option("--time-type", type=click.Choice(_values(TimeType)), help="Read the window in console or device time.")
@click.option("--days", help="Weekdays of the window, comma-separated (default every day).")
@click.option("--timeout-s", type=int, help="Seconds each device may take to finish once started.")
@click.option("--delivery-timeout-s", type=int, help="Seconds each device may take to start.")
@click.option("--rate-per-minute", type=int, help="Dispatch at most this many devices a minute.")
@click.option("--abort-failure-share", type=float, help="Stop dispatching when more than this share failed...")
@click.option("--abort-min-finished", type=int, help="...once at least this many devices have finished.")
@click.option("--watch", is_flag=True, help="Follow the operation to its end, as `tether op watch`.")
@remote_command
def create(remote: Remote, **options: Any) -> int | None:
    """Create an operation of TYPE for the devices the query selects; exit 3 if it failed at once (no device
    matched)."""
    operation = remote.client.create_operation(_create_body(options))
    if operation["state"] == OperationState.FAILED:  # already: no device matched the query
        remote.show(operation, operation["id"])
        click.echo(f"tether: error: operation {operation['id']} FAILED: {operation['reason']}", err=True)
        return EXIT_NOT_ALL_SUCCEEDED
    if options["watch"]:
        if not remote.as_json:
            remote.out.print(f"created operation {operation['id']}", highlight=False)
        return _watch(remote, operation["id"])
    remote.show(operation, operation["id"])
    return None


def _create_body(options: dict[str, Any]) -> dict[str, Any]:
    query, devices = options["query"], options["devices"]
    if (query is None) == (not devices):
        raise click.UsageError("give the target devices with either --query or --device")
    if devices:
        query = {"device_id": devices[0]} if len(devices) == 1 else {"device_id": {"$in": list(devices)}}
    body: dict[str, Any] = {
        "operation_type": options["operation_type"],
        "operation_device_query": query,
        "arguments": options["arguments"] or {},
    }
    window, time_type, days = options["window"], options["time_type"], options["days"]
    if window is None and (time_type or days):
        raise click.UsageError("--time-type and --days go with --window")
    if window is not None:
        schedule: dict[str, Any] = {"start_datetime": window[0], "end_datetime": window[1]}
        if time_type:
            schedule["time_type"] = time_type
        if days:
            schedule["days"] = [day.strip() for day in days.split(",") if day.strip()]
        body |= {"schedule_type": "WINDOW", "schedule_args": schedule}
    for name in ("timeout_s", "delivery_timeout_s"):
        if options[name] is not None:
            body[name] = options[name]
    rollout = {
        name: options[name]
        for name in ("rate_per_minute", "abort_failure_share", "abort_min_finished")
        if options[name] is not None
    }
    if rollout:
        body["rollout"] = rollout
    return body


@op.command(name="list")
@click.option("--state", type=click.Choice(_values(OperationState)), help="Only operations in this state.")
@click.option("--type", "operation_type", callback=_operation_type, help="Only this type.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many, newest first.")
@remote_command
def list_operations(remote: Remote, state: str | None, operation_type: str | None, limit: int) -> None:
    """The newest operations."""
    operations = remote.client.list_operations(limit, state=state, operation_type=operation_type)
    remote.show(operations, operations_table(operations))


@op.command(name="show")
@click.argument("operation_id")
@remote_command
def show(remote: Remote, operation_id: str) -> None:
    """One operation: its state, counts, schedule and activity."""
    operation = remote.client.get_operation(operation_id)
    remote.show(operation, operation_detail(operation))


@op.command(name="devices")
@click.argument("operation_id")
@click.option("--status", type=click.Choice(_values(DeviceStatus)), help="Only devices with this status.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (default: all).")
@remote_command
def devices_of_operation(remote: Remote, operation_id: str, status: str | None, limit: int | None) -> None:
    """Each device of an operation: its status, times, and failure reason or result."""
    results = remote.client.operation_devices(operation_id, status, limit)
    remote.show(results, device_results_table(results, remote.detail_width))


@op.command(name="cancel")
@click.argument("operation_id")
@remote_command
def cancel(remote: Remote, operation_id: str) -> None:
    """Cancel an operation: devices not started never run it, running scripts and downloads are stopped."""
    operation = remote.client.cancel_operation(operation_id)
    remote.show(operation, f"cancelling operation {operation_id}")


@op.command(name="watch")
@click.argument("operation_id")
@remote_command
def watch(remote: Remote, operation_id: str) -> int:
    """Follow an operation until it ends; exit 0 only if every device succeeded (3 otherwise)."""
    return _watch(remote, operation_id)


def _watch(remote: Remote, operation_id: str) -> int:
    if remote.as_json:

        def one_line(event: Any) -> None:
            remote.out.file.write(event.model_dump_json() + "\n")
            remote.out.file.flush()

        final = follow(remote.client, operation_id, one_line, lambda error: None)
    else:
        display = (
            LiveDisplay(remote.out, remote.errors) if remote.out.is_terminal else LineDisplay(remote.out, remote.errors)
        )
        queue = QueueNotes(remote.client, operation_id)

        def shown(event: OperationEvent) -> None:
            display.event(event)
            for line in queue.lines(event):
                display.note(line)

        with display:
            final = follow(remote.client, operation_id, shown, display.lost)
        # A COMPLETED operation's reason only repeats the counts; a FAILED one's says why (cancelled, aborted...).
        reason = f" ({final.reason})" if final.reason and final.state is OperationState.FAILED else ""
        remote.out.print(
            f"operation {operation_id} {final.state}{reason}: {counts_line(final.devices)}", highlight=False
        )
    return 0 if succeeded(final) else EXIT_NOT_ALL_SUCCEEDED


@click.group(name="devices")
def devices() -> None:
    """The devices a running controller knows."""


@devices.command(name="list")
@click.option("--online", is_flag=True, help="Only devices that are online.")
@click.option("--offline", is_flag=True, help="Only devices that are offline.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many (default: all).")
@remote_command
def list_devices(remote: Remote, online: bool, offline: bool, limit: int | None) -> None:
    """Every registered device, by id."""
    # Two flags, not click's --online/--offline pair, whose last one silently wins when both are given.
    if online and offline:
        raise click.UsageError("--online and --offline exclude each other: give one, or neither for every device")
    found = remote.client.list_devices(True if online else False if offline else None, limit)
    remote.show(found, devices_table(found))


@devices.command(name="show")
@click.argument("device_id")
@remote_command
def show_device(remote: Remote, device_id: str) -> None:
    """One device: presence, platform, time zone, tags, capabilities and inventory."""
    device = remote.client.get_device(device_id)
    remote.show(device, device_detail(device))

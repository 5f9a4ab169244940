"""The query parameters GET and DELETE of /devicecontrol/operations share, as seed 004 says: filters and paging."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query

from controller.clock import to_iso
from controller.errors import InvalidRequest
from controller.store.devicecontrol import DeviceControlFilters, Page
from shared.operations import DeviceStatus

DEFAULT_PAGE_SIZE = 5
MAX_PAGE_SIZE = 2000
MAX_PAGE = 1_000_000
"""Beyond any fleet's history; it keeps the row offset within what SQLite can take."""

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d(?P<time>T\d\d:\d\d:\d\d(\.\d+)?(?P<offset>Z|[+-]\d\d:\d\d)?)?", re.IGNORECASE)
DATE_OR_DATE_TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}


def _moment(value: str | None, name: str) -> str | None:
    """An RFC 3339 date and time with its offset, or a date (its midnight UTC, as Cumulocity reads one), as the store
    compares them (UTC, milliseconds). c8y-api's get_last sends dateFrom=1970-01-01."""
    if value is None:
        return None
    written = _RFC3339.fullmatch(value)
    try:
        moment = datetime.fromisoformat(value) if written else None
    except ValueError:
        moment = None
    if written is None or moment is None:
        raise InvalidRequest(name, f"not an ISO 8601 date or date and time: {value!r}")
    if written["time"] is None:
        return to_iso(moment.replace(tzinfo=UTC))
    if written["offset"] is None:
        raise InvalidRequest(name, f"needs an offset, e.g. {value}Z")
    try:
        return to_iso(moment)
    except OverflowError as err:  # 9999-12-31T23:59:59-01:00 is in the calendar, but not once in UTC
        raise InvalidRequest(name, f"out of range in UTC: {value!r}") from err


@dataclass(frozen=True, slots=True)
class CollectionQuery:
    filters: DeviceControlFilters
    contradictory: bool
    """deviceId and agentId name different devices: nothing matches."""
    by_agent: bool
    """agentId was given: the operations show their device's external ids, as the seed says."""
    revert: bool
    page_size: int | None
    current_page: int
    with_total_pages: bool
    with_total_elements: bool

    def page(self, default_size: int | None) -> Page:
        """The operations selected: with no pageSize, `default_size` of them (None: all)."""
        size = self.page_size or default_size
        offset = 0 if size is None else (self.current_page - 1) * size
        return Page(revert=self.revert, limit=size, offset=offset)


async def collection_query(
    device_id: Annotated[str | None, Query(alias="deviceId", min_length=1)] = None,
    agent_id: Annotated[str | None, Query(alias="agentId", min_length=1)] = None,
    status: DeviceStatus | None = None,
    fragment_type: Annotated[str | None, Query(alias="fragmentType")] = None,
    date_from: Annotated[str | None, Query(alias="dateFrom", json_schema_extra=DATE_OR_DATE_TIME)] = None,
    date_to: Annotated[str | None, Query(alias="dateTo", json_schema_extra=DATE_OR_DATE_TIME)] = None,
    bulk_operation_id: Annotated[str | None, Query(alias="bulkOperationId")] = None,
    revert: Annotated[bool, Query(description="Newest first.")] = False,
    page_size: Annotated[
        int | None,
        Query(
            alias="pageSize",
            ge=1,
            le=MAX_PAGE_SIZE,
            description=f"GET: {DEFAULT_PAGE_SIZE} when absent. DELETE: every match when absent, else this page.",
        ),
    ] = None,
    current_page: Annotated[int, Query(alias="currentPage", ge=1, le=MAX_PAGE)] = 1,
    with_total_pages: Annotated[bool, Query(alias="withTotalPages")] = False,
    with_total_elements: Annotated[bool, Query(alias="withTotalElements")] = False,
) -> CollectionQuery:
    """The seed's parameter names; a coroutine, so that FastAPI does not run it in a worker thread."""
    # Each Tether device runs its own agent, so agentId names a device too; both given must agree.
    return CollectionQuery(
        DeviceControlFilters(
            device_id=device_id if device_id is not None else agent_id,
            status=status,
            fragment_type=fragment_type,
            date_from=_moment(date_from, "dateFrom"),
            date_to=_moment(date_to, "dateTo"),
            bulk_operation_id=bulk_operation_id,
        ),
        contradictory=device_id is not None and agent_id is not None and device_id != agent_id,
        by_agent=agent_id is not None,
        revert=revert,
        page_size=page_size,
        current_page=current_page,
        with_total_pages=with_total_pages,
        with_total_elements=with_total_elements,
    )


Filters = Annotated[CollectionQuery, Depends(collection_query)]

"""Status writes held, inside their one batched statement, to the rows shared/lifecycle.py lets move."""

from shared.lifecycle import device_statuses_that_may_become
from shared.operations import DeviceStatus


def may_become(new: DeviceStatus, column: str = "status") -> str:
    """A condition true of the rows whose `column` the lifecycle table lets become `new`.

    Checked by the statement that writes, so a row another writer ended after it was read is left as it ended.
    The statuses are the enum's own values, written in the SQL so SQLite can use its indexes on `status`.
    """
    statuses = ", ".join(f"'{status}'" for status in device_statuses_that_may_become(new))
    return f"{column} IN ({statuses})"


def if_may_become(new: DeviceStatus, value: str, kept: str, status: str = "status") -> str:
    """`value` on a row whose `status` may become `new`, else `kept` (the column's own): for a statement that also
    changes what is not a status (a command leaving the dispatch queue) on every row it selects."""
    return f"CASE WHEN {may_become(new, status)} THEN {value} ELSE {kept} END"

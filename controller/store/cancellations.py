"""Cancellations published but not yet confirmed by their device, kept to be published again until they are.

A cancellation is QoS 1 and not retained: an offline device gets it only from its session on the broker, which a
broker can lose (the embedded amqtt restarted with the controller, a Mosquitto killed between saves). The device
confirms a cancellation by sending the command's final status (FAILED with the cancellation's reason, or its own
result when it could not stop it or had finished); one that never had the command answers nothing.

An entry lasts until its command's deadline as it was when the cancellation was first published: a command not
started by then is refused by its agent anyway (its signed `start_before` is no later), so a cancellation with no
command left to stop is not published for ever. Publishing again is publishing anew: the entry's row gets
`cancel_sent = 0`, and the supervisor publishes it with every other pending cancellation.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from controller.clock import to_iso
from controller.store.connection import Connection
from controller.store.one_step import packed

if TYPE_CHECKING:
    from controller.store import Store

RETRY_FIRST_S = 30
RETRY_MAX_S = 3600
"""While its device is online and silent, a cancellation is published again after 30 s, then after twice as long
each time up to an hour: the device may have subscribed after the first copy arrived (a session the broker had lost)."""
SUBSCRIBED_S = 1.0
"""How long after a device says it is online its unconfirmed cancellations go out again: the agent publishes its
presence before it subscribes, and what the broker has before a subscription of a new session is not delivered."""


class CancellationLedger:
    def __init__(self, store: "Store") -> None:
        self._store = store

    def watch(self, conn: Connection, command_ids: Sequence[str], now: str) -> None:
        """In the transaction that records them published: the cancellations of these commands are awaited until
        each command's deadline, if it has not passed; one published again keeps its first deadline."""
        dialect = self._store.dialect
        conn.execute(
            f"""INSERT INTO unconfirmed_cancellations (command_id, device_id, until, next_at, sends)
                SELECT command_id, device_id, deadline_at, {dialect.seconds_after(":now", _delay_after(0))}, 1
                FROM device_operations WHERE command_id IN ({dialect.values(":ids")}) AND deadline_at > :now
                ON CONFLICT (command_id) DO UPDATE SET
                    next_at = {dialect.seconds_after(":now", _delay_after("unconfirmed_cancellations.sends"))},
                    sends = unconfirmed_cancellations.sends + 1""",
            {"ids": packed(list(command_ids)), "now": now},
        )

    def confirm(self, finished: Sequence[tuple[str, str]]) -> None:
        """(device id, command id) of final statuses received: those devices have nothing left to stop."""
        if not finished or not self._any():
            return
        with self._store.transaction() as conn:
            dialect = self._store.dialect
            conn.execute(
                f"""DELETE FROM unconfirmed_cancellations WHERE (command_id, device_id) IN (
                       SELECT {dialect.members([(1, "command_id"), (0, "device_id")])} FROM {dialect.rows("?")})""",
                (packed(finished),),
            )

    def send_again_to(self, device_ids: Sequence[str], now: datetime) -> None:
        """The devices have just come online: their unconfirmed cancellations go out again once they subscribed."""
        if not device_ids or not self._any():
            return
        with self._store.transaction() as conn:
            conn.execute(
                f"""UPDATE unconfirmed_cancellations SET next_at = ?
                   WHERE device_id IN ({self._store.dialect.values("?")})""",
                (to_iso(now + timedelta(seconds=SUBSCRIBED_S)), packed(list(device_ids))),
            )

    def send_again_to_all(self, now: datetime) -> None:
        """The broker lost what it held for devices: every unconfirmed cancellation goes out again now."""
        if self._any():
            with self._store.transaction() as conn:
                conn.execute("UPDATE unconfirmed_cancellations SET next_at = ?", (to_iso(now),))

    def requeue_due(self, at: datetime) -> int:
        """Mark for publishing the cancellations due again at `at` whose device is online; how many were marked.

        Those due whose command's deadline has passed are forgotten, and those due whose device is offline wait
        until it comes online (`send_again_to`): what is due stays few, and a tick reads only that.
        """
        if not self._any():
            return 0
        now = to_iso(at)
        with self._store.transaction() as conn:
            conn.execute("DELETE FROM unconfirmed_cancellations WHERE next_at <= ?1 AND until <= ?1", (now,))
            marked: int = conn.execute(
                """UPDATE device_operations SET cancel_sent = 0
                   WHERE command_id IN (
                       SELECT u.command_id FROM unconfirmed_cancellations AS u
                       JOIN devices AS d ON d.device_id = u.device_id
                       WHERE u.next_at <= ? AND d.online = 1)
                       AND cancel_sent = 1""",
                (now,),
            ).rowcount
            conn.execute(
                """UPDATE unconfirmed_cancellations SET next_at = until
                   WHERE next_at <= ? AND NOT EXISTS (
                       SELECT 1 FROM devices WHERE devices.device_id = unconfirmed_cancellations.device_id
                           AND online = 1)""",
                (now,),
            )
        return marked

    def awaited(self, device_id: str | None = None) -> list[str]:
        """The command ids whose cancellation is awaited (of one device, or all), in order."""
        where, params = ("WHERE device_id = ?", (device_id,)) if device_id is not None else ("", ())
        rows = self._store.conn.execute(
            f"SELECT command_id FROM unconfirmed_cancellations {where} ORDER BY command_id", params
        )
        return [row[0] for row in rows]

    def _any(self) -> bool:
        """Whether any cancellation is awaited: the hot paths (statuses, presences) skip their statement if not."""
        return self._store.conn.execute("SELECT 1 FROM unconfirmed_cancellations LIMIT 1").fetchone() is not None


_DOUBLINGS = (-(-RETRY_MAX_S // RETRY_FIRST_S) - 1).bit_length()
"""Copies after which the wait has reached RETRY_MAX_S: the fewest doublings of RETRY_FIRST_S that get there."""


def _delay_after(sends: int | str) -> str:
    """The SQL of the seconds until the next copy, after a cancellation published `sends` times before this one."""
    return (
        f"CASE WHEN {sends} >= {_DOUBLINGS} THEN {RETRY_MAX_S} "
        f"ELSE {RETRY_FIRST_S} * (1 << CAST({sends} AS INTEGER)) END"
    )

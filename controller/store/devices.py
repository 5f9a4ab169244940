"""Devices: what their announcements and presences say, and the documents a device query is matched against."""

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from controller.clock import now_iso
from controller.errors import NotFound
from controller.store.connection import Row
from controller.store.json_columns import dumped, loaded
from controller.store.one_step import fetch_rows, packed
from controller.store.records import DeviceRecord, Page
from shared.messages import Announcement
from shared.operations import PresenceState

if TYPE_CHECKING:
    from controller.store import Store


class DeviceLedger:
    def __init__(self, store: "Store") -> None:
        self._store = store

    def record_announcement(self, announcement: Announcement) -> None:
        self.record_announcements([announcement])

    def record_announcements(self, announcements: Sequence[Announcement]) -> list[str]:
        """Upsert devices from their announcements, in one transaction; a later one of a device wins.

        Returns the devices already known whose time zone the batch changed, in device id order."""
        now = now_iso()
        # One row a device, its latest: PostgreSQL's upsert refuses to change a row twice in one statement.
        rows = {
            a.device_id: (
                a.device_id,
                a.platform,
                a.agent_version,
                a.time_zone,
                dumped(a.inventory),
                dumped([str(c) for c in a.capabilities]),
                dumped(a.tags),
                dumped(a.groups),
            )
            for a in announcements
        }
        dialect = self._store.dialect
        with self._store.transaction() as conn:
            zones = dict(
                conn.execute(
                    f"SELECT device_id, time_zone FROM devices WHERE device_id IN ({dialect.values('?')})",
                    (packed(list(rows)),),
                ).fetchall()
            )
            # `WHERE true` tells SQLite the ON CONFLICT is the upsert's, not a join's.
            conn.execute(
                f"""INSERT INTO devices (device_id, platform, agent_version, time_zone, inventory, capabilities, tags,
                                         groups_, first_seen, last_seen)
                    SELECT {dialect.members(enumerate(_ANNOUNCED_COLUMNS))}, ?1, ?1 FROM {dialect.rows("?2")}
                    WHERE true
                    ON CONFLICT (device_id) DO UPDATE SET platform = excluded.platform,
                        agent_version = excluded.agent_version, time_zone = excluded.time_zone,
                        inventory = excluded.inventory, capabilities = excluded.capabilities, tags = excluded.tags,
                        groups_ = excluded.groups_, last_seen = excluded.last_seen""",
                (now, packed(list(rows.values()))),
            )
        latest = {a.device_id: a.time_zone for a in announcements}
        return sorted(
            device_id for device_id, zone in latest.items() if device_id in zones and zones[device_id] != zone
        )

    def record_presence(self, device_id: str, state: PresenceState) -> None:
        self.record_presences([(device_id, state)])

    def record_presences(self, presences: Sequence[tuple[str, PresenceState]]) -> None:
        """(device id, state) pairs in order, in one transaction; a device heard of only this way is registered."""
        now = now_iso()
        # One row a device, its latest: PostgreSQL's upsert refuses to change a row twice in one statement.
        latest = {device_id: int(state is PresenceState.ONLINE) for device_id, state in presences}
        dialect = self._store.dialect
        with self._store.transaction() as conn:
            conn.execute(
                f"""INSERT INTO devices (device_id, online, first_seen, last_seen, presence_changed_at)
                    SELECT {dialect.members([(0, "device_id"), (1, "online")])}, ?1, ?1, ?1
                    FROM {dialect.rows("?2")} WHERE true
                    ON CONFLICT (device_id) DO UPDATE SET online = excluded.online, last_seen = excluded.last_seen,
                        presence_changed_at = excluded.presence_changed_at""",
                (now, packed(list(latest.items()))),
            )

    def get(self, device_id: str) -> DeviceRecord:
        row = self._store.conn.execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        if row is None:
            raise NotFound(f"no device with id {device_id!r}")
        return _device(row)

    def page(self, *, online: bool | None = None, limit: int, offset: int) -> Page[DeviceRecord]:
        where, params = ("WHERE online = ?", [int(online)]) if online is not None else ("", [])
        total = self._store.conn.execute(f"SELECT count(*) FROM devices {where}", params).fetchone()[0]
        rows = self._store.conn.execute(
            f"SELECT * FROM devices {where} ORDER BY device_id LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return Page([_device(row) for row in rows], total)

    def more_than(self, count: int, device_ids: Collection[str] | None) -> bool:
        """Whether a query bounded to `device_ids` (None: to no ids) may select more than `count` devices; counts
        no further than `count` + 1 rows."""
        if device_ids is not None:
            return len(device_ids) > count
        bounded = "SELECT count(*) FROM (SELECT 1 FROM devices LIMIT ?) AS bounded"
        return int(self._store.conn.execute(bounded, (count + 1,)).fetchone()[0]) > count

    def query_documents(
        self, device_ids: Iterable[str] | None, fields: Iterable[str]
    ) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
        """(device id, time zone, document) of every device, or of the named ones, for matching a device query.

        The document (docs/query-language.md) holds only `fields`: decoding every device's JSON
        columns cost a fleet of 100,000 two seconds, and a query reads one or two of them.
        """
        wanted = [(name, QUERY_COLUMNS[name]) for name in sorted(set(fields) & set(QUERY_COLUMNS))]
        columns = "".join(f", {column}" for _, (column, _) in wanted)
        dialect = self._store.dialect
        named = "" if device_ids is None else f"AND device_id IN ({dialect.values('?2')})"
        ids = () if device_ids is None else (packed(sorted(device_ids)),)
        documents = dialect.array_of_arrays(f"device_id, time_zone{columns}", order="device_id")
        after = ""
        while True:
            rows = fetch_rows(
                self._store.conn,
                f"""SELECT {documents} FROM (
                        SELECT * FROM devices WHERE device_id > ?1 {named} ORDER BY device_id LIMIT {QUERY_PAGE})
                    AS page""",
                (after, *ids),
            )
            for row in rows:
                document = {name: convert(row[index]) for index, (name, (_, convert)) in enumerate(wanted, start=2)}
                yield row[0], row[1], document
            if len(rows) < QUERY_PAGE:
                return
            after = rows[-1][0]

    def unable_to_run(self, device_ids: Sequence[str], operation_type: str) -> dict[str, str]:
        """The platform of each named device that has announced itself without `operation_type` among its
        capabilities (SQLite reads the announcements' JSON: in Python it cost ~10 µs a device per dispatch)."""
        dialect = self._store.dialect
        rows = fetch_rows(
            self._store.conn,
            f"""SELECT {dialect.array_of_arrays("device_id, platform")} FROM devices
               WHERE platform IS NOT NULL AND device_id IN ({dialect.values("?1")})
                   AND NOT {dialect.json_array_has("devices.capabilities", "?2")}""",
            (packed(list(device_ids)), operation_type),
        )
        return {device_id: platform for device_id, platform in rows}


def _same(value: Any) -> Any:
    return value


QUERY_PAGE = 10_000
"""Devices read per step when matching a query: one step for the page, not one per row (controller/store/one_step)."""

_ANNOUNCED_COLUMNS = (
    "device_id",
    "platform",
    "agent_version",
    "time_zone",
    "inventory",
    "capabilities",
    "tags",
    "groups_",
)
"""The columns `record_announcements` reads from each announcement, in the order it builds them; first_seen and
last_seen are the moment, a parameter: `json_extract` parses the whole row once per member read."""

QUERY_COLUMNS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "device_id": ("device_id", _same),
    "platform": ("platform", _same),
    "online": ("online", bool),
    "agent_version": ("agent_version", _same),
    "time_zone": ("time_zone", _same),
    "tags": ("tags", loaded),
    "groups": ("groups_", loaded),
    "capabilities": ("capabilities", loaded),
    "inventory": ("inventory", loaded),
}
"""Each field of a device's query document, with its column and how a value is read from it."""


def _device(row: Row) -> DeviceRecord:
    return DeviceRecord(
        device_id=row["device_id"],
        platform=row["platform"],
        agent_version=row["agent_version"],
        online=bool(row["online"]),
        time_zone=row["time_zone"],
        inventory=loaded(row["inventory"]),
        capabilities=loaded(row["capabilities"]),
        tags=loaded(row["tags"]),
        groups=loaded(row["groups_"]),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        presence_changed_at=row["presence_changed_at"],
    )

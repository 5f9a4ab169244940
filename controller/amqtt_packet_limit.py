"""A bound on the size of the MQTT packets the embedded amqtt broker reads, checked at each packet's fixed header.

amqtt reads a whole packet into memory before it looks at it: a device could send 256 MB on a topic it may not even
publish to, and anyone could send a 256 KiB CONNECT (four fields at their 64 KiB limit) before its password is
checked. The size a packet declares comes first on the wire, so the reader refuses it there, unread.
"""

from amqtt.adapters import ReaderAdapter
from amqtt.errors import AMQTTError

from shared.messages import MAX_PAYLOAD_BYTES

MAX_CONNECT_BYTES = 16 * 1024
"""A CONNECT's size: a device's client id, login and last will (its offline presence) take a few hundred bytes."""
MAX_DEVICE_PACKET_BYTES = MAX_PAYLOAD_BYTES + 64 * 1024 + 4
"""A device's packets: the largest payload either side accepts, a topic (at most 64 KiB) and a packet id."""
_LENGTH_BYTES = 4
"""The remaining length takes at most four bytes (MQTT 3.1.1, 2.2.3)."""


class PacketTooLarge(AMQTTError):  # type: ignore[misc]
    """amqtt ends the connection on it, both while it reads a CONNECT and after (an AMQTTError, not an MQTTError,
    after which amqtt would go on reading the rest of the packet as the next one)."""


class PacketSizes:
    """Follows the packets in a stream of reads, by their fixed headers, and raises PacketTooLarge on a header that
    declares more than `limit` bytes after it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._header = bytearray()
        self._body_left = 0

    def saw(self, data: bytes) -> None:
        """Account for `data`, the next bytes read from the stream (amqtt reads a fixed header a byte at a time)."""
        if self._body_left:
            self._body_left = max(0, self._body_left - len(data))
            return
        self._header += data
        length_bytes = self._header[1:]
        if not length_bytes or length_bytes[-1] & 0x80:
            if len(length_bytes) >= _LENGTH_BYTES:
                raise PacketTooLarge("a malformed remaining length")
            return
        declared = sum((byte & 0x7F) << (7 * place) for place, byte in enumerate(length_bytes))
        self._header.clear()
        if declared > self.limit:
            raise PacketTooLarge(f"a packet of {declared} bytes, over the {self.limit}-byte limit")
        self._body_left = declared


class BoundedReader(ReaderAdapter):  # type: ignore[misc]
    """`reader`, refusing packets larger than `limit` at their fixed header."""

    def __init__(self, reader: ReaderAdapter, limit: int) -> None:
        self._reader = reader
        self.sizes = PacketSizes(limit)

    async def read(self, n: int = -1) -> bytes:
        data: bytes = await self._reader.read(n)
        self.sizes.saw(data)
        return data

    def feed_eof(self) -> None:
        self._reader.feed_eof()

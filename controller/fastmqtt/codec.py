"""The MQTT 3.1.1 packets Tether's hot paths need, encoded and decoded without I/O (OASIS MQTT 3.1.1, section 3).

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP and DISCONNECT: enough for a client that
publishes and subscribes at QoS 0 and 1. `Decoder` takes bytes as they arrive, in any pieces, and returns whole packets.
"""

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

MAX_REMAINING_LENGTH = 268_435_455
"""The largest packet body the four-byte remaining-length field can state."""


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid MQTT 3.1.1 packet."""


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    SUBSCRIBE = 8
    SUBACK = 9
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class Publish(NamedTuple):
    """Named tuples, this and PacketIdAck: one is built per packet received, at a third of a frozen dataclass's cost."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int
    """0 for QoS 0."""


@dataclass(frozen=True, slots=True)
class Connack:
    session_present: bool
    return_code: int
    """0 accepted; 1-5 the refusals of section 3.2.2.3."""


class PacketIdAck(NamedTuple):
    """PUBACK, or SUBACK with the return code of each filter (0-2 granted QoS, 0x80 refused)."""

    kind: PacketType
    packet_id: int
    return_codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Ping:
    kind: PacketType


Packet = Publish | Connack | PacketIdAck | Ping


def _length(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING_LENGTH:
        raise ValueError(f"an MQTT packet body of {n} bytes is too large")
    if n < 128:
        return bytes((n,))
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | 0x80 if n else digit)
        if not n:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) > 65535:
        raise ValueError("an MQTT string is at most 65,535 bytes")
    return struct.pack("!H", len(raw)) + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + _length(len(body)) + body


def encode_connect(
    client_id: str,
    *,
    clean_session: bool = True,
    keepalive: int = 60,
    username: str | None = None,
    password: str | None = None,
    will: Will | None = None,
) -> bytes:
    flags = 0x02 if clean_session else 0
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += _string(will.topic) + _string(will.payload)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
    if password is not None:
        flags |= 0x40
        payload += _string(password)
    header = _string("MQTT") + bytes((4, flags)) + struct.pack("!H", keepalive)
    return _packet(PacketType.CONNECT << 4, header + payload)


def encode_publish(
    topic: str, payload: bytes, *, qos: int = 0, retain: bool = False, packet_id: int = 0, dup: bool = False
) -> bytes:
    if qos not in (0, 1):
        raise ValueError("only QoS 0 and 1 are supported")
    if qos and not 0 < packet_id <= 65535:
        raise ValueError(f"a QoS 1 PUBLISH needs a packet id from 1 to 65535, not {packet_id}")
    first = (PacketType.PUBLISH << 4) | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return _packet(first, body)


_PUBACK_PACKET = struct.Struct("!BBH")


def encode_puback(packet_id: int) -> bytes:
    return _PUBACK_PACKET.pack(PacketType.PUBACK << 4, 2, packet_id)


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    if not filters:
        raise ValueError("a SUBSCRIBE needs at least one topic filter")
    body = struct.pack("!H", packet_id) + b"".join(_string(topic) + bytes((qos,)) for topic, qos in filters)
    return _packet((PacketType.SUBSCRIBE << 4) | 0x02, body)


_KNOWN_TYPES = frozenset(int(kind) for kind in PacketType)

PINGREQ = bytes((PacketType.PINGREQ << 4, 0))
DISCONNECT = bytes((PacketType.DISCONNECT << 4, 0))


_PUBLISH, _PUBACK, _SUBACK, _CONNACK, _PINGRESP = (
    int(kind)
    for kind in (PacketType.PUBLISH, PacketType.PUBACK, PacketType.SUBACK, PacketType.CONNACK, PacketType.PINGRESP)
)
"""Plain ints: the decoder compares every packet's type, and an enum member costs a class attribute lookup."""
_PACKET_ID = struct.Struct("!H")


class Decoder:
    """Whole packets out of a byte stream that arrives in arbitrary pieces."""

    def __init__(self) -> None:
        self._rest = bytearray()
        """The start of a packet whose end has not arrived yet."""
        self._needed = 0
        """How long `_rest` must grow before that packet is whole, once its header says (0 until then)."""

    def feed(self, data: bytes) -> list[Packet]:
        # Packets are decoded from offsets into the bytes received: slicing each body out first copied every
        # message twice more (the controller and the simulator decode ~5 packets per device).
        if self._rest:
            self._rest += data
            if len(self._rest) < self._needed:
                return []  # a large packet still arriving: appended in place, not copied again with every piece
            data = bytes(self._rest)
        packets: list[Packet] = []
        start, end = 0, len(data)
        needed = 0
        while end - start >= 2:
            length = data[start + 1]
            body_start = start + 2
            if length & 0x80 and end - start >= 3 and not data[start + 2] & 0x80:
                length = (length & 0x7F) | data[start + 2] << 7  # two bytes: a status or command (128 B-16 KB)
                body_start = start + 3
            elif length & 0x80:
                header = _long_header(data, start, end)
                if header is None:
                    break
                length, body_start = header
            body_end = body_start + length
            if body_end > end:
                needed = body_end - start
                break
            packets.append(_decode(data[start], data, body_start, body_end))
            start = body_end
        self._rest = bytearray(data[start:])
        self._needed = needed
        return packets


def _long_header(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(body length, where the body starts) of a packet at `start` whose remaining length takes more than one byte,
    or None while its header is incomplete."""
    length, shift = 0, 0
    for index in range(start + 1, min(start + 5, end)):
        digit = data[index]
        length |= (digit & 0x7F) << shift
        if not digit & 0x80:
            return length, index + 1
        shift += 7
    if end - start >= 5:
        raise ProtocolError("remaining length longer than four bytes")
    return None


def _decode(first: int, data: bytes, start: int, end: int) -> Packet:
    """The packet whose first byte is `first` and whose body is `data[start:end]`."""
    kind, flags = first >> 4, first & 0x0F
    size = end - start
    if kind == _PUBLISH:
        qos = (flags >> 1) & 0x03
        if qos > 2 or size < 2:
            raise ProtocolError("malformed PUBLISH")
        (topic_length,) = _PACKET_ID.unpack_from(data, start)
        offset = start + 2 + topic_length
        packet_id = 0
        if qos:
            if end < offset + 2:
                raise ProtocolError("PUBLISH too short for its packet id")
            (packet_id,) = _PACKET_ID.unpack_from(data, offset)
            offset += 2
        elif offset > end:
            raise ProtocolError("PUBLISH too short for its topic")
        try:
            topic = data[start + 2 : start + 2 + topic_length].decode()
        except UnicodeDecodeError as err:
            raise ProtocolError("PUBLISH topic is not UTF-8") from err
        return Publish(topic, data[offset:end], qos, bool(flags & 0x01), bool(flags & 0x08), packet_id)
    if kind == _PUBACK and size == 2:
        return PacketIdAck(PacketType.PUBACK, _PACKET_ID.unpack_from(data, start)[0])
    if kind == _SUBACK and size >= 3:
        return PacketIdAck(PacketType.SUBACK, _PACKET_ID.unpack_from(data, start)[0], tuple(data[start + 2 : end]))
    if kind == _CONNACK and size == 2:
        return Connack(bool(data[start] & 0x01), data[start + 1])
    if kind == _PINGRESP and not size:
        return Ping(PacketType.PINGRESP)
    name = PacketType(kind).name if kind in _KNOWN_TYPES else f"type {kind}"
    raise ProtocolError(f"unexpected or malformed {name} packet ({size} bytes)")

"""The MQTT 3.1.1 codec, byte for byte: lengths, every packet it writes, and a decoder fed in every possible split."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.fastmqtt.codec import (
    DISCONNECT,
    PINGREQ,
    Connack,
    Decoder,
    Packet,
    PacketIdAck,
    PacketType,
    Ping,
    ProtocolError,
    Publish,
    Will,
    encode_connect,
    encode_puback,
    encode_publish,
    encode_subscribe,
)
from controller.fastmqtt.codec import _length as remaining_length


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (2_097_151, b"\xff\xff\x7f"),
        (2_097_152, b"\x80\x80\x80\x01"),
    ],
)
def test_remaining_length_at_every_boundary(length: int, encoded: bytes) -> None:
    """Section 2.2.3's table; the body is `length` bytes of a QoS 0 PUBLISH with an empty topic."""
    packet = encode_publish("", b"x" * (length - 2))
    assert packet[1 : 1 + len(encoded)] == encoded
    assert len(packet) == 1 + len(encoded) + length
    (decoded,) = Decoder().feed(packet)
    assert isinstance(decoded, Publish)
    assert len(decoded.payload) == length - 2


def test_the_largest_remaining_length() -> None:
    packet = encode_publish("", b"x" * (268_435_455 - 2))
    assert packet[1:5] == b"\xff\xff\xff\x7f"


def test_a_body_over_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="too large"):
        encode_publish("", b"x" * 268_435_454)


def test_publish_bytes() -> None:
    assert encode_publish("a/b", b"hi") == b"\x30\x07\x00\x03a/bhi"
    assert encode_publish("a/b", b"hi", qos=1, retain=True, packet_id=10) == b"\x33\x09\x00\x03a/b\x00\x0ahi"
    assert encode_publish("a", b"", qos=1, packet_id=1, dup=True)[0] == 0x3A
    with pytest.raises(ValueError, match="packet id"):
        encode_publish("a", b"", qos=1)
    with pytest.raises(ValueError, match="QoS"):
        encode_publish("a", b"", qos=2, packet_id=1)


def test_connect_bytes_with_every_flag() -> None:
    plain = encode_connect("c1", keepalive=30)
    assert plain == b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x1e\x00\x02c1"
    full = encode_connect(
        "c1", clean_session=False, keepalive=0, username="u", password="p", will=Will("w", b"gone", qos=1, retain=True)
    )
    flags = full[9]
    assert flags == 0x80 | 0x40 | 0x20 | 0x08 | 0x04
    assert full.endswith(b"\x00\x02c1\x00\x01w\x00\x04gone\x00\x01u\x00\x01p")


def test_subscribe_puback_ping_disconnect_bytes() -> None:
    assert encode_subscribe(7, [("a/+", 1), ("b/#", 0)]) == b"\x82\x0e\x00\x07\x00\x03a/+\x01\x00\x03b/#\x00"
    assert encode_puback(258) == b"\x40\x02\x01\x02"
    assert PINGREQ == b"\xc0\x00"
    assert DISCONNECT == b"\xe0\x00"
    with pytest.raises(ValueError, match="at least one"):
        encode_subscribe(1, [])


STREAM = [
    b"\x20\x02\x01\x00",  # CONNACK, session present, accepted
    b"\x90\x04\x00\x05\x01\x80",  # SUBACK id 5: QoS 1, refused
    b"\x40\x02\x01\x02",  # PUBACK 258
    encode_publish("t/x", b"payload", qos=1, retain=True, packet_id=9),
    encode_publish("t/y", b"y" * 200),  # a two-byte remaining length
    b"\xd0\x00",  # PINGRESP
]
EXPECTED = [
    Connack(session_present=True, return_code=0),
    PacketIdAck(PacketType.SUBACK, 5, (1, 0x80)),
    PacketIdAck(PacketType.PUBACK, 258),
    Publish("t/x", b"payload", qos=1, retain=True, dup=False, packet_id=9),
    Publish("t/y", b"y" * 200, qos=0, retain=False, dup=False, packet_id=0),
    Ping(PacketType.PINGRESP),
]


def test_the_decoder_reads_a_stream_whole() -> None:
    assert Decoder().feed(b"".join(STREAM)) == EXPECTED


def test_the_decoder_reads_a_stream_split_at_every_byte() -> None:
    stream = b"".join(STREAM)
    for cut in range(len(stream) + 1):
        decoder = Decoder()
        assert decoder.feed(stream[:cut]) + decoder.feed(stream[cut:]) == EXPECTED, cut


def test_the_decoder_reads_a_stream_one_byte_at_a_time() -> None:
    decoder = Decoder()
    packets = [packet for byte in b"".join(STREAM) for packet in decoder.feed(bytes((byte,)))]
    assert packets == EXPECTED


def test_a_large_publish_arrives_in_pieces() -> None:
    packet = encode_publish("big", bytes(range(256)) * 1000, qos=1, packet_id=65535)
    decoder = Decoder()
    found = [p for start in range(0, len(packet), 1000) for p in decoder.feed(packet[start : start + 1000])]
    assert found == [Publish("big", bytes(range(256)) * 1000, 1, False, False, 65535)]


@pytest.mark.parametrize(
    ("stream", "match"),
    [
        (b"\x30\xff\xff\xff\xff\x01", "longer than four bytes"),
        (b"\x30\x01\x00", "malformed PUBLISH"),
        (b"\x32\x04\x00\x02ab", "packet id"),
        (b"\x30\x03\x00\x05a", "too short for its topic"),
        (b"\x30\x04\x00\x02\xff\xfe", "not UTF-8"),
        (b"\x40\x01\x00", "PUBACK"),
        (b"\x10\x00", "CONNECT"),
        (b"\x36\x02\x00\x00", "malformed PUBLISH"),  # QoS 3
    ],
)
def test_invalid_packets_raise(stream: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        Decoder().feed(stream)


def _decode_in_pieces(stream: bytes, cuts: list[int]) -> tuple[list[Packet], bool]:
    """The packets a decoder fed `stream` split at `cuts` returns, piece after piece, and whether it then raised its
    ProtocolError (which the client ends the connection on, so nothing is fed after it)."""
    decoder, found = Decoder(), []
    bounds = [0, *sorted(cut % (len(stream) + 1) for cut in cuts), len(stream)]
    try:
        for start, end in itertools.pairwise(bounds):
            found += decoder.feed(stream[start:end])
    except ProtocolError:
        return found, True
    return found, False


framed_packets = st.builds(
    lambda first, body: bytes((first,)) + remaining_length(len(body)) + body,
    st.integers(0, 255),
    st.binary(max_size=300),
)
"""Packets whose header is well formed and whose type, flags and body are anything: they reach every decode path."""


@settings(max_examples=1500, deadline=1000)
@given(
    stream=st.one_of(st.binary(max_size=600), st.lists(framed_packets, max_size=6).map(b"".join)),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_any_bytes_from_a_broker_decode_to_packets_or_a_protocol_error_in_whatever_pieces_they_arrive(
    stream: bytes, cuts: list[int]
) -> None:
    """A broker (or whatever answers on its port) may send anything: the decoder returns packets or raises its own
    ProtocolError, which the client turns into a lost connection; any other exception would end the controller's
    connection task with a traceback. How the bytes are split changes nothing, but that the packets before an
    invalid one in the same piece are not returned (the connection is dropped, and what it held is delivered again)."""
    in_pieces, failed_in_pieces = _decode_in_pieces(stream, cuts)
    whole, failed_whole = _decode_in_pieces(stream, [])
    assert all(isinstance(packet, Publish | Connack | PacketIdAck | Ping) for packet in in_pieces)
    assert failed_in_pieces == failed_whole
    assert whole == (in_pieces[: len(whole)] if failed_whole else in_pieces)

import pytest

from controller.amqtt_packet_limit import PacketSizes, PacketTooLarge


def feed_header(sizes: PacketSizes, header: bytes) -> None:
    for byte in header:  # amqtt reads a fixed header a byte at a time
        sizes.saw(bytes([byte]))


@pytest.mark.parametrize(
    ("length_bytes", "declared"),
    [(b"\x00", 0), (b"\x7f", 127), (b"\x80\x01", 128), (b"\xff\x7f", 16383), (b"\x80\x80\x01", 16384)],
)
def test_a_packet_up_to_the_limit_is_let_through_and_followed_to_its_end(length_bytes: bytes, declared: int) -> None:
    sizes = PacketSizes(limit=declared)
    feed_header(sizes, b"\x30" + length_bytes)
    sizes.saw(b"x" * declared)
    feed_header(sizes, b"\xc0\x00")  # the next packet's header is read as one


@pytest.mark.parametrize(("limit", "length_bytes"), [(0, b"\x01"), (127, b"\x80\x01"), (16383, b"\x80\x80\x01")])
def test_a_header_declaring_one_byte_over_the_limit_is_refused(limit: int, length_bytes: bytes) -> None:
    sizes = PacketSizes(limit)
    with pytest.raises(PacketTooLarge):
        feed_header(sizes, b"\x30" + length_bytes)


def test_a_body_read_in_pieces_is_not_taken_for_headers() -> None:
    sizes = PacketSizes(limit=300)
    feed_header(sizes, b"\x82\xac\x02")  # a SUBSCRIBE (first byte has its high bit set) of 300 bytes
    for _ in range(3):
        sizes.saw(b"\xff" * 100)  # bytes that, read as a header, would declare a huge packet
    with pytest.raises(PacketTooLarge):
        feed_header(sizes, b"\x30\xad\x02")


def test_a_remaining_length_longer_than_four_bytes_is_refused() -> None:
    sizes = PacketSizes(limit=2**30)
    with pytest.raises(PacketTooLarge):
        feed_header(sizes, b"\x30\x80\x80\x80\x80")

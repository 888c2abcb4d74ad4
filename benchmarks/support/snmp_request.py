"""Minimal SNMPv2c requests built by hand, for the benchmarks' load generators: a
client that costs next to nothing per request, so that what is measured is the agent.
(Not a benchmark itself: ``make bench`` runs only ``benchmarks/*.py``.)"""

from __future__ import annotations

GET, GETNEXT, GETBULK = 0xA0, 0xA1, 0xA5


def oid_bytes(oid: tuple[int, ...]) -> bytes:
    """The BER content octets of an OBJECT IDENTIFIER."""
    out = bytearray((oid[0] * 40 + oid[1],))
    for arc in oid[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def tlv(tag: int, content: bytes) -> bytes:
    assert len(content) < 128
    return bytes((tag, len(content))) + content


def pdu(tag: int, oid: tuple[int, ...], request_id: int, *, max_repetitions: int = 0) -> bytes:
    """A GetRequest, GetNextRequest or GetBulkRequest (non-repeaters 0) for ``oid`` with a
    4-octet request id; ``max_repetitions`` only for GETBULK."""
    varbinds = tlv(0x30, tlv(0x30, tlv(0x06, oid_bytes(oid)) + b"\x05\x00"))
    field3 = bytes((0x02, 0x01, max_repetitions)) if tag == GETBULK else b"\x02\x01\x00"
    return tlv(tag, b"\x02\x04" + request_id.to_bytes(4, "big") + b"\x02\x01\x00" + field3
               + varbinds)


def v2c_request(tag: int, oid: tuple[int, ...], request_id: int,
                community: bytes = b"public", *, max_repetitions: int = 0) -> bytes:
    """A whole v2c message around :func:`pdu`."""
    assert max_repetitions < 128
    return tlv(0x30, b"\x02\x01\x01" + tlv(0x04, community)
               + pdu(tag, oid, request_id, max_repetitions=max_repetitions))


def get_request(oid: tuple[int, ...], request_id: int, community: bytes = b"public") -> bytes:
    """A v2c GetRequest for ``oid`` with a 4-octet request id."""
    return v2c_request(GET, oid, request_id, community)

"""A minimal SNMPv2c GetRequest built by hand, for the benchmarks' load generators: a
client that costs next to nothing per request, so that what is measured is the agent.
(Not a benchmark itself: ``make bench`` runs only ``benchmarks/*.py``.)"""

from __future__ import annotations


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


def get_request(oid: tuple[int, ...], request_id: int, community: bytes = b"public") -> bytes:
    """A v2c GetRequest for ``oid`` with a 4-octet request id."""
    varbinds = tlv(0x30, tlv(0x30, tlv(0x06, oid_bytes(oid)) + b"\x05\x00"))
    pdu = tlv(0xA0, b"\x02\x04" + request_id.to_bytes(4, "big") + b"\x02\x01\x00\x02\x01\x00"
              + varbinds)
    return tlv(0x30, b"\x02\x01\x01" + tlv(0x04, community) + pdu)

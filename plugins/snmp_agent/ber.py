"""Sans-IO BER codec for the parts of SNMP the fast path handles (RFC 3416, RFC 3417).

Decoding is strict: definite lengths only (RFC 3417 section 8), single-octet tags, no
bytes after the message, lengths that fit their container, INTEGERs within 32 bits and
OBJECT IDENTIFIERs of at most 128 sub-identifiers below 2^32. Anything else raises
:class:`BerError` (a peer's garbage); the agent drops such a message and counts it in
snmpInASNParseErrs.

Encoding produces DER-minimal TLVs, so the agent can encode each served variable once
and answer GETNEXT/GETBULK by joining precomputed bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

# Universal and application tags (RFC 2578 / RFC 3416).
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43

# Exceptions in a Response-PDU varbind (RFC 3416 section 3).
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82

# PDU tags.
GET_REQUEST = 0xA0
GET_NEXT_REQUEST = 0xA1
RESPONSE = 0xA2
SET_REQUEST = 0xA3
GET_BULK_REQUEST = 0xA5
REPORT = 0xA8

# Message versions.
VERSION_1 = 0
VERSION_2C = 1
VERSION_3 = 3

# Error statuses (RFC 3416).
NO_ERROR = 0
TOO_BIG = 1
GEN_ERR = 5
NO_ACCESS = 6
AUTHORIZATION_ERROR = 16

MAX_OID_ARCS = 128
_INT32 = (-(2**31), 2**31 - 1)


class BerError(Exception):
    """A malformed, truncated or unsupported encoding received from a peer."""


# ----------------------------------------------------------------------- encode ------


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + encode_length(n) + content


def encode_integer(value: int, tag: int = INTEGER) -> bytes:
    """A signed INTEGER TLV in the minimal number of octets."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def encode_unsigned(value: int, tag: int) -> bytes:
    """Counter32/Gauge32/TimeTicks: unsigned, a leading zero octet when the top bit is set."""
    return tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def encode_oid_content(oid: tuple[int, ...]) -> bytes:
    if len(oid) < 2 or oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40):
        raise ValueError(f"not an encodable OBJECT IDENTIFIER: {oid}")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = bytearray()
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        chunk[0] &= 0x7F
        chunk.reverse()
        out += chunk
    return bytes(out)


def encode_value(tag: int, value: int | bytes | tuple[int, ...]) -> bytes:
    if tag == INTEGER:
        return encode_integer(value)  # type: ignore[arg-type]
    if tag == OCTET_STRING:
        return tlv(OCTET_STRING, value)  # type: ignore[arg-type]
    if tag == OBJECT_IDENTIFIER:
        return tlv(OBJECT_IDENTIFIER, encode_oid_content(value))  # type: ignore[arg-type]
    if tag in (COUNTER32, GAUGE32, TIMETICKS):
        return encode_unsigned(value, tag)  # type: ignore[arg-type]
    raise ValueError(f"unsupported tag 0x{tag:02x}")


def encode_varbind(oid: tuple[int, ...], tag: int, value: int | bytes | tuple[int, ...]) -> bytes:
    return tlv(SEQUENCE, tlv(OBJECT_IDENTIFIER, encode_oid_content(oid)) + encode_value(tag, value))


def encode_exception_varbind(oid: tuple[int, ...], tag: int) -> bytes:
    """A varbind whose value is noSuchObject, noSuchInstance or endOfMibView."""
    return tlv(SEQUENCE, tlv(OBJECT_IDENTIFIER, encode_oid_content(oid)) + bytes((tag, 0)))


def encode_response(version: int, community: bytes, request_id_tlv: bytes, error_status: int,
                    error_index: int, varbinds: bytes) -> bytes:
    """A community-based message carrying a Response-PDU; ``varbinds`` is the joined
    varbind TLVs and ``request_id_tlv`` the request's request-id, echoed verbatim."""
    pdu = (request_id_tlv + encode_integer(error_status) + encode_integer(error_index)
           + tlv(SEQUENCE, varbinds))
    return tlv(SEQUENCE, encode_integer(version) + tlv(OCTET_STRING, community)
               + tlv(RESPONSE, pdu))


def response_overhead(community: bytes, request_id_tlv: bytes, error_status: int = 0,
                      error_index: int = 0) -> int:
    """Upper bound of a response message's size minus its varbinds' size (four length
    fields of at most 3 octets each: messages are below 65536 octets)."""
    return (1 + 3  # message SEQUENCE
            + 3  # version
            + 1 + len(encode_length(len(community))) + len(community)
            + 1 + 3  # PDU
            + len(request_id_tlv) + len(encode_integer(error_status))
            + len(encode_integer(error_index))
            + 1 + 3)  # varbind list SEQUENCE


# ----------------------------------------------------------------------- decode ------


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """The TLV at ``pos``: (tag, start of value, end of value), all within ``end``."""
    if pos + 2 > end:
        raise BerError("truncated: no room for tag and length")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-octet tags are not used by SNMP")
    first = buf[pos + 1]
    if first < 0x80:
        start = pos + 2
        length = first
    elif first == 0x80:
        raise BerError("indefinite length is not allowed in SNMP (RFC 3417 section 8)")
    else:
        n = first & 0x7F
        if n > 4:
            raise BerError("length field longer than 4 octets")
        start = pos + 2 + n
        if start > end:
            raise BerError("truncated length field")
        length = int.from_bytes(buf[pos + 2:start], "big")
    if start + length > end:
        raise BerError("truncated: value runs past its container")
    return tag, start, start + length


def _expect(buf: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    t, s, e = read_tlv(buf, pos, end)
    if t != tag:
        raise BerError(f"{what}: expected tag 0x{tag:02x}, got 0x{t:02x}")
    return s, e


def decode_integer(buf: bytes, start: int, end: int, low: int = _INT32[0],
                   high: int = _INT32[1]) -> int:
    if start == end:
        raise BerError("empty INTEGER")
    if end - start > 5:
        raise BerError("INTEGER wider than 32 bits")
    value = int.from_bytes(buf[start:end], "big", signed=True)
    if not low <= value <= high:
        raise BerError(f"INTEGER {value} outside {low}..{high}")
    return value


def decode_oid(buf: bytes, start: int, end: int) -> tuple[int, ...]:
    if start == end:
        raise BerError("empty OBJECT IDENTIFIER")
    if buf[end - 1] & 0x80:
        raise BerError("truncated sub-identifier")
    arcs: list[int] = []
    append = arcs.append
    value = 0
    fresh = True
    for b in buf[start:end]:
        if b < 0x80:
            value |= b
            if value > 0xFFFFFFFF + 80 or (value > 0xFFFFFFFF and arcs):
                raise BerError("sub-identifier above 2^32-1")
            append(value)
            value = 0
            fresh = True
        else:
            if fresh and b == 0x80:
                raise BerError("non-minimal sub-identifier")
            value = (value | (b & 0x7F)) << 7
            if value >> 40:  # far beyond 2^32-1: stop before it grows
                raise BerError("sub-identifier above 2^32-1")
            fresh = False
    first = arcs[0]
    if first < 40:
        arcs[0:1] = (0, first)
    elif first < 80:
        arcs[0:1] = (1, first - 40)
    else:
        arcs[0:1] = (2, first - 80)
        if arcs[1] > 0xFFFFFFFF:
            raise BerError("sub-identifier above 2^32-1")
    if len(arcs) > MAX_OID_ARCS:
        raise BerError("more than 128 sub-identifiers")
    return tuple(arcs)


@dataclass(slots=True)
class Request:
    """A decoded community-based (v1/v2c) request message."""

    version: int
    community: bytes
    pdu_type: int
    request_id_tlv: bytes  #: echoed verbatim in the response
    field2: int  #: error-status, or non-repeaters in a GetBulkRequest-PDU
    field3: int  #: error-index, or max-repetitions in a GetBulkRequest-PDU
    oids: list[tuple[int, ...]]
    varbinds: list[bytes]  #: each request varbind's TLV, for responses that echo them


def decode_version(data: bytes) -> int:
    """The msgVersion of any SNMP message (v1, v2c or v3)."""
    s, e = _expect(data, 0, len(data), SEQUENCE, "message")
    if e != len(data):
        raise BerError("bytes after the message")
    vs, ve = _expect(data, s, e, INTEGER, "version")
    return decode_integer(data, vs, ve)


def decode_request(data: bytes) -> Request:
    """Decode a v1/v2c message; raise :class:`BerError` on anything malformed."""
    end = len(data)
    s, e = _expect(data, 0, end, SEQUENCE, "message")
    if e != end:
        raise BerError("bytes after the message")
    vs, ve = _expect(data, s, e, INTEGER, "version")
    version = decode_integer(data, vs, ve)
    cs, ce = _expect(data, ve, e, OCTET_STRING, "community")
    return decode_pdu(data, ce, e, version=version, community=data[cs:ce])


def decode_pdu(data: bytes, start: int, end: int, *, version: int = VERSION_3,
               community: bytes = b"") -> Request:
    """Decode the PDU that fills ``data[start:end]`` (RFC 3416 section 3)."""
    pdu_type, ps, pe = read_tlv(data, start, end)
    if pe != end:
        raise BerError("bytes after the PDU")
    if pdu_type & 0xE0 != 0xA0:
        raise BerError(f"not a PDU: tag 0x{pdu_type:02x}")
    rs, re_ = _expect(data, ps, pe, INTEGER, "request-id")
    decode_integer(data, rs, re_)
    f2s, f2e = _expect(data, re_, pe, INTEGER, "error-status")
    f3s, f3e = _expect(data, f2e, pe, INTEGER, "error-index")
    ls, le = _expect(data, f3e, pe, SEQUENCE, "variable-bindings")
    if le != pe:
        raise BerError("bytes after the variable-bindings")
    oids: list[tuple[int, ...]] = []
    varbinds: list[bytes] = []
    pos = ls
    while pos < le:
        bs, be = _expect(data, pos, le, SEQUENCE, "varbind")
        os_, oe = _expect(data, bs, be, OBJECT_IDENTIFIER, "varbind name")
        _, _, value_end = read_tlv(data, oe, be)
        if value_end != be:
            raise BerError("bytes after a varbind's value")
        oids.append(decode_oid(data, os_, oe))
        varbinds.append(data[pos:be])
        pos = be
    return Request(
        version=version,
        community=community,
        pdu_type=pdu_type,
        request_id_tlv=data[ps:re_],
        field2=decode_integer(data, f2s, f2e),
        field3=decode_integer(data, f3s, f3e),
        oids=oids,
        varbinds=varbinds,
    )


@dataclass(frozen=True, slots=True)
class ScopedPdu:
    """A decoded ScopedPDU (RFC 3412 section 6): context and request."""

    context_engine_id: bytes
    context_name: bytes
    request: Request


def decode_scoped_pdu(data: bytes, start: int = 0, end: int | None = None, *,
                      padded: bool = False) -> ScopedPdu:
    """Decode the ScopedPDU at ``data[start:end]``. ``padded``: octets after it are
    ignored (a decrypted PDU may carry padding, RFC 3414 section 8.3.2)."""
    end = len(data) if end is None else end
    s, e = _expect(data, start, end, SEQUENCE, "scopedPDU")
    if e != end and not padded:
        raise BerError("bytes after the scopedPDU")
    es, ee = _expect(data, s, e, OCTET_STRING, "contextEngineID")
    ns, ne = _expect(data, ee, e, OCTET_STRING, "contextName")
    return ScopedPdu(data[es:ee], data[ns:ne], decode_pdu(data, ne, e))


def encode_pdu(tag: int, request_id_tlv: bytes, error_status: int, error_index: int,
               varbinds: bytes) -> bytes:
    return tlv(tag, request_id_tlv + encode_integer(error_status)
               + encode_integer(error_index) + tlv(SEQUENCE, varbinds))


@dataclass(slots=True, kw_only=True)
class V3Header:
    """An SNMPv3 message's header fields and, with USM, its security parameters (RFC
    3412 section 6, RFC 3414 section 2.4), before authentication and decryption."""

    msg_max_size: int
    security_parameters_length: int
    msg_id: int = 0
    msg_id_tlv: bytes = b""
    flags: int = 0  #: msgFlags: 1 auth, 2 priv, 4 reportable
    security_model: int = 0
    data_tag: int = 0  #: SEQUENCE (plaintext scoped PDU) or OCTET STRING (encrypted)
    data_tlv_start: int = 0  #: where msgData's tag is
    data_start: int = 0  #: msgData's value, as offsets into the message
    data_end: int = 0
    engine_id: bytes = b""  #: msgAuthoritativeEngineID
    engine_boots: int = 0
    engine_time: int = 0
    user_name: bytes = b""
    auth_start: int = 0  #: msgAuthenticationParameters' value, as offsets
    auth_end: int = 0
    priv_params: bytes = b""


USM = 3  #: msgSecurityModel of the User-based Security Model (RFC 3414)


def decode_v3_header(data: bytes) -> V3Header:
    """Check an SNMPv3 message's outer structure (RFC 3412 section 6) and, for USM
    (RFC 3414 section 2.4), its security parameters; the (possibly encrypted) scoped PDU
    is left to the caller."""
    end = len(data)
    s, e = _expect(data, 0, end, SEQUENCE, "message")
    if e != end:
        raise BerError("bytes after the message")
    vs, ve = _expect(data, s, e, INTEGER, "msgVersion")
    if decode_integer(data, vs, ve) != VERSION_3:
        raise BerError("not an SNMPv3 message")
    hs, he = _expect(data, ve, e, SEQUENCE, "msgGlobalData")
    ids, ide = _expect(data, hs, he, INTEGER, "msgID")
    msg_id = decode_integer(data, ids, ide, 0)
    ms, me = _expect(data, ide, he, INTEGER, "msgMaxSize")
    max_size = decode_integer(data, ms, me, 484)
    fs, fe = _expect(data, me, he, OCTET_STRING, "msgFlags")
    if fe - fs != 1:
        raise BerError("msgFlags must be one octet")
    sms, sme = _expect(data, fe, he, INTEGER, "msgSecurityModel")
    model = decode_integer(data, sms, sme, 1)
    if sme != he:
        raise BerError("bytes after msgSecurityModel")
    ps, pe = _expect(data, he, e, OCTET_STRING, "msgSecurityParameters")
    tag, ds, data_end = read_tlv(data, pe, e)
    if tag not in (SEQUENCE, OCTET_STRING):
        raise BerError("msgData is neither a scoped PDU nor encrypted")
    if data_end != e:
        raise BerError("bytes after msgData")
    header = V3Header(msg_max_size=max_size, security_parameters_length=pe - ps,
                      msg_id=msg_id, msg_id_tlv=data[hs:ide],
                      flags=data[fs], security_model=model, data_tag=tag, data_tlv_start=pe,
                      data_start=ds,
                      data_end=data_end)
    if model == USM:
        _decode_usm(data, ps, pe, header)
    return header


def _decode_usm(data: bytes, start: int, end: int, h: V3Header) -> None:
    s, e = _expect(data, start, end, SEQUENCE, "UsmSecurityParameters")
    if e != end:
        raise BerError("bytes after UsmSecurityParameters")
    es, ee = _expect(data, s, e, OCTET_STRING, "msgAuthoritativeEngineID")
    if ee - es > 32:
        raise BerError("msgAuthoritativeEngineID longer than 32 octets")
    bs, be = _expect(data, ee, e, INTEGER, "msgAuthoritativeEngineBoots")
    ts, te = _expect(data, be, e, INTEGER, "msgAuthoritativeEngineTime")
    us, ue = _expect(data, te, e, OCTET_STRING, "msgUserName")
    if ue - us > 32:
        raise BerError("msgUserName longer than 32 octets")
    a_s, ae = _expect(data, ue, e, OCTET_STRING, "msgAuthenticationParameters")
    xs, xe = _expect(data, ae, e, OCTET_STRING, "msgPrivacyParameters")
    if xe != e:
        raise BerError("bytes after msgPrivacyParameters")
    h.engine_id = data[es:ee]
    h.engine_boots = decode_integer(data, bs, be, 0)
    h.engine_time = decode_integer(data, ts, te, 0)
    h.user_name = data[us:ue]
    h.auth_start, h.auth_end = a_s, ae
    h.priv_params = data[xs:xe]

"""The fast path's BER codec: exact encodings, strict decoding, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.snmp_agent import ber

oids = st.tuples(st.integers(0, 1), st.integers(0, 39)).flatmap(
    lambda head: st.lists(st.integers(0, 2**32 - 1), max_size=20).map(
        lambda tail: head + tuple(tail)))


def request(pdu_type=ber.GET_REQUEST, *, version=1, community=b"public", request_id=1234,
            f2=0, f3=0, names=((1, 3, 6, 1, 2, 1, 1, 5, 0),)) -> bytes:
    varbinds = b"".join(ber.tlv(ber.SEQUENCE, ber.tlv(ber.OBJECT_IDENTIFIER,
                                                      ber.encode_oid_content(o)) + b"\x05\x00")
                        for o in names)
    pdu = (ber.encode_integer(request_id) + ber.encode_integer(f2) + ber.encode_integer(f3)
           + ber.tlv(ber.SEQUENCE, varbinds))
    return ber.tlv(ber.SEQUENCE, ber.encode_integer(version) + ber.tlv(ber.OCTET_STRING, community)
                   + ber.tlv(pdu_type, pdu))


@pytest.mark.parametrize(("value", "encoded"), [
    (0, "020100"), (127, "02017f"), (128, "02020080"), (-1, "0201ff"), (-128, "020180"),
    (-129, "0202ff7f"), (2**31 - 1, "02047fffffff"), (-(2**31), "020480000000"),
])
def test_integer(value, encoded):
    assert ber.encode_integer(value).hex() == encoded
    raw = bytes.fromhex(encoded)
    assert ber.decode_integer(raw, 2, len(raw)) == value


@pytest.mark.parametrize(("value", "tag", "encoded"), [
    (0, ber.COUNTER32, "410100"), (255, ber.GAUGE32, "420200ff"),
    (2**32 - 1, ber.TIMETICKS, "430500ffffffff"),
])
def test_unsigned(value, tag, encoded):
    assert ber.encode_unsigned(value, tag).hex() == encoded


def test_oid_and_length_encodings():
    assert ber.encode_oid_content((1, 3, 6, 1, 4, 1, 32473)).hex() == "2b0601040181fd59"
    assert ber.encode_length(127) == b"\x7f"
    assert ber.encode_length(128) == b"\x81\x80"
    assert ber.encode_length(1472) == b"\x82\x05\xc0"
    with pytest.raises(ValueError):
        ber.encode_oid_content((3, 1))


@given(oids)
def test_oid_round_trip(oid):
    content = ber.encode_oid_content(oid)
    assert ber.decode_oid(content, 0, len(content)) == oid


@given(st.integers(-(2**31), 2**31 - 1))
def test_integer_round_trip(value):
    raw = ber.encode_integer(value)
    tag, s, e = ber.read_tlv(raw, 0, len(raw))
    assert tag == ber.INTEGER and ber.decode_integer(raw, s, e) == value


def test_decode_request():
    raw = request(ber.GET_BULK_REQUEST, f2=1, f3=25, request_id=-7,
                  names=((1, 3, 6, 1), (1, 3, 6, 1, 4, 1, 32473)))
    req = ber.decode_request(raw)
    assert (req.version, req.community, req.pdu_type) == (1, b"public", ber.GET_BULK_REQUEST)
    assert (req.field2, req.field3) == (1, 25)
    assert req.request_id_tlv == ber.encode_integer(-7)
    assert req.oids == [(1, 3, 6, 1), (1, 3, 6, 1, 4, 1, 32473)]
    assert req.varbinds[0] == bytes.fromhex("300706032b06010500")
    assert ber.decode_version(raw) == 1


def test_response_encoding_and_overhead():
    vb = ber.encode_varbind((1, 3, 6, 1, 2, 1, 1, 5, 0), ber.OCTET_STRING, b"gw")
    assert vb.hex() == "300e06082b06010201010500" + "0402" + b"gw".hex()
    msg = ber.encode_response(1, b"public", ber.encode_integer(1234), 0, 0, vb)
    assert ber.decode_version(msg) == 1
    assert len(msg) <= ber.response_overhead(b"public", ber.encode_integer(1234)) + len(vb)
    assert ber.encode_exception_varbind((1, 3), ber.END_OF_MIB_VIEW).hex() == "300506012b8200"


@pytest.mark.parametrize("raw", [
    b"",
    b"\x30",
    b"\x30\x80\x02\x01\x01\x00\x00",  # indefinite length
    b"\x30\x03\x02\x01\x01\x00",  # a byte after the message
    b"\x30\x85\x00\x00\x00\x00\x03",  # length of length > 4
    b"\x31\x03\x02\x01\x01",  # not a SEQUENCE
    b"\x30\x03\x02\x01",  # truncated
    b"\x30\x08\x02\x06\x01\x00\x00\x00\x00\x00",  # INTEGER wider than 32 bits
    b"\x30\x02\x02\x00",  # empty INTEGER
    b"\x30\x03\x1f\x01\x01",  # multi-octet tag
])
def test_malformed_messages(raw):
    with pytest.raises(ber.BerError):
        ber.decode_version(raw)
    with pytest.raises(ber.BerError):
        ber.decode_request(raw)


@pytest.mark.parametrize("content", [
    b"", b"\x2b\x86", b"\x2b\x80\x01", b"\x2b\x90\x80\x80\x80\x80\x01",
    b"\x2b" + b"\x01" * 128,
])
def test_malformed_oids(content):
    with pytest.raises(ber.BerError):
        ber.decode_oid(content, 0, len(content))


def test_every_truncation_of_a_request_is_an_error():
    raw = request(ber.GET_NEXT_REQUEST, names=((1, 3, 6, 1, 4, 1, 32473, 2, 1, 1, 5, 1, 2),))
    ber.decode_request(raw)
    for n in range(len(raw)):
        with pytest.raises(ber.BerError):
            ber.decode_request(raw[:n])


def test_structure_errors_inside_the_pdu():
    good = request()
    # a PDU tag that is not context-constructed, and a value running past its varbind
    with pytest.raises(ber.BerError):
        ber.decode_request(good.replace(b"\xa0", b"\x04", 1))
    vb = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OBJECT_IDENTIFIER, b"\x2b") + b"\x05\x00\x05\x00")
    pdu = ber.encode_integer(1) + ber.encode_integer(0) + ber.encode_integer(0) + ber.tlv(
        ber.SEQUENCE, vb)
    msg = ber.tlv(ber.SEQUENCE, ber.encode_integer(1) + ber.tlv(ber.OCTET_STRING, b"p")
                  + ber.tlv(ber.GET_REQUEST, pdu))
    with pytest.raises(ber.BerError):
        ber.decode_request(msg)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes_raise_only_ber_errors(raw):
    for decode in (ber.decode_request, ber.decode_version, ber.decode_v3_header):
        try:
            decode(raw)
        except ber.BerError:
            pass


@settings(max_examples=300)
@given(st.data())
def test_fuzz_mutated_requests_raise_only_ber_errors(data):
    raw = bytearray(request(ber.GET_BULK_REQUEST, f3=10, names=((1, 3, 6, 1, 2, 1, 1),)))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        ber.decode_request(bytes(raw))
    except ber.BerError:
        pass


def usm_message(*, user: bytes = b"nms", engine_id: bytes = b"\x80\x00\x7e\xd9\x05ab",
                auth: bytes = b"\x00" * 12, priv: bytes = b"\x01" * 8, flags: int = 7) -> bytes:
    header = ber.tlv(ber.SEQUENCE, ber.encode_integer(42) + ber.encode_integer(1472)
                     + ber.tlv(ber.OCTET_STRING, bytes((flags,))) + ber.encode_integer(3))
    usm = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, engine_id) + ber.encode_integer(5)
                  + ber.encode_integer(1234) + ber.tlv(ber.OCTET_STRING, user)
                  + ber.tlv(ber.OCTET_STRING, auth) + ber.tlv(ber.OCTET_STRING, priv))
    return ber.tlv(ber.SEQUENCE, ber.encode_integer(3) + header + ber.tlv(ber.OCTET_STRING, usm)
                   + ber.tlv(ber.OCTET_STRING, b"\x11" * 30))


def test_v3_header():
    msg = usm_message()
    h = ber.decode_v3_header(msg)
    assert (h.msg_max_size, h.security_parameters_length) == (1472, 47)
    assert (h.msg_id, h.msg_id_tlv, h.flags, h.security_model) == (42, b"\x02\x01\x2a", 7, 3)
    assert (h.engine_id, h.engine_boots, h.engine_time, h.user_name) == (
        b"\x80\x00\x7e\xd9\x05ab", 5, 1234, b"nms")
    assert msg[h.auth_start:h.auth_end] == b"\x00" * 12 and h.priv_params == b"\x01" * 8
    assert (h.data_tag, msg[h.data_start:h.data_end]) == (ber.OCTET_STRING, b"\x11" * 30)
    with pytest.raises(ber.BerError):  # msgMaxSize below the minimum of 484
        ber.decode_v3_header(msg.replace(ber.encode_integer(1472), ber.encode_integer(400)))
    with pytest.raises(ber.BerError):  # v2c is not v3
        ber.decode_v3_header(request())


@pytest.mark.parametrize("msg", [
    usm_message(user=b"u" * 33),  # msgUserName is SnmpAdminString (SIZE(0..32))
    usm_message(engine_id=b"e" * 33),
    usm_message().replace(b"\x04\x08\x01", b"\x02\x08\x01"),  # privParameters not a string
], ids=["long-user", "long-engine-id", "priv-not-octets"])
def test_garbled_usm_parameters_are_parse_errors(msg):
    with pytest.raises(ber.BerError):
        ber.decode_v3_header(msg)
    for n in range(1, len(msg)):
        with pytest.raises(ber.BerError):
            ber.decode_v3_header(msg[:n])

def reference_decode_oid(content: bytes) -> tuple[int, ...] | None:
    """X.690 8.19 read plainly (None: not a valid SNMP OID): the codec must agree."""
    if not content or content[-1] & 0x80:
        return None
    raw, value, start = [], 0, True
    for b in content:
        if start and b == 0x80:
            return None
        value = value * 128 + (b & 0x7F)
        start = not b & 0x80
        if start:
            raw.append(value)
            value = 0
    first = raw[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
    arcs = (*head, *raw[1:])
    if any(a > 0xFFFFFFFF for a in arcs) or len(arcs) > 128:
        return None
    return arcs


@given(st.binary(max_size=40) | st.lists(st.sampled_from(
    [b"\x80", b"\x81", b"\xff", b"\x8f\xff\xff\xff\x7f", b"\x90\x80\x80\x80\x00", b"\x01",
     b"\x7f", b"\x2b", b"\x82\xfd\x59"]), max_size=12).map(b"".join))
def test_decode_oid_agrees_with_a_plain_reading_of_x690(content):
    expected = reference_decode_oid(content)
    if expected is None:
        with pytest.raises(ber.BerError):
            ber.decode_oid(content, 0, len(content))
    else:
        assert ber.decode_oid(content, 0, len(content)) == expected

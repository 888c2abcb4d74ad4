"""The two checksums of the frame: LCHKSUM (over LENID) and CHKSUM (over the characters).

Both are two's complements: LCHKSUM of the sum of LENID's three nibbles, modulo 16;
CHKSUM of the sum of the ASCII codes between SOI and CHKSUM, modulo 65536 (``& 0xFFFF``,
not ``% 0xFFFF``, which one public driver gets wrong for frames of ~1250 characters).
"""

from __future__ import annotations

#: LENID is 12 bits: INFO can never exceed 4095 characters.
MAX_LENID = 0x0FFF


def length_checksum(lenid: int) -> int:
    """LCHKSUM for ``lenid``: ``(-(n2 + n1 + n0)) & 0xF`` over LENID's nibbles."""
    if not 0 <= lenid <= MAX_LENID:
        raise ValueError(f"LENID {lenid} is outside 0..{MAX_LENID}")
    return -((lenid >> 8) + ((lenid >> 4) & 0xF) + (lenid & 0xF)) & 0xF


def encode_length(lenid: int) -> int:
    """The 16-bit LENGTH field: LCHKSUM in the top nibble, LENID below."""
    return (length_checksum(lenid) << 12) | lenid


def frame_checksum(chars: bytes) -> int:
    """CHKSUM over ``chars``: the frame's characters from VER to the last INFO character."""
    return -sum(chars) & 0xFFFF

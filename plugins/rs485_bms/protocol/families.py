"""The protocol families by name, with the facts about each that are not frame layouts.

:class:`Family` is the name a config, the poller and the simulator use for a family;
its value is the key of :data:`~plugins.rs485_bms.protocol.PROFILES`. The timing and
the addresses ``addresses: auto`` probes come from bms-protocol.md (sections 6 and 7.1).
"""

from __future__ import annotations

import enum

#: The two commands every family's poll cycle is built from (Daren/Basen has no 0x44:
#: its 0x42 answer carries the status words too), and the CID2 a device answers a
#: command it does not know with.
ANALOG = 0x42
STATUS = 0x44
CID2_INVALID = 0x04


class Family(enum.StrEnum):
    """Protocol families the poller can speak (the simulator speaks the first three)."""

    PACE_V25 = "pace_v25"
    PYLONTECH = "pylontech"
    SEPLOS_V2 = "seplos_v2"
    EG4_LIFEPOWER4 = "eg4_lifepower4"
    DAREN_BASEN = "daren_basen"


#: Per-family defaults: answer timeout, gap between transactions (ms). The timeout runs
#: from the end of our request to the first answer byte; once bytes flow, a silence of
#: ``byte_timeout_ms`` ends the frame (a long FF answer takes 1.5 s at 9600 Bd).
FAMILY_TIMING: dict[Family, tuple[int, int]] = {
    Family.PACE_V25: (500, 20),
    Family.PYLONTECH: (1000, 50),
    Family.SEPLOS_V2: (1000, 100),
    Family.EG4_LIFEPOWER4: (2000, 200),
    Family.DAREN_BASEN: (1000, 50),
}

#: What ``addresses: auto`` probes (bms-protocol.md 7.1): the 4-bit DIP addresses 1..15
#: (0 is a stand-alone pack); Pylontech batteries 2..13 of group 0 (other groups: list
#: their addresses). Each address keeps a position of its own, found or not, so a
#: module's position depends on its DIP address, never on the order it was found in.
AUTO_ADDRESSES: dict[Family, range] = {
    Family.PACE_V25: range(1, 16),
    Family.PYLONTECH: range(2, 14),
    Family.SEPLOS_V2: range(1, 16),
    Family.EG4_LIFEPOWER4: range(1, 16),
    Family.DAREN_BASEN: range(1, 16),
}

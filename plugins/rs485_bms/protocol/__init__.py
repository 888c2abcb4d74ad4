"""Sans-IO codec of the YD/T 1363.3-style ASCII protocol spoken by 48 V LiFePO4 BMSs.

Layers, each usable on its own: checksums -> frames (:func:`encode_frame`,
:func:`parse_frame`) -> incremental reader (:class:`FrameReader`) -> one-request session
(:class:`Session`) -> family profiles (:data:`PROFILES`: request builders and answer
decoders/encoders driven by declarative layouts). No I/O happens here; time is passed
in. Current is always reported with **+ = charging**, as every family sends it.
"""

from plugins.rs485_bms.protocol.answers import (
    PackAnswer,
    ProtocolVersion,
    RawAnswer,
    describe,
    encode_info,
)
from plugins.rs485_bms.protocol.checksum import (
    MAX_LENID,
    encode_length,
    frame_checksum,
    length_checksum,
)
from plugins.rs485_bms.protocol.daren import DarenAnalog, DarenManufacturerInfo
from plugins.rs485_bms.protocol.eg4 import Eg4Alarm, Eg4Pack
from plugins.rs485_bms.protocol.errors import (
    RTN_MEANINGS,
    AddressError,
    ChecksumError,
    CidError,
    FrameTooLongError,
    InterruptedFrameError,
    LayoutError,
    LengthChecksumError,
    LengthError,
    NonHexError,
    ProtocolError,
    RtnError,
    TruncatedError,
    rtn_meaning,
)
from plugins.rs485_bms.protocol.frame import MAX_FRAME_BYTES, Frame, encode_frame, parse_frame
from plugins.rs485_bms.protocol.pace import (
    PaceAlarm,
    PaceCapacity,
    PacePack,
    PacePackCount,
    PaceSerial,
    PaceSwitchState,
    PaceVersion,
)
from plugins.rs485_bms.protocol.profiles import (
    ALL_PACKS,
    DAREN_BASEN,
    EG4_LIFEPOWER4,
    PACE_V25,
    PROFILES,
    PYLONTECH,
    SEPLOS_V2,
    Command,
    Profile,
    RequestInfo,
    decode_answer,
    decode_info,
    decode_record,
    describe_request,
    get_profile,
    infer_profiles,
    make_request,
    make_response,
)
from plugins.rs485_bms.protocol.pylontech import (
    PylonAlarm,
    PylonFirmware,
    PylonManagement,
    PylonManufacturerInfo,
    PylonModule,
    PylonSerial,
    PylonSystemParameters,
)
from plugins.rs485_bms.protocol.reader import FrameReader
from plugins.rs485_bms.protocol.seplos import (
    SeplosAlarm,
    SeplosIntraPack,
    SeplosManufacturerInfo,
    SeplosPack,
)
from plugins.rs485_bms.protocol.session import (
    CONSOLE_ADR,
    INTRA_PACK_RTN,
    Answer,
    ResponseTimeout,
    Session,
    SessionCounters,
    pairs_as_console_answer,
)

__all__ = [
    "ALL_PACKS", "CONSOLE_ADR", "DAREN_BASEN", "EG4_LIFEPOWER4", "INTRA_PACK_RTN", "MAX_FRAME_BYTES",
    "MAX_LENID", "PACE_V25", "PROFILES", "PYLONTECH", "RTN_MEANINGS", "SEPLOS_V2",
    "AddressError", "Answer", "ChecksumError", "CidError", "Command", "DarenAnalog",
    "DarenManufacturerInfo", "Eg4Alarm", "Eg4Pack", "Frame", "FrameReader",
    "FrameTooLongError", "InterruptedFrameError", "LayoutError", "LengthChecksumError",
    "LengthError", "NonHexError", "PaceAlarm", "PaceCapacity", "PacePack", "PacePackCount",
    "PaceSerial", "PaceSwitchState", "PaceVersion", "PackAnswer", "Profile",
    "ProtocolError", "ProtocolVersion", "PylonAlarm", "PylonFirmware", "PylonManagement",
    "PylonManufacturerInfo", "PylonModule", "PylonSerial", "PylonSystemParameters",
    "RawAnswer", "RequestInfo", "ResponseTimeout", "RtnError", "SeplosAlarm",
    "SeplosIntraPack", "SeplosManufacturerInfo", "SeplosPack", "Session",
    "SessionCounters", "TruncatedError", "decode_answer", "decode_info", "decode_record",
    "describe", "describe_request", "encode_frame", "encode_info", "encode_length",
    "frame_checksum", "get_profile", "infer_profiles", "length_checksum", "make_request",
    "make_response", "pairs_as_console_answer", "parse_frame", "rtn_meaning",
]

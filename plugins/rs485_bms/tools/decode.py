"""``bms-gateway decode [--family F] [--command CID2] [--json] [FRAME ...]``.

Decodes frames given as arguments, or read from stdin one line at a time as they appear
in a log: the ``~...`` part of each line is found (surrounding text, whitespace and a
missing CR are tolerated; several frames per line are fine).

Each answer is decoded as the answer to the request frame just before it (same ADR and
CID1), as in a log of a poll; an answer with ADR 00 and the request's VER and CID1 pairs
with it too (an RS232 console port answers with ADR 00 whatever the module's address;
the view then names the request's address, ``request_adr``); failing that, as the answer to ``--command``; failing that,
by its shape, if exactly one command of the family fits. The family comes from
``--family`` or from VER and CID1: 0x25 is PACE, 0x20/0x4A EG4, 0x22/0x4A Daren;
0x20/0x46 is both Pylontech and Seplos V2, so such a frame is decoded only if its
payload fits one of the two, and otherwise reported as ambiguous.

Without ``--json`` a readable table is printed per frame; with ``--json`` one JSON
object per frame and line, with the field names and units of the test vectors
(``cell_mv``, ``temps_c``, ``current_a`` (+ = charging), ``pack_v``, ``remaining_ah``,
``packs`` for all-packs answers, ``adr``, ``rtn``, ...). A frame that cannot be decoded
gets ``error`` (e.g. ``chksum_mismatch``), ``kind`` (e.g. ``chksum``) and ``message``.
Exit status: 0 when every frame decoded, 1 otherwise (an RTN other than 0 counts as an
error; a Seplos 0x5A intra-pack record does not).

A bus capture (docs/polling.md) is read with ``--capture FILE...``, or found on stdin
by its header line: each record is decoded in turn, its view carrying the record's
``t`` (time), ``dir`` (``tx``/``rx``) and ``result`` (what the gateway made of it when
it recorded it); a timeout has no frame. Corrupt lines are reported on stderr with
file and line number, skipped, and make the exit status 1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from collections.abc import Iterable
from typing import Any

from plugins.rs485_bms.protocol import (
    PROFILES,
    Frame,
    Profile,
    ProtocolError,
    RtnError,
    decode_info,
    decode_record,
    describe,
    describe_request,
    get_profile,
    infer_profiles,
    pairs_as_console_answer,
    parse_frame,
    rtn_meaning,
)
from plugins.rs485_bms.protocol.capture import (
    Capture,
    CaptureRecord,
    is_capture_line,
    iso_time,
    read_capture,
)

#: ``~`` and what follows up to the first character that cannot belong to a frame.
FRAME_PATTERN = re.compile(r"~[0-9A-Za-z]*")


def _cid2(text: str) -> int:
    value = int(text, 16)
    if not 0 <= value <= 0xFF:
        raise ValueError(text)
    return value


_cid2.__name__ = "CID2"  # argparse names the type in its error message


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``decode`` subcommand's arguments to ``parser``."""
    parser.add_argument("frames", nargs="*", metavar="FRAME",
                        help="frames such as ~25014642E00201FD30 (default: read stdin, "
                             "one or more frames per line, log text around them ignored)")
    parser.add_argument("--family", choices=sorted(PROFILES),
                        help="protocol family (default: from VER and CID1)")
    parser.add_argument("--command", type=_cid2, metavar="CID2",
                        help="hex CID2 a lone answer replies to, e.g. 42 (default: the "
                             "request frame before it, else the answer's shape)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per frame and line")
    parser.add_argument("--capture", nargs="+", metavar="FILE",
                        help="read bus capture files (oldest first) instead of frames; a "
                        "capture on stdin is recognised by its header line")


def run(args: argparse.Namespace) -> int:
    """Decode and print every frame; 0 if all decoded, 1 otherwise."""
    decoder = FrameDecoder(family=get_profile(args.family) if args.family else None,
                           command=args.command)
    if args.capture:
        if args.frames:
            print("bms-gateway decode: --capture reads files: give no FRAME", file=sys.stderr)
            return 2
        capture = Capture()
        for path in args.capture:
            try:
                with open(path, encoding="ascii", errors="replace", newline="") as f:
                    read_capture(f, source=path, into=capture)
            except OSError as exc:
                print(f"bms-gateway decode: {exc}", file=sys.stderr)
                return 1
        return _print_capture(decoder, capture, json_lines=args.json)
    sources: Iterable[str] = args.frames if args.frames else sys.stdin
    if not args.frames:
        first = sys.stdin.readline()
        if is_capture_line(first):
            capture = read_capture(itertools.chain([first], sys.stdin), source="<stdin>")
            return _print_capture(decoder, capture, json_lines=args.json)
        sources = itertools.chain([first], sys.stdin)
    status = 0
    for source in sources:
        found = FRAME_PATTERN.findall(source)
        views = [decoder.decode(f.encode("ascii")) for f in found]
        if args.frames and not found:
            views = [_failure({"frame": source.strip()}, "no_frame", "no_frame",
                              "no '~' frame in this argument")]
        for view in views:
            status = max(status, 1 if "error" in view else 0)
            sys.stdout.write(json.dumps(view) + "\n" if args.json else format_view(view))
    return status


def _print_capture(decoder: FrameDecoder, capture: Capture, *, json_lines: bool) -> int:
    for problem in capture.problems:
        print(problem, file=sys.stderr)
    status = 1 if capture.corrupt else 0
    for record in capture.records:
        view = decode_record_view(decoder, record)
        if "error" in view:
            status = 1
        sys.stdout.write(json.dumps(view) + "\n" if json_lines else format_view(view))
    return status


def decode_record_view(decoder: FrameDecoder, record: CaptureRecord) -> dict[str, Any]:
    """The view of one capture record: its frame decoded, with ``t``, ``dir`` and
    ``result`` first. A timeout's view has an empty frame and no error; bytes that are
    no frame (garbage, a collision) are shown with escapes, with the codec's error."""
    head: dict[str, Any] = {"t": iso_time(record.at), "dir": record.direction,
                            "result": record.result}
    raw = record.raw.removesuffix(b"\r")
    if not raw:
        return {**head, "frame": ""}
    text = raw.decode("latin-1").encode("unicode_escape").decode("ascii")
    if not raw.startswith(b"~"):
        view = _failure({"frame": text}, "garbage", "garbage", "bytes outside any frame")
    elif _printable(raw):
        view = decoder.decode(raw)
    else:  # a collision or noise inside a frame: the codec names the first bad byte
        try:
            parse_frame(raw)
            view = _failure({"frame": text}, "non_hex", "non_hex", "a byte that is no "
                            "printable character")
        except ProtocolError as exc:
            view = _failed({"frame": text}, exc)
    return {**head, **view}


def _printable(raw: bytes) -> bool:
    return all(0x20 <= b < 0x7F for b in raw)


def _failure(view: dict[str, Any], code: str, kind: str, message: str) -> dict[str, Any]:
    view.update(error=code, kind=kind, message=message)
    return view


def _failed(view: dict[str, Any], exc: ProtocolError) -> dict[str, Any]:
    return _failure(view, exc.code, exc.kind, str(exc))


class FrameDecoder:
    """Decodes a sequence of frames, pairing each answer with the request before it."""

    def __init__(self, *, family: Profile | None = None, command: int | None = None) -> None:
        self.family = family
        self.command = command
        self._request: Frame | None = None

    def decode(self, raw: bytes) -> dict[str, Any]:
        """The view of one frame (``error`` set if it could not be decoded)."""
        view: dict[str, Any] = {"frame": raw.decode("ascii")}
        try:
            frame = parse_frame(raw)
        except ProtocolError as exc:
            return _failed(view, exc)
        view["adr"] = frame.adr
        profiles = (self.family,) if self.family else infer_profiles(frame)
        if not profiles:
            return _failure(view, "unknown_family", "family",
                            f"VER 0x{frame.ver:02X} with CID1 0x{frame.cid1:02X} is no known "
                            "family; give --family")
        if not any(p.is_answer(frame) for p in profiles):
            return self._request_view(view, frame, profiles)
        request = self._request
        self._request = None
        if request is not None and pairs_as_console_answer(request, frame):
            view["request_adr"] = request.adr
        elif request is not None and (request.adr, request.cid1) != (frame.adr, frame.cid1):
            request = None
        return self._answer_view(view, frame, profiles, request)

    def _request_view(self, view: dict[str, Any], frame: Frame,
                      profiles: tuple[Profile, ...]) -> dict[str, Any]:
        self._request = frame
        view.update(type="request", cid2=frame.cid2)
        knowing = [p for p in profiles if frame.cid2 in p.commands]
        if len(knowing) == 1:
            view["family"] = knowing[0].name
            view["command"] = knowing[0].commands[frame.cid2].name
        view.update(describe_request(knowing[0] if knowing else profiles[0], frame))
        return view

    def _answer_view(self, view: dict[str, Any], frame: Frame, profiles: tuple[Profile, ...],
                     request: Frame | None) -> dict[str, Any]:
        view.update(type="answer", rtn=frame.rtn)
        recording = [p for p in profiles if frame.rtn in p.records]
        if recording:
            view.update(type="record", family=recording[0].name)
            try:
                view.update(describe(decode_record(recording[0], frame)))
            except ProtocolError as exc:
                return _failed(view, exc)
            return view
        cid2 = request.cid2 if request is not None else self.command
        all_packs = None if request is None else request.info == b"\xff"
        if cid2 is not None and not any(cid2 in p.commands for p in profiles):
            return _failure(view, "unknown_command", "command",
                            f"0x{cid2:02X} is no command of "
                            + " or ".join(p.name for p in profiles))
        if frame.rtn != 0:
            _failed(view, RtnError(raw=frame.wire, rtn=frame.rtn))
            view["rtn_meaning"] = rtn_meaning(frame.rtn)
            if frame.info and cid2 is not None:  # e.g. PACE's status byte with RTN 09
                fits, _ = _attempts(frame, profiles, cid2, all_packs)
                if len(fits) == 1:
                    _label(view, *fits[0])
            return view
        if cid2 is None and not frame.info:
            return _failure(view, "ambiguous", "command",
                            "an answer without data does not say which command it answers; "
                            "give --command or the request frame before it")
        fits, errors = _attempts(frame, profiles, cid2, all_packs)
        if len(fits) == 1:
            return _label(view, *fits[0])
        if fits:
            names = sorted({p.name for p, _, _ in fits})
            if len(names) > 1:
                return _failure(view, "ambiguous", "ambiguous",
                                f"VER 0x{frame.ver:02X} with CID1 0x{frame.cid1:02X} is used by "
                                f"{' and '.join(names)} and this payload fits both; "
                                "give --family")
            commands = " and ".join(f"0x{c:02X}" for _, c, _ in fits)
            return _failure(view, "ambiguous", "ambiguous",
                            f"the payload fits the answers to {commands}; give --command or "
                            "the request frame before it")
        if len(errors) == 1:
            return _failed(view, errors[0])
        what = f"0x{cid2:02X}" if cid2 is not None else "any command"
        return _failure(view, "layout_mismatch", "layout",
                        f"the payload is not the answer to {what} in "
                        + " or ".join(p.name for p in profiles) + ": "
                        + "; ".join(str(e) for e in errors))


def _attempts(frame: Frame, profiles: tuple[Profile, ...], cid2: int | None,
              all_packs: bool | None) -> tuple[list[tuple[Profile, int, Any]],
                                                list[ProtocolError]]:
    """Decode ``frame`` as every candidate (family, command); what fits and what failed."""
    fits: list[tuple[Profile, int, Any]] = []
    errors: list[ProtocolError] = []
    for profile in profiles:
        if cid2 is not None:
            commands = [cid2] if cid2 in profile.commands else []
        else:
            commands = [c.cid2 for c in profile.commands.values() if c.recognisable]
        for command in commands:
            try:
                fits.append((profile, command,
                             decode_info(profile, command, frame, all_packs=all_packs)))
            except ProtocolError as exc:
                errors.append(exc)
    return fits, errors


def _label(view: dict[str, Any], profile: Profile, cid2: int, answer: Any) -> dict[str, Any]:
    view.update(family=profile.name, cid2=cid2, command=profile.commands[cid2].name)
    view.update(describe(answer))
    return view


# ---------------------------------------------------------------------------------------
# Text output

_META = ("frame", "type", "family", "cid2", "command", "adr", "request_adr", "rtn",
         "rtn_meaning", "error", "kind", "message", "t", "dir", "result")


def _value(value: Any) -> str:
    if isinstance(value, list):
        return " ".join("-" if v is None else str(v) for v in value) or "(none)"
    return "-" if value is None else str(value)


def _table(view: dict[str, Any], indent: str) -> list[str]:
    fields = {k: v for k, v in view.items() if k not in _META and k != "packs"}
    width = max((len(k) for k in fields), default=0)
    lines = [f"{indent}{k.ljust(width)}  {_value(v)}" for k, v in fields.items()]
    for i, pack in enumerate(view.get("packs", []), 1):
        lines.append(f"{indent}pack {i}:")
        lines.extend(_table(pack, indent + "  "))
    return lines


def format_view(view: dict[str, Any]) -> str:
    """A frame's view as a readable block of text (ends with a newline)."""
    lines = [view["frame"]]
    if "t" in view:  # a capture record
        lines = [f"{view['t']} {view['dir']} {view['result']}"
                 + (f" {view['frame']}" if view["frame"] else "")]
    what = [view[k] for k in ("family", "type") if k in view]
    if "cid2" in view:
        name = f" ({view['command']})" if "command" in view else ""
        what.append(f"0x{view['cid2']:02X}{name}")
    if "adr" in view:
        what.append(f"ADR {view['adr']}" + (f" (answering the request to ADR "
                                             f"{view['request_adr']})"
                                             if "request_adr" in view else ""))
    if "rtn" in view:
        what.append(f"RTN 0x{view['rtn']:02X} ({rtn_meaning(view['rtn'])})")
    if what:
        lines.append("  " + ", ".join(str(w) for w in what))
    if "error" in view:
        lines.append(f"  error {view['kind']}: {view['message']}")
    lines.extend(_table(view, "    "))
    return "\n".join(lines) + "\n"

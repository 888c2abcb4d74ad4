"""``bms-gateway decode``: every vector, with and without --json, inference, failures."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

from gateway import cli
from plugins.rs485_bms.protocol import Frame, encode_frame, parse_frame

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "data/frames.json").read_text())

# The vectors whose VER/CID1 (0x20/0x46) is ambiguous and whose payload fits both families.
NEEDS_FAMILY = {"pylon_us2000c_51_over_link", "seplos_51_manufacturer",
                "pylon_us3000c_4f_version"}
# Lone empty answers (0x4F) are not recognisable by shape.
NEEDS_COMMAND = {"pylon_us3000c_4f_version"}


def _run(argv: list[str], capsys, stdin: str | None = None, monkeypatch=None):
    """``bms-gateway decode ARGV`` through the real command line (gateway.cli.main)."""
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    status = cli.main(["decode", *argv])
    return status, capsys.readouterr().out


def _wire(ver: int, adr: int, cid1: int, cid2: int, info: str = "") -> str:
    """A well-formed frame as text (no CR)."""
    frame = Frame(ver=ver, adr=adr, cid1=cid1, cid2=cid2, info=bytes.fromhex(info))
    return encode_frame(frame).decode("ascii").rstrip("\r")


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def _frames(vector) -> list[str]:
    return ([vector["request"]] if vector["request"] else []) + [vector["response"]]


def _expected_status(vector) -> int:
    expected = vector["expected"]
    return 1 if "error" in expected or expected.get("rtn", 0) not in (0, 0x5A) else 0


@pytest.mark.parametrize("with_family", [True, False], ids=["family", "inferred"])
def test_every_vector_as_json(vector, with_family, capsys, assert_expected):
    argv = ["--json", *_frames(vector)]
    if with_family or vector["id"] in NEEDS_FAMILY:
        argv = ["--family", vector["vendor_family"], *argv]
    if vector["id"] in NEEDS_COMMAND:
        argv = ["--command", vector["command_cid2"], *argv]
    status, out = _run(argv, capsys)
    views = _json_lines(out)
    assert len(views) == len(_frames(vector))
    answer = views[-1]
    assert_expected(vector["expected"], answer)
    assert status == _expected_status(vector)
    if "error" not in vector["expected"]:
        assert answer.get("family", vector["vendor_family"]) == vector["vendor_family"]
    if vector["request"]:
        assert views[0]["type"] == "request" and "error" not in views[0]


def test_every_vector_as_text(vector, capsys):
    argv = ["--family", vector["vendor_family"], *_frames(vector)]
    if vector["id"] in NEEDS_COMMAND:
        argv = ["--command", vector["command_cid2"], *argv]
    status, out = _run(argv, capsys)
    assert status == _expected_status(vector)
    assert vector["response"] in out
    if "error" in vector["expected"]:
        assert "error chksum:" in out
    elif vector["expected"].get("rtn", 0) == 0:
        assert "error" not in out


def test_text_table(capsys):
    status, out = _run(["~25004642E002FFFD06",
                        "~25004600F07A0001100D420D140D130D130D130D130D130D130D110D120D130D110D"
                        "110D120D100D13060BB70BB70BB80BB60BB30BBD0000D155128E03138800001388E3AC"],
                       capsys)
    assert status == 0
    assert "pace_v25, request, 0x42 (analog values), ADR 0\n    all_packs  True\n" in out
    assert "pace_v25, answer, 0x42 (analog values), ADR 0, RTN 0x00 (normal)" in out
    assert "    pack_count  1\n    pack 1:\n      cell_count      16\n" in out
    assert "      temps_c         26.9 26.9 27.0 26.8 26.5 27.5\n" in out


def test_text_shows_unknown_values_and_empty_lists(capsys):
    info = "0001" "00" "02" "8000" "0BBC" "0000" "0000" "0000" "00" "0000" "0000" "0000"
    status, out = _run(["--family", "pace_v25", "--command", "42",
                        _wire(0x25, 1, 0x46, 0, info)], capsys)
    assert status == 0
    assert "cell_mv         (none)\n" in out and "temps_c         - 27.4\n" in out


def test_stdin_log_lines(capsys, monkeypatch):
    ambiguous = _wire(0x20, 2, 0x46, 0, "")
    log = ("12:00:00.001 TX: ~25014644E00201FD2E\r\n"
           "12:00:00.090 RX: ~25014600004C000110000000000000000000000000000000000600000000000"
           "000000000000E000000000000EF3A. (94 bytes)\n"
           "no frame on this line\n"
           f"two: ~200246040000FDAE and {ambiguous} end\n")
    status, out = _run(["--json"], capsys, stdin=log, monkeypatch=monkeypatch)
    views = _json_lines(out)
    assert [v.get("type") for v in views] == ["request", "answer", "answer", "answer"]
    assert views[1]["instruction_state"] == 14 and views[1]["cid2"] == 0x44
    assert views[2]["kind"] == "rtn" and views[2]["rtn_meaning"] == "CID2 invalid"
    assert views[3]["kind"] == "command"  # an empty lone answer: which command is unknown
    assert status == 1


def test_lower_case_frame(capsys):
    chars = b"25014642e00201"
    frame = "~" + chars.decode() + f"{-sum(chars) & 0xFFFF:04x}"
    status, out = _run(["--json", frame], capsys)
    [view] = _json_lines(out)
    assert status == 0 and view["command_value"] == 1


@pytest.mark.parametrize("frame, kind, code", [
    ("~25014642E00201", "truncated", "truncated"),
    ("~25014642E00201FD31", "chksum", "chksum_mismatch"),
    ("~25014642F00201FD30", "lchksum", "lchksum_mismatch"),
    ("~2501464XE00201FD30", "non_hex", "non_hex"),
    (_wire(0x25, 1, 0x46, 0x42, "01")[:-4] + "01"
     + f"{-sum(b'25014642E0020101') & 0xFFFF:04X}", "length", "length_mismatch"),
])
def test_broken_frames_exit_1_with_their_kind(frame, kind, code, capsys):
    status, out = _run(["--json", frame], capsys)
    [view] = _json_lines(out)
    assert status == 1 and (view["kind"], view["error"]) == (kind, code)
    status, out = _run([frame], capsys)
    assert status == 1 and f"error {kind}:" in out


def test_payload_that_fits_no_layout(capsys):
    # a PACE 0x42 answer whose payload is two bytes short
    status, out = _run(["--json", "~25014642E00201FD30", _wire(0x25, 1, 0x46, 0, "0001")],
                       capsys)
    views = _json_lines(out)
    assert status == 1 and views[1]["kind"] == "length"
    assert "pace_v25 0x42 answer" in views[1]["message"]


def test_unknown_family_and_command(capsys):
    status, out = _run(["--json", _wire(0x26, 1, 0x46, 0x42, "01")], capsys)
    [view] = _json_lines(out)
    assert status == 1 and view["error"] == "unknown_family" and "--family" in view["message"]
    status, out = _run(["--json", "--command", "D1", _wire(0x25, 1, 0x46, 0)], capsys)
    [view] = _json_lines(out)
    assert status == 1 and view["error"] == "unknown_command"


def test_shape_recognition(capsys):
    # a lone PACE 0x90 answer (one byte) could be 0x90 or a MOSFET switch answer
    one_byte = _wire(0x25, 1, 0x46, 0, "01")
    status, out = _run(["--json", one_byte], capsys)
    [view] = _json_lines(out)
    assert status == 1 and view["error"] == "ambiguous" and "0x90" in view["message"]
    status, out = _run(["--json", "--command", "90", one_byte], capsys)
    [view] = _json_lines(out)
    assert status == 0 and view["pack_count"] == 1
    # a lone answer that is nothing the family knows
    status, out = _run(["--json", _wire(0x25, 1, 0x46, 0, "0102")], capsys)
    [view] = _json_lines(out)
    assert status == 1 and view["kind"] == "layout"


def test_pylontech_only_commands_settle_the_family(capsys):
    status, out = _run(["--json", "~20024600400C020103000609FB46"], capsys)
    [view] = _json_lines(out)
    assert status == 0 and view["family"] == "pylontech" and view["cid2"] == 0x96


def test_answer_pairs_only_with_a_request_to_the_same_address(capsys):
    # the request went to ADR 2; the answer from ADR 1 is decoded by its shape
    status, out = _run(["--json", "~25024642E00202FD2E",
                        "~25014600F07A0001100CC70CC80CC70CC70CC70CC50CC60CC70CC70CC60CC70CC60"
                        "CC60CC70CC60CC7060B9B0B990B990B990BB30BBCFF1FCCCD12D303286A008C2710E1E4"],
                       capsys)
    views = _json_lines(out)
    assert status == 0 and views[1]["cid2"] == 0x42 and views[1]["command_value"] == 1


def test_unknown_request_is_shown_raw(capsys):
    status, out = _run(["--json", _wire(0x25, 1, 0x46, 0xD1)], capsys)
    [view] = _json_lines(out)
    assert status == 0 and view["type"] == "request" and view["info"] == ""
    assert "family" not in view


def test_argument_without_a_frame(capsys):
    status, out = _run(["--json", "hello"], capsys)
    [view] = _json_lines(out)
    assert status == 1 and view["error"] == "no_frame"


def test_command_option_rejects_non_hex(capsys):
    for bad in ("zz", "100"):
        with pytest.raises(SystemExit) as exc:
            cli.main(["decode", "--command", bad, "~25014642E00201FD30"])
        assert exc.value.code == 2
        assert "CID2" in capsys.readouterr().err


def test_the_installed_script_decodes_from_arguments_and_stdin(gateway_cmd):
    """The console script itself, as a user runs it (the --command option once shadowed
    the subcommand's name and every decode exited 2)."""
    frame = "~25014642E00201FD30"
    out = subprocess.run([*gateway_cmd, "decode", "--json", "--command", "42", frame],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["type"] == "request"
    out = subprocess.run([*gateway_cmd, "decode", "--json"], input=f"rx: {frame}\n",
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["type"] == "request"


def test_same_payload_in_both_0x20_families_asks_for_the_family(capsys):
    seplos_51 = ("~20004600C040313130312D5350313520020743414E50726F746F636F6C3A536F66617220"
                 "2020F046")
    status, out = _run(["--json", seplos_51], capsys)
    [view] = _json_lines(out)
    assert status == 1 and view["error"] == "ambiguous"
    assert "pylontech and seplos_v2" in view["message"] and "--family" in view["message"]


def test_seplos_record_of_the_wrong_size(capsys):
    status, out = _run(["--json", _wire(0x20, 11, 0x46, 0x5A, "0001")], capsys)
    [view] = _json_lines(out)
    assert status == 1 and view["type"] == "record" and view["kind"] == "length"


def test_error_answer_with_a_payload_that_does_not_fit(capsys):
    status, out = _run(["--json", "~2500469BE00201FD1C", _wire(0x25, 0, 0x46, 0x09, "0405")],
                       capsys)
    views = _json_lines(out)
    assert status == 1 and views[1]["kind"] == "rtn" and "status_byte" not in views[1]


def test_a_lone_answer_without_data_asks_for_the_command(capsys):
    status, out = _run(["--json", "~200246000000FDB2"], capsys)
    [view] = _json_lines(out)
    assert status == 1 and (view["error"], view["kind"]) == ("ambiguous", "command")
    assert "give --command or the request frame before it" in view["message"]
    status, out = _run(["--json", "--family", "pylontech", "--command", "4F",
                        "~200246000000FDB2"], capsys)
    assert status == 0 and "error" not in _json_lines(out)[0]


def _readdressed(frame: str, adr: int) -> str:
    """A captured answer as a port that puts ``adr`` in every answer sends it."""
    parsed = parse_frame(frame.encode("ascii") + b"\r")
    return _wire(parsed.ver, adr, parsed.cid1, parsed.cid2, parsed.info.hex())


def test_a_log_of_an_rs232_console_session_decodes_without_command(capsys, monkeypatch):
    """The console port answers with ADR 00 whatever the module's address (the PACE RS232
    document's own answer, pace25_doc_rs232_42_ff, and Tertiush/bmspace#37): each answer
    pairs with the request before it, so even the identity answers, whose payloads fit
    both 0xC1 and 0xC2, decode without --command."""
    vectors = {v["id"]: v for v in VECTORS}
    analog = vectors["pace25_doc_rs232_42_ff"]["response"]
    version = vectors["pace25_jakiper_c1_version"]
    serial = vectors["pace25_jakiper_c2_serial"]
    log = (f"08:00:00.000 TX {vectors['pace25_jakiper_42_16s6t_discharge']['request']}\n"
           f"08:00:00.210 RX {analog}\n"
           f"08:00:00.400 TX {version['request']}\n"
           f"08:00:00.480 RX {_readdressed(version['response'], 0)}\n"
           f"08:00:00.600 TX {serial['request']}\n"
           f"08:00:00.690 RX {_readdressed(serial['response'], 0)}\n")
    status, out = _run(["--json"], capsys, stdin=log, monkeypatch=monkeypatch)
    views = _json_lines(out)
    assert status == 0 and all("error" not in v for v in views)
    answers = views[1::2]
    assert [(v["adr"], v["request_adr"], v["cid2"]) for v in answers] == [
        (0, 1, 0x42), (0, 1, 0xC1), (0, 1, 0xC2)]
    assert answers[0]["cell_mv"][0] == 3394 and answers[0]["command_value"] == 1
    assert answers[1]["text"] == version["expected"]["text"]
    assert answers[2]["bms_serial"] == serial["expected"]["bms_serial"]

    # the text view says which request the ADR-00 answer was taken for
    status, out = _run([version["request"], _readdressed(version["response"], 0)], capsys)
    assert status == 0 and "ADR 0 (answering the request to ADR 1)" in out


def test_an_adr00_answer_of_another_device_type_does_not_pair(capsys):
    version = {v["id"]: v for v in VECTORS}["pace25_jakiper_c1_version"]
    parsed = parse_frame(version["response"].encode("ascii") + b"\r")
    other = _wire(0x25, 0, 0x4A, 0, parsed.info.hex())
    status, out = _run(["--json", version["request"], other], capsys)
    assert status == 1 and "request_adr" not in _json_lines(out)[1]

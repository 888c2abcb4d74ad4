"""The plugin's subcommands: ``decode``, ``scan`` and ``simulate``.

Each command's module is imported only when that command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

FAMILIES = ("pace_v25", "pylontech", "seplos_v2", "eg4_lifepower4", "daren_basen")
SIM_FAMILIES = ("pace_v25", "pylontech", "seplos_v2")


def _decode_arguments(parser: argparse.ArgumentParser) -> None:
    # imported here only when `decode` itself runs: building the parser stays cheap
    import importlib

    importlib.import_module("plugins.rs485_bms.tools.decode").add_arguments(parser)


def _decode_run(args: argparse.Namespace) -> int:
    from plugins.rs485_bms.tools import decode as decode_command

    return decode_command.run(args)


def _scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, metavar="URL",
                        help="serial port or pyserial URL (socket://host:port, rfc2217://...)")
    parser.add_argument("--family", choices=FAMILIES, default="pace_v25")
    parser.add_argument("--addresses", default="1-15", metavar="LIST",
                        help="addresses to try, e.g. 1-15 or 2,3,5 (default 1-15)")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--timeout-ms", type=int, default=600,
                        help="answer timeout per address (default 600)")
    parser.add_argument("--listen-s", type=float, default=2.0,
                        help="listen for another master before sending (default 2 s)")
    parser.add_argument("--expect", metavar="LIST",
                        help="addresses the config expects, to report missing ones")


def _scan_run(args: argparse.Namespace) -> int:
    from plugins.rs485_bms.tools import scan

    return scan.run(args)


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``lo`` to ``hi`` (a usage error otherwise)."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value
    return convert


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", metavar="tcp://HOST:PORT",
                       help="serve the bank on a TCP socket (like an RS485-to-Ethernet converter)")
    where.add_argument("--pty", action="store_true",
                       help="serve on a new pseudo-terminal and print its path (again, "
                       "for the new one, after a transport_drop)")
    parser.add_argument("--pty-link", metavar="PATH",
                        help="with --pty: keep PATH a symlink to the current pseudo-terminal, "
                        "so a port configured as PATH survives a transport_drop")
    parser.add_argument("--packs", type=_int_in(1, 16), default=12, metavar="N",
                        help="number of packs, 1..16 (default 12)")
    parser.add_argument("--first-address", type=_int_in(0, 15), default=1, metavar="ADR",
                        help="DIP address of the first pack, 0..15 (default 1; "
                        "16 packs need 0)")
    parser.add_argument("--family", choices=SIM_FAMILIES, default="pace_v25")
    parser.add_argument("--baud", type=_int_in(1200, 921600), default=9600,
                        help="answers are released at this wire speed, 1200..921600 "
                        "(default 9600)")
    parser.add_argument("--turnaround-ms", type=_int_in(0, 5000), default=25,
                        help="BMS think time before answering, 0..5000 (default 25)")
    parser.add_argument("--scenario", metavar="FILE", help="fault-injection scenario (YAML)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed of the packs' individual values: same seed, same bank "
                        "(default 1)")
    parser.add_argument("--replay", nargs="+", metavar="FILE",
                        help="play a bus capture back instead of simulating packs: each "
                        "request gets the recorded answer with its timing (several files: "
                        "oldest first, e.g. cap.jsonl.1 cap.jsonl); family, addresses and "
                        "baud come from the capture (docs/polling.md)")


def _simulate_run(args: argparse.Namespace) -> int:
    from plugins.rs485_bms.sim import simulator

    return simulator.run_command(args)


def register_all(register) -> None:
    register("decode", help="decode RS485 frames (arguments, or one per line on stdin)",
             add_arguments=_decode_arguments, run=_decode_run)
    register("scan", help="find the modules on an RS485 bus and diagnose the wiring",
             add_arguments=_scan_arguments, run=_scan_run)
    register("simulate", help="run a simulated battery bank on TCP or a pseudo-terminal",
             add_arguments=_simulate_arguments, run=_simulate_run)

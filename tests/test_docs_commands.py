"""Every shell command the documentation prints runs as printed.

The commands are read at run time from the fenced ```sh blocks of README.md, docs/*.md and
mibs/README.md (nothing is copied here). They run one by one against the built-in default
gateway (`bms-gateway run` with no -c: SNMP v2c `public` on 127.0.0.1:1161, Modbus-TCP on
127.0.0.1:1502), which this module starts itself, with the repository root as the working
directory and the venv's bin directory first on PATH. A command fails the test when it
exits non-zero or writes anything to stderr; the test id is FILE:LINE of the command.

A block whose opening fence is directly preceded by `<!-- not run by tests: REASON -->`
(root, systemd, hardware, another config, a command that runs until stopped) is not run;
its reason is required by test_every_skip_marker_has_a_reason_and_a_sh_block, and
test_the_commands_not_run_are_few_and_say_why lists them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNMP_PORT = 1161
MODBUS_PORT = 1502

FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*not run by tests:(.*?)-->\s*$")
MARKER_START = re.compile(r"^\s*<!--\s*not run by tests\b")


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "mibs/README.md"]


@dataclass(frozen=True)
class Command:
    file: str  #: relative to the repository root
    line: int  #: 1-based line of the command's first line
    text: str  #: the command, continuation lines joined as the shell sees them
    skip_reason: str | None  #: the block's "not run by tests" reason, or None


@dataclass(frozen=True)
class Block:
    file: str
    fence_line: int
    lang: str
    marker: str | None  #: the marker line directly above the fence, if any
    lines: list[tuple[int, str]]


def parse_blocks(path: Path) -> list[Block]:
    rel = str(path.relative_to(REPO))
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group(2):
            i += 1
            continue
        start = i
        body: list[tuple[int, str]] = []
        i += 1
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append((i + 1, lines[i]))
            i += 1
        above = lines[start - 1] if start > 0 else ""
        marker = above if MARKER_START.match(above) else None
        blocks.append(Block(rel, start + 1, m.group(2), marker, body))
        i += 1
    return blocks


def split_commands(block: Block, skip_reason: str | None) -> list[Command]:
    """One command per logical shell line: comment lines and blank lines are not
    commands, a line ending in a backslash continues on the next one."""
    commands: list[Command] = []
    pending: list[str] = []
    first = 0
    for number, text in block.lines:
        if not pending:
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            first = number
        if text.endswith("\\"):
            pending.append(text[:-1])
            continue
        pending.append(text)
        commands.append(Command(block.file, first, " ".join(p.strip() for p in pending),
                                skip_reason))
        pending = []
    assert not pending, f"{block.file}:{first}: the block ends in a continuation line"
    return commands


def documented_commands() -> list[Command]:
    commands: list[Command] = []
    for path in doc_files():
        for block in parse_blocks(path):
            if block.lang != "sh":
                continue
            reason = None
            if block.marker is not None:
                m = MARKER.match(block.marker)
                reason = m.group(1).strip() if m else ""
            commands += split_commands(block, reason)
    return commands


COMMANDS = documented_commands()


def test_the_docs_print_commands():
    """The extraction found the examples (a renamed fence would otherwise test nothing)."""
    files = {c.file for c in COMMANDS}
    assert {"README.md", "mibs/README.md", "docs/snmp.md", "docs/modbus.md"} <= files
    assert sum(c.skip_reason is None for c in COMMANDS) >= 10


def test_every_skip_marker_has_a_reason_and_a_sh_block():
    problems = []
    for path in doc_files():
        rel = str(path.relative_to(REPO))
        lines = path.read_text().splitlines()
        for n, text in enumerate(lines, 1):
            if not MARKER_START.match(text):
                continue
            m = MARKER.match(text)
            if m is None or not m.group(1).strip():
                problems.append(f"{rel}:{n}: marker without a reason: {text.strip()}")
            nxt = lines[n] if n < len(lines) else ""
            if not re.match(r"^\s*```sh\s*$", nxt):
                problems.append(f"{rel}:{n}: marker not directly above a ```sh fence")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------- the default gateway -----


def _snmp_answers(timeout_s: float = 0.3) -> bool:
    """A v2c GET of sysUpTime.0 (community public) gets any answer on 127.0.0.1:1161."""
    request = bytes.fromhex(
        "3026020101" "0406" + b"public".hex() + "a019" "020101" "020100" "020100"
        "300e" "300c" "06082b06010201010300" "0500")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout_s)
        s.sendto(request, ("127.0.0.1", SNMP_PORT))
        try:
            return bool(s.recv(1500))
        except OSError:
            return False


def _modbus_register(address: int) -> int | None:
    """Holding register `address` of unit 1 on 127.0.0.1:1502, or None."""
    pdu = bytes([3]) + address.to_bytes(2, "big") + (1).to_bytes(2, "big")
    adu = (1).to_bytes(2, "big") + bytes(2) + (len(pdu) + 1).to_bytes(2, "big") + b"\x01" + pdu
    try:
        with socket.create_connection(("127.0.0.1", MODBUS_PORT), timeout=1) as s:
            s.sendall(adu)
            answer = s.recv(260)
    except OSError:
        return None
    if len(answer) != 11 or answer[7] != 3:
        return None
    return int.from_bytes(answer[9:11], "big")


@pytest.fixture(scope="module")
def default_gateway(tmp_path_factory):
    for tool in ("snmpwalk", "mbpoll", "smilint"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: 'make test' installs the Debian packages")
    exe = BIN / "bms-gateway"
    assert exe.exists(), f"{exe} missing: install the project with 'make venv'"
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    log = log_path.open("w")
    proc = subprocess.Popen([str(exe), "run"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 45
        # both ports answer, then the first poll cycle has every module live (register 10,
        # modules_live), so the examples print data rather than "never seen"
        while time.monotonic() < deadline and proc.poll() is None:
            if _snmp_answers() and _modbus_register(10) == 12:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the default gateway did not come up:\n{log_path.read_text()}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            finally:
                proc.kill()
                proc.wait()
        log.close()


@pytest.fixture(scope="module")
def shell_env(tmp_path_factory) -> dict[str, str]:
    """The user's environment with the venv's bin first on PATH. net-snmp's per-user state
    goes to a fresh directory (never this machine's ~/.snmp); its cert_indexes directory
    exists already, because net-snmp says "Created directory: ..." on stderr the first time
    it runs on a machine, once, and that is not a problem in the command."""
    home = tmp_path_factory.mktemp("home")
    (home / "snmp-persist" / "cert_indexes").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if k != "NOTIFY_SOCKET" and not k.startswith(("MIB", "SNMP", "SMI"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}", HOME=str(home),
               SNMP_PERSISTENT_DIR=str(home / "snmp-persist"))
    return env


def test_the_commands_not_run_are_few_and_say_why():
    """The marked commands, each with its reason; most documented commands do run."""
    held = [f"{c.file}:{c.line}: {c.skip_reason}" for c in COMMANDS if c.skip_reason is not None]
    assert all(c.skip_reason.strip() for c in COMMANDS if c.skip_reason is not None), held
    assert len(held) < len(COMMANDS), held


@pytest.mark.parametrize("command", [pytest.param(c, id=f"{c.file}:{c.line}")
                                     for c in COMMANDS if c.skip_reason is None])
def test_documented_command_runs_clean(command: Command, default_gateway, shell_env):
    assert default_gateway.poll() is None, "the default gateway stopped"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", command.text], cwd=REPO,
                         env=shell_env, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    where = f"{command.file}:{command.line}: {command.text}"
    assert res.returncode == 0, f"{where}\nexit {res.returncode}\n{res.stderr}{res.stdout}"
    assert res.stderr == "", f"{where}\nwrote to stderr:\n{res.stderr}"


def test_the_documentation_enterprise_number_is_said_to_be_one():
    """32473 is RFC 5612's number for documentation: mibs/README.md and docs/snmp.md say
    so, and name the two places a vendor changes, with the number the code uses."""
    from plugins.snmp_agent import oid_map

    mib = (REPO / "mibs/BMS-GATEWAY-MIB.txt").read_text()
    assert re.findall(r"\{\s*enterprises\s+(\d+)\s*\}", mib) == [str(oid_map.PEN)]
    for doc in ("mibs/README.md", "docs/snmp.md"):
        text = " ".join((REPO / doc).read_text().split())
        root = f"bmsGatewayRoot ::= {{ enterprises {oid_map.PEN} }}"
        for needle in ("RFC 5612", "RFC 9371", root, f"PEN = {oid_map.PEN}",
                       "plugins/snmp_agent/oid_map.py", "sysObjectID"):
            assert needle in text, f"{doc}: {needle}"

"""Helpers of the end-to-end alarm tests and the latency benchmark: a real ``snmptrapd``
on loopback ports, and a real ``bms-gateway run`` subprocess.

Imported by path (tests/alarms/test_e2e.py and benchmarks/alarm_latency.py load it with
importlib), so it holds no fixtures.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MIBS = REPO / "mibs"
V3_USER = "nms-traps"
V3_AUTH = "trap-auth-pass"
V3_PRIV = "trap-priv-pass"
COMMUNITY = "trap-community"

#: our protocol names -> net-snmp's spellings to try (the "C" variants are not listed
#: by ``snmpget -h`` but accepted without the dash by Debian's net-snmp 5.9)
NETSNMP_AUTH = {"sha1": ("SHA",), "sha224": ("SHA-224",), "sha256": ("SHA-256",),
                "sha384": ("SHA-384",), "sha512": ("SHA-512",)}
NETSNMP_PRIV = {"aes128": ("AES",), "aes192": ("AES-192",), "aes256": ("AES-256",),
                "aes192c": ("AES192C", "AES-192C"), "aes256c": ("AES256C", "AES-256C")}


def netsnmp_protocols() -> tuple[dict[str, str], dict[str, str]]:
    """What the installed net-snmp speaks: ({our auth name: net-snmp's}, {our priv
    name: net-snmp's}), found by asking ``snmpget`` to use each one (it refuses an
    unknown protocol before it sends anything); empty when snmpget is missing."""
    exe = shutil.which("snmpget")
    if exe is None:
        return {}, {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIB", "SNMP"))}
    env.update(SNMPCONFPATH=os.devnull, SNMP_PERSISTENT_DIR=os.devnull, HOME=os.devnull)

    def accepted(flag: str, name: str) -> bool:
        a, x = (name, "AES") if flag == "-a" else ("SHA", name)
        proc = subprocess.run(
            [exe, "-v3", "-l", "authPriv", "-u", "probe", "-a", a, "-A", "probe-pass",
             "-x", x, "-X", "probe-pass", "-e", "0x8000000001020304", "-Z", "1,1",
             "-t", "0.05", "-r", "0", "127.0.0.1:9", "1.3"],
            capture_output=True, text=True, env=env, timeout=10)
        return "Invalid" not in proc.stderr

    def probe(flag: str, table: dict[str, tuple[str, ...]]) -> dict[str, str]:
        found = {}
        for ours, spellings in table.items():
            for name in spellings:
                if accepted(flag, name):
                    found[ours] = name
                    break
        return found
    return probe("-a", NETSNMP_AUTH), probe("-x", NETSNMP_PRIV)


_HEADER = re.compile(r"\[UDP: \[[\d.]+\]:\d+->\[[\d.]+\]:(\d+)\]:\s*$")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Trap:
    port: int  #: the receiver port it arrived on
    at: float  #: time.time() when snmptrapd printed it
    values: dict[str, str] = field(default_factory=dict)  #: "bmsAlarmKind.5" -> "cell_voltage_high"

    @property
    def name(self) -> str:
        """The notification's name, e.g. ``bmsAlarmRaised`` or ``coldStart``."""
        return self.values.get("snmpTrapOID.0", "").split("::")[-1]

    def value(self, prefix: str) -> str:
        """The value of the varbind whose name starts with ``prefix`` (``bmsAlarmKind``)."""
        for k, v in self.values.items():
            if k.split(".")[0] == prefix:
                return v
        raise KeyError(prefix)

    def instance(self, prefix: str) -> int:
        for k in self.values:
            if k.split(".")[0] == prefix:
                return int(k.split(".", 1)[1])
        raise KeyError(prefix)


def parse_varbinds(line: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in line.rstrip("\n").split("\t"):
        if " = " not in item:
            continue
        name, value = item.split(" = ", 1)
        name = name.split("::")[-1]
        if ": " in value:
            value = value.split(": ", 1)[1]
        out[name] = value.strip().strip('"')
    return out


class TrapDaemon:
    """``snmptrapd -f -Lo -C -c CONF`` on 127.0.0.1 ports, decoding with our MIB; the
    v3 user accepts informs (the receiver is the authoritative engine)."""

    def __init__(self, workdir: Path, ports: list[int], *,
                 users: list[tuple[str, str, str, str, str]] | None = None) -> None:
        """``users``: (name, auth protocol, auth passphrase, priv protocol, priv
        passphrase) in net-snmp's spelling; default: ``V3_USER`` with SHA-256 and AES."""
        self.workdir = workdir
        self.ports = ports
        self.traps: list[Trap] = []
        self.lines: list[str] = []
        self._cond = threading.Condition()
        conf = workdir / "snmptrapd.conf"
        users = users or [(V3_USER, "SHA-256", V3_AUTH, "AES", V3_PRIV)]
        conf.write_text("disableAuthorization yes\n" + "".join(
            f"createUser {name} {a} {a_key} {x} {x_key}\n" for name, a, a_key, x, x_key in users))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MIB", "SNMP"))}
        env.update(HOME=str(workdir), SNMP_PERSISTENT_DIR=str(workdir / "persist"),
                   SNMPCONFPATH=str(workdir))
        listen = ",".join(f"udp:127.0.0.1:{p}" for p in ports)
        exe = "snmptrapd"
        self.proc = subprocess.Popen(
            [exe, "-f", "-Lo", "-C", "-c", str(conf), "-m", "+BMS-GATEWAY-MIB", "-M",
             f"+{MIBS}", listen], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.wait_line(lambda line: line.startswith("NET-SNMP version"), 10)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        port: int | None = None
        for line in self.proc.stdout:
            now = time.time()
            with self._cond:
                self.lines.append(line)
                m = _HEADER.search(line)
                if m:
                    port = int(m.group(1))
                elif port is not None:
                    self.traps.append(Trap(port, now, parse_varbinds(line)))
                    port = None
                self._cond.notify_all()

    def wait_line(self, pred: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError("snmptrapd: no such line:\n" + "".join(self.lines))
                self._cond.wait(left)

    def wait(self, pred: Callable[[Trap], bool], timeout: float = 20) -> Trap:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for trap in self.traps:
                    if pred(trap):
                        return trap
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no such trap; got: " + "\n".join(
                        f"{t.port} {t.name} {t.values}" for t in self.traps))
                self._cond.wait(left)

    def received(self, port: int | None = None, name: str | None = None) -> list[Trap]:
        with self._cond:
            return [t for t in self.traps if (port is None or t.port == port)
                    and (name is None or t.name == name)]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._thread.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class GatewayProcess:
    """``bms-gateway --log-level INFO run -c CONFIG`` with its stderr collected."""

    def __init__(self, exe: str, config: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([exe, "--log-level", "INFO", "run", "-c", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_log(self, needle: str, timeout: float = 20, *, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    if needle in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"no log line with {needle!r}:\n" + self.log())
                self._cond.wait(min(left, 0.5))

    def log(self) -> str:
        with self._cond:
            return "".join(self.lines[-200:])

    def reload(self) -> int:
        """SIGHUP; returns the index of the first log line that follows it."""
        with self._cond:
            n = len(self.lines)
        self.proc.send_signal(signal.SIGHUP)
        return n

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                # shown with the failing test: the gateway names what it still waited for
                print("bms-gateway ignored SIGTERM for 15 s and was killed; its log:\n"
                      + self.log(), file=sys.stderr)
        self._thread.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return self.proc.returncode

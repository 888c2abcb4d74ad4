"""Resident memory of the real gateway after a fixed request load.

``bms-gateway run -c <tmp config>`` (a subprocess) polls a simulated 12-pack bank
(the built-in simulator, poll_interval_s 1) and serves SNMP v2c, one SNMPv3 authPriv
user and Modbus-TCP with the alarm engine enabled, all on 127.0.0.1. Once every module
is live, this script sends 10 000 requests, one in flight, alternating a raw-BER SNMP
v2c GetRequest (a cell voltage) and a Modbus FC03 read of a 125-register module
block, plus 50 ``snmpget -v3`` authPriv GETs (net-snmp) so that the v3 path is used
too. Then it reads VmRSS (and VmHWM, the peak) from /proc.

With ``--breakdown`` it runs the same load a second time with the gateway under
``-X tracemalloc`` and ``-X importtime`` and prints what the memory is made of: the
Python allocations still live, grouped by top-level package, and the import time of
the heaviest packages (imports are most of a Python process's resident memory).

Needs net-snmp's snmpget. Runs in about 30 s (60 s with --breakdown). The last line is

    rss: <ratio>x the 40 MiB target (<MiB> MiB after 10000 requests)
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from snmp_request import get_request  # noqa: E402

TARGET_MIB = 40.0
REQUESTS = 10_000
V3_GETS = 50
COMMUNITY = "public"
V3 = ("rss", "authpass12345", "privpass12345")
CELL_OID = (1, 3, 6, 1, 4, 1, 32473, 2, 1, 1, 5, 1, 2, 1, 3, 7)  # bmsCellVoltage.1.3.7
PACKS = 12

#: Runs the CLI under tracemalloc and dumps, on SIGUSR1, the live allocations grouped
#: by top-level package to the file named in RSS_DUMP.
TRACED = r"""
import os, signal, sys, tracemalloc
from collections import Counter
def dump(signum, frame):
    snap = tracemalloc.take_snapshot()
    by = Counter()
    for stat in snap.statistics("filename"):
        name = stat.traceback[0].filename
        parts = name.split(os.sep)
        if "site-packages" in parts:
            key = parts[parts.index("site-packages") + 1]
        elif "lib" in parts and any(p.startswith("python3") for p in parts):
            key = "stdlib:" + parts[-1] if parts[-2].startswith("python3") else \
                "stdlib:" + parts[-2]
        else:
            key = "/".join(parts[-3:-1]) or name
        by[key.removesuffix(".py")] += stat.size
    with open(os.environ["RSS_DUMP"], "w") as f:
        f.write(f"total {sum(by.values())}\n")
        for key, size in by.most_common(25):
            f.write(f"{size} {key}\n")
        f.write("modules " + " ".join(sorted({m.split('.')[0] for m in sys.modules})) + "\n")
signal.signal(signal.SIGUSR1, dump)
from gateway.cli import main

sys.argv[0] = "bms-gateway"
sys.exit(main())
"""


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_config(work: Path, snmp: int, modbus: int) -> Path:
    user, auth, priv = V3
    path = work / "rss.yaml"
    path.write_text(f"""\
gateway:
  state_dir: {work / 'state'}
rs485_bms:
  buses:
    - name: sim
      family: pace_v25
      poll_interval_s: 1
      simulate:
        packs: {PACKS}
snmp_agent:
  listen_address: 127.0.0.1
  port: {snmp}
  v2c:
    community: {COMMUNITY}
  v3_users:
    - name: {user}
      auth_protocol: sha1
      auth_key: {auth}
      priv_protocol: aes128
      priv_key: {priv}
modbus_tcp:
  listen_address: 127.0.0.1
  port: {modbus}
alarms: {{}}
""")
    return path


def snmp_get(sock: socket.socket, reqid: int) -> bytes:
    sock.send(get_request(CELL_OID, reqid, COMMUNITY.encode()))
    return sock.recv(2048)


def modbus_read(sock: socket.socket, tid: int, address: int, count: int) -> bytes:
    sock.sendall(tid.to_bytes(2, "big") + b"\0\0\0\6\1\3" + address.to_bytes(2, "big")
                 + count.to_bytes(2, "big"))
    want, data = 9 + 2 * count, b""
    while len(data) < want:
        chunk = sock.recv(want - len(data))
        if not chunk:
            raise RuntimeError("the gateway closed the Modbus connection")
        data += chunk
        if len(data) >= 9 and data[7] != 3:
            raise RuntimeError(f"Modbus exception {data[8]}")
    return data


def wait_live(modbus: int, deadline_s: float = 60) -> None:
    """Until the last pack's status register reads 1 (ok)."""
    end = time.monotonic() + deadline_s
    status = 1000 + (PACKS - 1) * 200
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", modbus), timeout=1) as s:
                if int.from_bytes(modbus_read(s, 1, status, 1)[9:11], "big") == 1:
                    return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.2)
    raise RuntimeError("the gateway did not get every pack live")


def load(snmp: int, modbus: int) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.settimeout(2)
    udp.connect(("127.0.0.1", snmp))
    tcp = socket.create_connection(("127.0.0.1", modbus), timeout=2)
    try:
        for n in range(REQUESTS):
            if n % 2:
                reqid = 0x10000000 + n
                if reqid.to_bytes(4, "big") not in snmp_get(udp, reqid):
                    raise RuntimeError("unexpected SNMP answer")
            else:
                modbus_read(tcp, n & 0xFFFF, 1000, 125)
    finally:
        udp.close()
        tcp.close()
    user, auth, priv = V3
    for _ in range(V3_GETS):
        subprocess.run(["snmpget", "-v3", "-l", "authPriv", "-u", user, "-a", "SHA", "-A",
                        auth, "-x", "AES", "-X", priv, "-r", "1", "-t", "2", "-Oqv",
                        f"127.0.0.1:{snmp}", "." + ".".join(map(str, CELL_OID))],
                       check=True, capture_output=True)


def status_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


def run(work: Path, traced: bool) -> tuple[dict[str, int], str, str]:
    snmp, modbus = free_port(socket.SOCK_DGRAM), free_port()
    config = make_config(work, snmp, modbus)
    env = dict(os.environ, RSS_DUMP=str(work / "dump.txt"))
    if traced:
        cmd = [sys.executable, "-X", "tracemalloc=1", "-X", "importtime", "-c", TRACED]
    else:
        cmd = [str(Path(sys.executable).with_name("bms-gateway"))]
    err = open(work / "stderr.txt", "w")
    gw = subprocess.Popen([*cmd, "run", "-c", str(config)], stdout=subprocess.DEVNULL,
                          stderr=err, env=env)
    try:
        wait_live(modbus)
        load(snmp, modbus)
        kib = status_kib(gw.pid)
        dump = ""
        if traced:
            gw.send_signal(signal.SIGUSR1)
            path = work / "dump.txt"
            for _ in range(100):
                if path.exists() and "modules" in path.read_text():
                    break
                time.sleep(0.1)
            dump = path.read_text()
    finally:
        gw.terminate()
        gw.wait(10)
        err.close()
    return kib, dump, (work / "stderr.txt").read_text()


def import_costs(stderr: str, top: int = 15) -> list[tuple[int, str]]:
    """Cumulative import time (us) of top-level packages from -X importtime output."""
    costs: dict[str, int] = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)$", line)
        if m and len(m.group(2)) == 1:  # imported at top level
            name = m.group(3)
            costs[name] = costs.get(name, 0) + int(m.group(1))
    return sorted(((us, n) for n, us in costs.items()), reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--breakdown", action="store_true",
                        help="also show what the memory is made of (tracemalloc, importtime)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rss-bench-") as tmp:
        work = Path(tmp)
        kib, _, _ = run(work, traced=False)
        if args.breakdown:
            traced_kib, dump, stderr = run(work, traced=True)
            lines = dump.splitlines()
            total = int(lines[0].split()[1])
            print(f"under tracemalloc: RSS {traced_kib['VmRSS'] / 1024:.1f} MiB, Python "
                  f"allocations still live {total / 2**20:.1f} MiB; by package:")
            for line in lines[1:]:
                if line.startswith("modules "):
                    print("top-level modules loaded:", line.removeprefix("modules "))
                else:
                    size, key = line.split(" ", 1)
                    print(f"  {int(size) / 2**20:6.2f} MiB  {key}")
            print("slowest top-level imports (cumulative, a proxy for their memory):")
            for us, name in import_costs(stderr):
                print(f"  {us / 1000:7.1f} ms  {name}")
    mib = kib["VmRSS"] / 1024
    print(f"VmRSS {mib:.1f} MiB (anonymous {kib['RssAnon'] / 1024:.1f}, file "
          f"{kib['RssFile'] / 1024:.1f}), peak VmHWM {kib['VmHWM'] / 1024:.1f} MiB after "
          f"{REQUESTS} v2c GET / Modbus FC03 requests and {V3_GETS} v3 authPriv GETs")
    print(f"goal <= {TARGET_MIB:.0f} MiB: {'met' if mib <= TARGET_MIB else 'NOT met'}")
    print(f"rss: {mib / TARGET_MIB:.2f}x the 40 MiB target ({mib:.1f} MiB after "
          f"{REQUESTS} requests)")


if __name__ == "__main__":
    main()

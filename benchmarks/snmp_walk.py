"""SNMP agent benchmark: the gateway's agent against net-snmp's snmpd, same machine, same run.

What it measures (all on 127.0.0.1, client and agents sharing the machine's cores):

* bulk walk: ``snmpbulkwalk -v2c -CrR`` of the agent's whole view (12 modules x 16 cells
  x 6 sensors, two alarms: BMS-GATEWAY-MIB with the standard ENTITY-MIB,
  ENTITY-SENSOR-MIB and UPS-MIB views, about 8500 varbinds in all) against snmpd
  walking hrSWRunTable, padded with idle
  ``sleep`` processes to about the same number of varbinds; median wall time of each
  walk divided by its varbind count, for R = 10, 25 and 64. The headline ratio is the
  worst of the three (goal <= 2x).
* GET rate with one request in flight: a raw-UDP client (hand-encoded v2c GetRequest,
  one outstanding) for two seconds against each (goal >= 0.5x).
* the agent process's RSS (VmRSS, and VmHWM as peak) after the runs; with the
  ``cryptography`` package present the agent also runs an SNMPv3 user, and an SNMPv3
  authPriv bulk walk is timed against snmpd's, and the server CPU time per SNMPv3
  authPriv GETNEXT request (``snmpwalk``, one request per varbind; CPU time of the
  server process from /proc) is compared with snmpd's (goal <= 2x).

snmpd is started here on a loopback port with a temporary configuration and
SNMP_PERSISTENT_DIR, and killed at the end. The last line printed is::

    walk/snmpd: <ratio>x per-varbind bulkwalk time vs net-snmp snmpd

Run: ``.venv/bin/python benchmarks/snmp_walk.py`` (about 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from snmp_request import get_request  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMMUNITY = "public"
V3 = ("bench", "authpass12345", "privpass12345")
REPEATS = 11
GET_SECONDS = 2.0
CELL_OID = (1, 3, 6, 1, 4, 1, 32473, 2, 1, 1, 5, 1, 2, 1, 3, 7)  # bmsCellVoltage.1.3.7
SNMPD_TABLE = ".1.3.6.1.2.1.25.4.2"  # hrSWRunTable: 7 columns per process
SNMPD_GET_OID = (1, 3, 6, 1, 2, 1, 25, 4, 2, 1, 7, 1)  # hrSWRunStatus.1


# ----------------------------------------------------------------- the agent --------


def make_bank(now: float):
    """A 12 x 16-cell bank as the poller would publish it: every module live (the
    whole MIB is served), discharging currents, two alarms."""
    import dataclasses

    from gateway.hub import Hub
    from gateway.model import (
        Alarm,
        BmsStatus,
        BusStatus,
        Identity,
        LinkCounters,
        LinkState,
        ModuleReading,
        ModuleStatus,
        Severity,
        State,
        Telemetry,
        TempRole,
    )

    roles = (TempRole.CELL,) * 4 + (TempRole.MOSFET, TempRole.AMBIENT)
    modules = []
    for pos in range(1, 13):
        status = ModuleStatus.OK
        cells = tuple(3300 + (pos * 5 + i * 7) % 40 for i in range(16))
        modules.append(ModuleReading(
            bus="bank1", address=pos, position=pos, status=status,
            link=LinkState.ONLINE if status is ModuleStatus.OK else LinkState.OFFLINE,
            updated_at=now - (2 if status is ModuleStatus.OK else 60),
            identity=Identity(serial=f"PACE{pos:04d}", model="LFP48-100", firmware="V2.5",
                              manufacturer="Pace"),
            telemetry=Telemetry(cell_mv=cells, temp_dc=tuple(250 + i for i in range(6)),
                                temp_roles=roles, current_ma=-2500 - pos,
                                voltage_mv=sum(cells), remaining_mah=80_000, full_mah=98_000,
                                design_mah=100_000, cycles=150, soc_permille=815,
                                soh_permille=970),
            bms=BmsStatus(states=State.CHARGE_FET_ON | State.DISCHARGE_FET_ON,
                          balancing=(False,) * 16),
            counters=LinkCounters(frames_ok=1000)))
    alarms = tuple(
        Alarm(seq=s, kind="cell_voltage_high", severity=Severity.MAJOR, position=1,
              sub_index=s, value=3651, threshold=3650, raised_at=now, raised_wall_time=0.0,
              text="cell voltage high") for s in (1, 2))

    class Alarms:
        def process(self, snapshot, now):
            return dataclasses.replace(snapshot, alarms=alarms, alarm_last_seq=2), ()

    hub = Hub()
    hub.add_processor(Alarms())
    hub.update("rs485_bms", modules=modules,
               buses=[BusStatus(name="bank1", port="/dev/ttyUSB0", connected=True,
                                last_cycle_ms=1800, last_cycle_at=now, cycles=10)])
    return hub


def have_cryptography() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def serve() -> None:
    """Child process: run the agent on a free loopback port; print the port; run until
    stdin closes."""
    from plugins.snmp_agent.agent import SnmpAgent
    from plugins.snmp_agent.settings import SnmpAgentSettings

    users = ([{"name": V3[0], "auth_key": V3[1], "priv_key": V3[2]}]
             if have_cryptography() else [])
    settings = SnmpAgentSettings.model_validate(
        {"listen_address": "127.0.0.1", "port": 0, "v3_users": users})

    async def main() -> None:
        loop = asyncio.get_running_loop()
        agent = SnmpAgent(settings, make_bank(time.monotonic()),
                          state_dir=Path(tempfile.mkdtemp(prefix="snmp-bench-")))
        task = asyncio.ensure_future(agent.run())
        await agent.ready.wait()
        print(agent.address[1], "v3" if users else "v2c", flush=True)
        closed = asyncio.Event()
        loop.add_reader(sys.stdin.fileno(), closed.set)
        await closed.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


# ----------------------------------------------------------------- clients ----------


def walk(tool_args: list[str], target: str, oid: str, env: dict[str, str]) -> tuple[float, int]:
    """Median wall time (s) of REPEATS walks and the varbind count."""
    times = []
    count = 0
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = subprocess.run(["snmpbulkwalk", *tool_args, "-On", "-Oq", target, oid],
                             capture_output=True, text=True, env=env, check=True)
        times.append(time.perf_counter() - t0)
        count = len(out.stdout.splitlines())
    return statistics.median(times), count


def cpu_s(pid: int) -> float:
    """User + system CPU time (s) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(pid: int, tool_args: list[str], target: str, oid: str,
                    env: dict[str, str], *, repeats: int = 3) -> tuple[float, int]:
    """Server CPU time per request (s) over ``repeats`` GETNEXT walks (one request per
    varbind, one client process each), and the requests of one walk."""
    before = cpu_s(pid)
    count = 0
    for _ in range(repeats):
        out = subprocess.run(["snmpwalk", *tool_args, "-On", "-Oq", target, oid],
                             capture_output=True, text=True, env=env, check=True)
        count = len(out.stdout.splitlines()) + 1  # the last request finds the end
    return (cpu_s(pid) - before) / (repeats * count), count


def get_rate(port: int, oid: tuple[int, ...]) -> float:
    """GetRequests per second with one in flight, for GET_SECONDS."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.connect(("127.0.0.1", port))
    n = 0
    end = time.perf_counter() + GET_SECONDS
    t0 = time.perf_counter()
    while time.perf_counter() < end:
        reqid = 0x10000000 + n
        sock.send(get_request(oid, reqid, COMMUNITY.encode()))
        answer = sock.recv(2048)
        if answer.find(reqid.to_bytes(4, "big")) < 0 or b"\xa2" not in answer:
            raise RuntimeError("unexpected answer")
        n += 1
    elapsed = time.perf_counter() - t0
    sock.close()
    return n / elapsed


def rss_kib(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def count_processes() -> int:
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit())


def main() -> int:
    for tool in ("snmpbulkwalk", "snmpd"):
        if shutil.which(tool) is None and not Path("/usr/sbin/snmpd").exists():
            print(f"{tool} is missing: apt-get install snmp snmpd", file=sys.stderr)
            return 1
    snmpd = shutil.which("snmpd") or "/usr/sbin/snmpd"
    work = Path(tempfile.mkdtemp(prefix="snmp-walk-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIB", "SNMP"))}
    env.update(HOME=str(work), SNMPCONFPATH=str(work), SNMP_PERSISTENT_DIR=str(work))
    children: list[subprocess.Popen] = []
    sleepers: list[subprocess.Popen] = []
    try:
        agent = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, cwd=REPO)
        children.append(agent)
        port_text, mode = agent.stdout.readline().split()
        port = int(port_text)

        snmpd_port = free_port()
        (work / "snmpd.conf").write_text(
            f"agentAddress udp:127.0.0.1:{snmpd_port}\n"
            f"rocommunity {COMMUNITY} 127.0.0.1\n"
            f"createUser {V3[0]} SHA-256 {V3[1]} AES {V3[2]}\n"
            f"rouser {V3[0]} priv\n"
            "master no\n")
        daemon = subprocess.Popen(
            [snmpd, "-f", "-Lf", str(work / "snmpd.log"), "-C", "-c", str(work / "snmpd.conf"),
             "-I", "-smux,mteTrigger,mteTriggerConf"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(daemon)

        v2c = ["-v2c", "-c", COMMUNITY]
        target = f"127.0.0.1:{port}"
        ours_count = walk(v2c + ["-Cr10"], target, ".1", env)[1]
        # pad hrSWRunTable to about our varbind count with idle processes
        missing = max(0, (ours_count - 7 * count_processes()) // 7)
        for _ in range(missing):
            sleepers.append(subprocess.Popen(["sleep", "300"]))
        snmpd_target = f"127.0.0.1:{snmpd_port}"
        deadline = time.monotonic() + 10
        while subprocess.run(["snmpget", *v2c, "-t", "0.5", "-r", "0", snmpd_target,
                              ".1.3.6.1.2.1.1.3.0"], capture_output=True,
                             env=env).returncode != 0:
            if time.monotonic() > deadline:
                print("snmpd did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)

        print(f"agent: pid {agent.pid}, mode {mode} "
              f"({'v2c and an SNMPv3 user' if mode == 'v3' else 'v2c only'})")
        print(f"{'walk':<24}{'gateway ms':>11}{'vb':>6}{'us/vb':>8}"
              f"{'snmpd ms':>10}{'vb':>6}{'us/vb':>8}{'ratio':>8}")
        ratios = []
        runs = [(f"v2c bulkwalk -Cr{r}", v2c + [f"-Cr{r}"]) for r in (10, 25, 64)]
        if mode == "v3":
            runs.append(("v3 authPriv -Cr25",
                         ["-v3", "-l", "authPriv", "-u", V3[0], "-a", "SHA-256", "-A", V3[1],
                          "-x", "AES", "-X", V3[2], "-Cr25"]))
        for label, args in runs:
            ours_t, ours_n = walk(args, target, ".1", env)
            theirs_t, theirs_n = walk(args, snmpd_target, SNMPD_TABLE, env)
            ratio = (ours_t / ours_n) / (theirs_t / theirs_n)
            if label.startswith("v2c"):
                ratios.append(ratio)
            print(f"{label:<24}{ours_t * 1e3:>11.1f}{ours_n:>6}{ours_t / ours_n * 1e6:>8.1f}"
                  f"{theirs_t * 1e3:>10.1f}{theirs_n:>6}{theirs_t / theirs_n * 1e6:>8.1f}"
                  f"{ratio:>7.2f}x")

        if mode == "v3":
            v3 = ["-v3", "-l", "authPriv", "-u", V3[0], "-a", "SHA-256", "-A", V3[1],
                  "-x", "AES", "-X", V3[2]]
            ours_cpu, ours_n = cpu_per_request(agent.pid, v3, target, ".1", env)
            theirs_cpu, theirs_n = cpu_per_request(daemon.pid, v3, snmpd_target, SNMPD_TABLE,
                                                   env)
            print(f"v3 authPriv GETNEXT, server CPU per request: gateway "
                  f"{ours_cpu * 1e6:.0f} us ({ours_n} requests/walk), snmpd "
                  f"{theirs_cpu * 1e6:.0f} us ({theirs_n}), ratio {ours_cpu / theirs_cpu:.2f}x "
                  "(goal <= 2x)")
        ours_rate = get_rate(port, CELL_OID)
        theirs_rate = get_rate(snmpd_port, SNMPD_GET_OID)
        print(f"GET, 1 in flight: gateway {ours_rate:.0f}/s, snmpd {theirs_rate:.0f}/s, "
              f"ratio {ours_rate / theirs_rate:.2f}x (goal >= 0.5x)")
        rss, hwm = rss_kib(agent.pid)
        print(f"agent RSS: {rss / 1024:.1f} MiB (peak {hwm / 1024:.1f} MiB)")
        worst = max(ratios)
        print(f"per-varbind v2c walk ratio, worst of -Cr10/25/64 (goal <= 2x): {worst:.2f}x")
        print(f"walk/snmpd: {worst:.2f}x per-varbind bulkwalk time vs net-snmp snmpd")
        return 0
    finally:
        for p in sleepers:
            p.kill()
        for p in children:
            if p.stdin:
                p.stdin.close()
            p.send_signal(signal.SIGTERM)
        for p in children + sleepers:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    if parser.parse_args().serve:
        serve()
    else:
        sys.exit(main())

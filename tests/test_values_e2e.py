"""Every number served is the number on the wire: frame bytes -> SNMP and Modbus values.

A real ``bms-gateway simulate`` process serves a 3-pack PACE bank over TCP; the gateway
(a real ``bms-gateway run``) polls it through a recording TCP relay, once (the poll
interval is an hour). The relay's byte stream is decoded with ``bms-gateway decode
--json`` (the codec checked field for field against the captured frames), and every
pack's voltage, current (sign included), cells, temperatures, capacities and SOC must
read back the same through net-snmp (``snmpget``) and ``mbpoll``. The bank is on
battery (a ``mains_failure`` scenario), so every current is negative. The decoder itself is
checked field for field against the captured frames (tests/rs485_bms/test_vectors.py):
here it stands for the wire, and what is tested is every step after it.
"""

from __future__ import annotations

import asyncio
import json
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from plugins.modbus_tcp import register_map as rm
from plugins.snmp_agent import oid_map as om

pytestmark = pytest.mark.e2e

PACKS = 3


def _port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Relay:
    """A TCP relay on 127.0.0.1 that keeps every byte it passes on, both ways."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = _port()
        self.to_bank = bytearray()
        self.from_bank = bytearray()
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.started.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        writers: list[asyncio.StreamWriter] = []

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, log: bytearray):
            try:
                while data := await r.read(4096):
                    log.extend(data)
                    w.write(data)
                    await w.drain()
            except ConnectionError:
                pass
            finally:
                w.close()

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            br, bw = await asyncio.open_connection("127.0.0.1", self.target)
            writers.extend((w, bw))
            await asyncio.gather(pipe(r, bw, self.to_bank), pipe(br, w, self.from_bank))

        async def main() -> None:
            self.stop = asyncio.Event()
            server = await asyncio.start_server(handle, "127.0.0.1", self.port)
            self.started.set()
            await self.stop.wait()
            server.close()
            for w in writers:
                w.close()
            await server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.loop.run_until_complete(main())
        finally:
            self.loop.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)
        assert not self.thread.is_alive()

    def transcript(self) -> str:
        """Requests and answers interleaved in time order, one frame per line (the
        gateway waits for each answer before its next request)."""
        requests = re.findall(rb"~[0-9A-F]+\r", bytes(self.to_bank))
        answers = re.findall(rb"~[0-9A-F]+\r", bytes(self.from_bank))
        assert len(requests) == len(answers), (len(requests), len(answers))
        return "".join(f"{q.decode().strip()}\n{a.decode().strip()}\n"
                       for q, a in zip(requests, answers))


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def polled_once(tmp_path, gateway_cmd, subprocess_env, require_tool, repo):
    for tool in ("snmpget", "mbpoll"):
        require_tool(tool)
    sim_port = _port()
    # the packs of a parallel bank share one current sign: the bank is on battery here,
    # so every current read is negative, the sign a decoder gets wrong (charging currents
    # are compared with the wire in tests/rs485_bms/test_bank_e2e.py)
    scenario = tmp_path / "outage.yaml"
    scenario.write_text("steps:\n  - {at_s: 0, fault: mains_failure, load_a: 30}\n")
    sim = subprocess.Popen([*gateway_cmd, "simulate", "--listen", f"tcp://127.0.0.1:{sim_port}",
                            "--packs", str(PACKS), "--baud", "115200", "--turnaround-ms", "0",
                            "--seed", "1", "--scenario", str(scenario)],
                           env=subprocess_env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    relay = gateway = reader = None
    try:
        _wait_listening(sim_port, sim)
        relay = Relay(sim_port)
        snmp_port, modbus_port = _port(socket.SOCK_DGRAM), _port()
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml.safe_dump({
            "gateway": {"watchdog": False},
            "rs485_bms": {"stale_after_s": 3600, "buses": [{
                "name": "wire", "port": f"socket://127.0.0.1:{relay.port}",
                "family": "pace_v25", "addresses": f"1-{PACKS}", "baud": 115200,
                "poll_interval_s": 3600}]},
            "snmp_agent": {"listen_address": "127.0.0.1", "port": snmp_port},
            "modbus_tcp": {"listen_address": "127.0.0.1", "port": modbus_port},
        }))
        gateway = subprocess.Popen([*gateway_cmd, "--log-level", "INFO", "run", "-c",
                                    str(config)], env=subprocess_env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(x) for x in gateway.stderr],
                                  daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while True:  # until the end of the first (and only) poll cycle
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no poll cycle completed in 30 s") from None
            if "bus wire: cycle 1 in" in line:
                break
        _wait_listening(modbus_port, gateway)  # north may start after the cycle ended
        transcript = relay.transcript()
        decoded = subprocess.run([*gateway_cmd, "decode", "--json"], input=transcript,
                                 capture_output=True, text=True, timeout=30, check=True)
        answers = [json.loads(line) for line in decoded.stdout.splitlines()]
        analog = {a["adr"]: a for a in answers
                  if a.get("type") != "request" and "cell_mv" in a}
        assert sorted(analog) == list(range(1, PACKS + 1)), decoded.stdout
        currents = [a["current_a"] for a in analog.values()]
        assert all(c < 0 for c in currents), currents
        yield analog, snmp_port, modbus_port, repo
    finally:
        for proc in (gateway, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if reader is not None:
            reader.join(5)  # the gateway has exited: its stderr is at its end
        if gateway is not None and gateway.stderr is not None:
            gateway.stderr.close()
        if relay is not None:
            relay.close()


def snmp_values(port: int, repo: Path, oids: list[str]) -> dict[str, int]:
    out = subprocess.run(["snmpget", "-v2c", "-c", "public", "-On", "-Oqe", "-t", "2", "-r", "3",
                          f"127.0.0.1:{port}", *oids], capture_output=True, text=True,
                         timeout=30, cwd=repo)
    assert out.returncode == 0, out.stderr
    values = {}
    for line in out.stdout.splitlines():
        oid, value = line.split(" ", 1)
        values[oid] = int(value)
    assert set(values) == set(oids), out.stdout  # every one served, none absent
    return values


def modbus_block(port: int, start: int, count: int) -> list[int]:
    out = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-0", "-1",
                          "-t", "4:hex", "-r", str(start), "-c", str(count), "127.0.0.1"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    regs = dict(re.findall(r"^\[(\d+)\]:\s+0x([0-9A-F]{4})", out.stdout, re.M))
    return [int(regs[str(a)], 16) for a in range(start, start + count)]


def _s32(hi: int, lo: int) -> int:
    v = hi << 16 | lo
    return v - (1 << 32) if v & 0x80000000 else v


def _s16(v: int) -> int:
    return v - 0x10000 if v & 0x8000 else v


def expected_soc_permille(a: dict) -> int:
    """SOC as the reference defines it for PACE: the pack's own percent where the answer
    carries it (extended tail), else remaining / full, half up, at most 100 %."""
    if a.get("soc_pct") is not None:
        return round(a["soc_pct"] * 10)
    remaining, full = round(a["remaining_ah"] * 100), round(a["full_ah"] * 100)  # 10 mAh
    return min(1000, (2000 * remaining + full) // (2 * full))


def test_every_served_number_is_the_number_on_the_wire(polled_once):
    analog, snmp_port, modbus_port, repo = polled_once
    o = rm.MODULE_BLOCK.offsets
    for adr, a in analog.items():
        idx = (1, adr)  # bmsBusIndex 1 (the only bus), the DIP address
        cells, temps = a["cell_mv"], a["temps_c"]
        scalars = {
            om.MOD_VOLTAGE: round(a["pack_v"] * 1000),  # mV
            om.MOD_CURRENT: round(a["current_a"] * 1000),  # mA, + = charging
            om.MOD_SOC: expected_soc_permille(a),  # per mille
            om.MOD_REMAINING: round(a["remaining_ah"] * 1000),  # mAh
            om.MOD_FULL: round(a["full_ah"] * 1000),  # mAh
            om.MOD_CYCLES: a["cycles"],
        }
        want = {name(obj.oid + idx): v for obj, v in scalars.items()}
        want.update({name(om.CELL_VOLTAGE.oid + idx + (i,)): mv
                     for i, mv in enumerate(cells, start=1)})
        want.update({name(om.TEMP_VALUE.oid + idx + (i,)): round(c * 10)
                     for i, c in enumerate(temps, start=1)})
        assert snmp_values(snmp_port, repo, list(want)) == want, f"pack {adr}"

        length = max(o["cell_1_mv"] + len(cells), o["temp_1_dc"] + len(temps))
        block = modbus_block(modbus_port, rm.module_block_start(adr), length)
        assert block[o["status"]] == 1  # ok
        assert block[o["voltage_mv"]] == scalars[om.MOD_VOLTAGE]
        assert _s32(*block[o["current_ma"]:o["current_ma"] + 2]) == scalars[om.MOD_CURRENT]
        assert block[o["soc_permille"]] == scalars[om.MOD_SOC]
        assert _s32(*block[o["remaining_mah"]:o["remaining_mah"] + 2]) == \
            scalars[om.MOD_REMAINING]
        assert _s32(*block[o["full_mah"]:o["full_mah"] + 2]) == scalars[om.MOD_FULL]
        assert block[o["cycles"]] == a["cycles"]
        assert block[o["cell_1_mv"]:o["cell_1_mv"] + len(cells)] == cells
        assert [_s16(v) for v in block[o["temp_1_dc"]:o["temp_1_dc"] + len(temps)]] == \
            [round(c * 10) for c in temps]


def name(oid: tuple[int, ...]) -> str:
    return "." + ".".join(map(str, oid))

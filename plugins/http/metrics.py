"""Prometheus metric families from the latest snapshot, built at scrape time.

:func:`make_metric_families` is pure (snapshot, ``now`` and the health figures in,
families out); :class:`SnapshotCollector` is the prometheus_client custom collector that
calls it for every scrape, so nothing is updated per poll and a scrape never waits on
the bus. Names follow the Prometheus conventions: base units (volts, amperes, celsius,
seconds, coulombs for charge, ratios 0-1 for SoC and SoH), ``_total`` for counters,
labels ``bus``/``address`` for a module and ``cell``/``sensor`` below it.
A module whose data is not live exports its status, age and link counters only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from gateway.health import Figure
from gateway.hub import age_snapshot
from gateway.leds import derive_leds
from gateway.model import (
    BackupEstimate,
    BankSnapshot,
    BankState,
    ChargeLimits,
    ModuleReading,
    ModuleStatus,
)

MV = 1000.0
MAH_TO_COULOMBS = 3.6  #: 1 mAh = 3.6 C

#: link counter field -> metric name part
LINK_COUNTERS = {
    "frames_ok": ("frames_ok", "frames answered correctly"),
    "timeouts": ("timeouts", "requests that got no answer in time"),
    "checksum_errors": ("checksum_errors", "answers with a bad checksum"),
    "format_errors": ("format_errors", "truncated or malformed answers"),
    "rtn_errors": ("rtn_errors", "answers with a non-zero return code"),
    "wrong_address": ("wrong_address_answers", "answers from an unexpected address"),
    "no_data": ("no_data_answers", "answers without usable data"),
    "garbage_bytes": ("garbage_bytes", "bytes received outside any frame"),
}

MODULE_LABELS = ("bus", "address")  #: a module is its bus and DIP address (as in the MIB)


class _Families:
    """Families by name, created on first use, in first-use order."""

    def __init__(self) -> None:
        self.by_name: dict[str, Metric] = {}

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
        fam = self.by_name.get(name)
        if fam is None:
            fam = self.by_name[name] = GaugeMetricFamily(name, doc, labels=labels)
        return fam  # type: ignore[return-value]

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
        fam = self.by_name.get(name)
        if fam is None:
            fam = self.by_name[name] = CounterMetricFamily(name, doc, labels=labels)
        return fam  # type: ignore[return-value]

    def put_gauge(self, name: str, doc: str, labels: Mapping[str, str], value: float | None
                  ) -> None:
        if value is not None:
            self.gauge(name, doc, tuple(labels)).add_metric(tuple(labels.values()), value)

    def put_counter(self, name: str, doc: str, labels: Mapping[str, str], value: float | None
                    ) -> None:
        if value is not None:
            self.counter(name, doc, tuple(labels)).add_metric(tuple(labels.values()), value)


def _ratio(permille: int | None) -> float | None:
    return None if permille is None else permille / 1000


def _volts(mv: int | None) -> float | None:
    return None if mv is None else mv / MV


def _coulombs(mah: int | None) -> float | None:
    return None if mah is None else mah * MAH_TO_COULOMBS


def _celsius(dc: int | None) -> float | None:
    return None if dc is None else dc / 10


def _bank(f: _Families, snap: BankSnapshot) -> None:
    b = snap.bank
    no = {}
    f.put_gauge("bms_bank_modules_configured", "Modules configured in the bank.", no,
                b.modules_configured)
    f.put_gauge("bms_bank_modules_online", "Modules whose data is live.", no, b.modules_online)
    f.put_gauge("bms_bank_modules_alarmed", "Modules with an active alarm or a BMS "
                "protection or fault.", no, b.modules_alarmed)
    f.put_gauge("bms_bank_current_amperes", "Bank current, sum over live modules; positive "
                "while charging.", no, None if b.current_ma is None else b.current_ma / 1000)
    for key, doc in (("min", "Lowest"), ("max", "Highest"), ("mean", "Mean")):
        f.put_gauge(f"bms_bank_voltage_{key}_volts", f"{doc} module voltage over live "
                    "modules.", no, _volts(getattr(b, f"voltage_{key}_mv")))
    f.put_gauge("bms_bank_cell_voltage_min_volts", "Lowest cell voltage in the bank.", no,
                _volts(b.cell_min_mv))
    f.put_gauge("bms_bank_cell_voltage_max_volts", "Highest cell voltage in the bank.", no,
                _volts(b.cell_max_mv))
    f.put_gauge("bms_bank_temperature_min_celsius", "Lowest temperature in the bank.", no,
                _celsius(b.temp_min_dc))
    f.put_gauge("bms_bank_temperature_max_celsius", "Highest temperature in the bank.", no,
                _celsius(b.temp_max_dc))
    f.put_gauge("bms_bank_state_of_charge_ratio", "Bank state of charge (0-1), "
                "capacity-weighted over live modules.", no, _ratio(b.soc_permille))
    f.put_gauge("bms_bank_state_of_health_min_ratio", "Lowest module state of health (0-1).",
                no, _ratio(b.soh_min_permille))
    f.put_gauge("bms_bank_remaining_charge_coulombs", "Remaining charge, sum over live "
                "modules (1 Ah = 3600 C).", no, _coulombs(b.remaining_mah))
    f.put_gauge("bms_bank_full_charge_coulombs", "Full-charge capacity, sum over live "
                "modules (1 Ah = 3600 C).", no, _coulombs(b.full_mah))


def _limits(f: _Families, lim: ChargeLimits | None, fresh: bool) -> None:
    """The charge_limits processor's figures; none from a snapshot gone stale since (the
    hub stopped publishing): a scraper sees no current limit rather than an old one."""
    if lim is None or not fresh:
        return
    no: dict[str, str] = {}
    f.put_gauge("bms_charge_voltage_limit_volts", "Charge voltage limit (CVL) for the "
                "rectifier (docs/charge_limits.md).", no, lim.cvl.value / 1000)
    f.put_gauge("bms_charge_current_limit_amperes", "Charge current limit (CCL) the bank "
                "can take now.", no, lim.ccl.value / 1000)
    f.put_gauge("bms_discharge_current_limit_amperes", "Discharge current limit (DCL) the "
                "bank can give now.", no, lim.dcl.value / 1000)
    for name, limit in (("cvl", lim.cvl), ("ccl", lim.ccl), ("dcl", lim.dcl)):
        f.put_gauge("bms_limit_cause", "What set each limit: the cause number of "
                    "docs/charge_limits.md (1 capacity, 2 modules not live, ...).",
                    {"limit": name}, int(limit.cause))


def _backup(f: _Families, e: BackupEstimate | None) -> None:
    """The backup_time processor's figures; unknown ones are not exported."""
    if e is None:
        return
    no: dict[str, str] = {}
    if e.state is not None:
        f.put_gauge("bms_bank_on_battery", "1 while the bank discharges (the site is on "
                    "battery), 0 otherwise (docs/backup_time.md).", no,
                    1 if e.state is BankState.DISCHARGING else 0)
    f.put_gauge("bms_bank_on_battery_seconds", "Seconds since the bank went on battery; 0 "
                "while it is not.", no, e.seconds_on_battery)
    f.put_gauge("bms_bank_time_to_eod_seconds", "Estimated time to the end-of-discharge "
                "voltage at the present load; only while discharging.", no, e.seconds_to_eod)
    f.put_gauge("bms_bank_time_to_full_seconds", "Estimated time to full at the present "
                "charge current (a lower bound); only while charging.", no, e.seconds_to_full)
    f.put_counter("bms_bank_discharges", "On-battery events recorded (the number of "
                  "the newest discharge record).", no, e.record_last)


def _buses(f: _Families, snap: BankSnapshot, now: float) -> None:
    for b in snap.buses:
        lb = {"bus": b.name}
        f.put_gauge("bms_bus_connected", "1 while the bus's port is open.", lb,
                    1 if b.connected else 0)
        f.put_counter("bms_bus_poll_cycles", "Complete poll cycles of the bus.", lb, b.cycles)
        f.put_counter("bms_bus_reconnects", "Times the bus's port was reopened.", lb,
                      b.reconnects)
        f.put_gauge("bms_bus_last_cycle_duration_seconds", "Duration of the last complete "
                    "poll cycle.", lb, None if b.last_cycle_ms is None
                    else b.last_cycle_ms / 1000)
        f.put_gauge("bms_bus_last_cycle_age_seconds", "Time since the last complete poll "
                    "cycle ended.", lb, None if b.last_cycle_at is None
                    else max(0.0, now - b.last_cycle_at))
        for field, (name, doc) in LINK_COUNTERS.items():
            f.put_counter(f"bms_bus_{name}", f"Bus total: {doc}.", lb,
                          getattr(b.counters, field))


_STATUSES = {s: s.name.lower() for s in ModuleStatus}


def _module(f: _Families, m: ModuleReading, now: float, status_family: StateSetMetricFamily,
            info_family: InfoMetricFamily) -> None:
    lm = {"bus": m.bus, "address": str(m.address)}
    ident = m.identity
    info_family.add_metric(tuple(lm.values()), {
        "position": str(m.position),
        "serial": (ident.serial if ident else None) or "",
        "firmware": (ident.firmware if ident else None) or ""})
    status_family.add_metric(tuple(lm.values()),
                             {name: s is m.status for s, name in _STATUSES.items()})
    live = m.status is ModuleStatus.OK
    f.put_gauge("bms_module_live", "1 while the module's data is live (status ok); its "
                "values are exported only then.", lm, 1 if live else 0)
    f.put_gauge("bms_module_data_age_seconds", "Age of the module's last good data.", lm,
                m.age_s(now))
    for field, (name, doc) in LINK_COUNTERS.items():
        f.put_counter(f"bms_module_{name}", f"Module: {doc}.", lm, getattr(m.counters, field))
    if not live:
        return
    t = m.telemetry
    if t is not None:
        f.put_gauge("bms_module_voltage_volts", "Module (pack) voltage.", lm,
                    _volts(t.voltage_mv))
        f.put_gauge("bms_module_current_amperes", "Module current; positive while charging, "
                    "negative while discharging.", lm,
                    None if t.current_ma is None else t.current_ma / 1000)
        f.put_gauge("bms_module_state_of_charge_ratio", "State of charge (0-1).", lm,
                    _ratio(t.soc_permille))
        f.put_gauge("bms_module_state_of_health_ratio", "State of health (0-1).", lm,
                    _ratio(t.soh_permille))
        f.put_gauge("bms_module_remaining_charge_coulombs", "Remaining charge "
                    "(1 Ah = 3600 C).", lm, _coulombs(t.remaining_mah))
        f.put_gauge("bms_module_full_charge_coulombs", "Full-charge capacity "
                    "(1 Ah = 3600 C).", lm, _coulombs(t.full_mah))
        f.put_gauge("bms_module_design_charge_coulombs", "Design capacity (1 Ah = 3600 C).",
                    lm, _coulombs(t.design_mah))
        f.put_counter("bms_module_cycles", "Charge cycles the BMS counted.", lm, t.cycles)
        f.put_gauge("bms_module_cell_voltage_min_volts", "Lowest cell voltage of the module.",
                    lm, _volts(t.cell_min_mv))
        f.put_gauge("bms_module_cell_voltage_max_volts", "Highest cell voltage of the "
                    "module.", lm, _volts(t.cell_max_mv))
        cells = f.gauge("bms_cell_voltage_volts", "Cell voltage.", (*MODULE_LABELS, "cell"))
        base = tuple(lm.values())
        for i, mv in enumerate(t.cell_mv, start=1):
            if mv is not None:
                cells.add_metric((*base, str(i)), mv / MV)
        temps = f.gauge("bms_module_temperature_celsius", "Temperature sensor of the module, "
                        "by role (cell, mosfet, ambient, board, other).",
                        (*MODULE_LABELS, "sensor", "role"))
        for i, dc in enumerate(t.temp_dc, start=1):
            if dc is not None:
                role = t.temp_roles[i - 1].name.lower() if i <= len(t.temp_roles) else "other"
                temps.add_metric((*base, str(i), role), dc / 10)
    b = m.bms
    if b is not None:
        base = tuple(lm.values())
        cond = f.gauge("bms_module_condition", "1 for each threshold condition the BMS "
                       "reports, as a warning or a protection.",
                       (*MODULE_LABELS, "type", "condition"))
        for kind, flags in (("warning", b.warnings), ("protection", b.protections)):
            for flag in flags:
                cond.add_metric((*base, kind, flag.name.lower()), 1)
        faults = f.gauge("bms_module_fault", "1 for each fault the BMS reports.",
                         (*MODULE_LABELS, "fault"))
        for flag in b.faults:
            faults.add_metric((*base, flag.name.lower()), 1)
        if b.balancing is not None:
            # sparse, like the flags: a series per cell being balanced, and the count
            f.put_gauge("bms_module_balancing_cells", "Cells the BMS is balancing now.", lm,
                        sum(b.balancing))
            bal = f.gauge("bms_cell_balancing", "1 for each cell the BMS is balancing now.",
                          (*MODULE_LABELS, "cell"))
            for i, on in enumerate(b.balancing, start=1):
                if on:
                    bal.add_metric((*base, str(i)), 1)
    leds = derive_leds(t, b)
    base = tuple(lm.values())
    codes = f.gauge("bms_module_fault_code", "1 for each fault code the ERR light flashes "
                    "after RESET (flash count).", (*MODULE_LABELS, "code"))
    for c in leds.fault_codes:
        codes.add_metric((*base, str(c)), 1)


def _alarms(f: _Families, snap: BankSnapshot) -> None:
    fam = f.gauge("bms_alarms_active", "Active alarms by kind and severity.",
                  ("kind", "severity"))
    counts: dict[tuple[str, str], int] = {}
    for a in snap.alarms:
        key = (a.kind, a.severity.name.lower())
        counts[key] = counts.get(key, 0) + 1
    for key, n in sorted(counts.items()):
        fam.add_metric(key, n)
    f.put_gauge("bms_alarm_last_sequence", "Sequence number of the last alarm raise or "
                "clear.", {}, snap.alarm_last_seq)


def _health(f: _Families, health: Mapping[str, Sequence[Figure]]) -> None:
    for _source, figures in health.items():
        for fig in figures:
            name = "bms_gateway_" + fig.name
            labels = dict(fig.labels)
            if fig.kind == "counter":
                f.counter(name.removesuffix("_total"), fig.help, tuple(labels)).add_metric(
                    tuple(labels.values()), fig.value)
            else:
                f.gauge(name, fig.help, tuple(labels)).add_metric(tuple(labels.values()),
                                                                  fig.value)


def make_metric_families(snapshot: BankSnapshot | None, now: float, *,
                         health: Mapping[str, Sequence[Figure]], name: str, version: str
                         ) -> list[Metric]:
    """Every metric family for ``snapshot`` at monotonic time ``now``."""
    info = InfoMetricFamily("bms_gateway", "The gateway's name and software version.",
                            value={"name": name, "version": version})
    f = _Families()
    f.by_name["bms_gateway"] = info
    _health(f, health)
    if snapshot is None:
        return list(f.by_name.values())
    snap = age_snapshot(snapshot, now)
    f.put_gauge("bms_snapshot_age_seconds", "Age of the newest snapshot.", {},
                max(0.0, now - snap.created_at))
    f.put_gauge("bms_snapshot_sequence", "Sequence number of the newest snapshot (moves "
                "whenever new data arrives).", {}, snap.seq)
    _bank(f, snap)
    _limits(f, snap.charge_limits, fresh=snap is snapshot)
    _backup(f, snap.backup)
    _buses(f, snap, now)
    status = StateSetMetricFamily("bms_module_status", "The quality of the module's data: "
                                  "ok, stale, offline or never_seen.", labels=MODULE_LABELS)
    f.by_name["bms_module_status"] = status
    info = InfoMetricFamily("bms_module", "A configured module: its bank position and what "
                            "it says about itself (last known).", labels=MODULE_LABELS)
    f.by_name["bms_module"] = info
    seen: set[tuple[str, int]] = set()
    for m in snap.modules:
        if (m.bus, m.address) in seen:  # two positions claim one address: a series once
            continue  # (a repeated series would make Prometheus drop the whole scrape)
        seen.add((m.bus, m.address))
        _module(f, m, now, status, info)
    _alarms(f, snap)
    return list(f.by_name.values())


class SnapshotCollector(Collector):
    """A prometheus_client collector over the hub's latest snapshot."""

    def __init__(self, latest: Callable[[], BankSnapshot | None], clock: Callable[[], float],
                 health: Callable[[], Mapping[str, Sequence[Figure]]], *, name: str,
                 version: str) -> None:
        self._latest = latest
        self._clock = clock
        self._health = health
        self._name = name
        self._version = version

    def collect(self) -> Iterator[Metric]:
        yield from make_metric_families(self._latest(), self._clock(), health=self._health(),
                                        name=self._name, version=self._version)


def iter_samples(families: Iterable[Metric]) -> Iterator[tuple[str, dict[str, str], float]]:
    """(sample name, labels, value) of every sample (for tests and tools)."""
    for fam in families:
        for s in fam.samples:
            yield s.name, s.labels, s.value

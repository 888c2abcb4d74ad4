"""Bank aggregates: pure functions from module readings to bank-level figures."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.model import BankAggregates, Location, ModuleReading, ModuleStatus


def _extreme(
    modules: Sequence[ModuleReading], values_of, lowest: bool
) -> tuple[int | None, Location | None]:
    """The lowest (or highest) known value over ``modules`` and where it is: ties keep
    the first module and, within it, the first index (the hub runs this on every
    snapshot, so each module's extreme is found by the builtins)."""
    best: int | None = None
    where: Location | None = None
    for m in modules:
        values = values_of(m)
        known = [v for v in values if v is not None]
        if not known:
            continue
        v = min(known) if lowest else max(known)
        if best is None or (v < best if lowest else v > best):
            best, where = v, Location(position=m.position, index=values.index(v) + 1)
    return best, where


def _sum_known(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def make_bank_aggregates(
    modules: Sequence[ModuleReading], *, alarmed_positions: Iterable[int] = ()
) -> BankAggregates:
    """Aggregate the modules whose data is live.

    Stale, offline and never-seen modules are left out of every figure (an aggregate
    built on stale data would be served as live); they still count as configured.
    SOC is weighted by full capacity where every live module reports it, otherwise it
    is the plain mean of the known SOCs. Minimum and maximum cell voltage and
    temperature carry their location (module position, 1-based cell or sensor number);
    ties keep the lowest position and index.
    """
    live = [m for m in modules if m.status is ModuleStatus.OK and m.telemetry is not None]
    tel = [m.telemetry for m in live]
    voltages = [t.voltage_mv for t in tel if t.voltage_mv is not None]

    cell_min, cell_min_at = _extreme(live, lambda m: m.telemetry.cell_mv, True)
    cell_max, cell_max_at = _extreme(live, lambda m: m.telemetry.cell_mv, False)
    t_min, t_min_at = _extreme(live, lambda m: m.telemetry.temp_dc, True)
    t_max, t_max_at = _extreme(live, lambda m: m.telemetry.temp_dc, False)

    socs = [(t.soc_permille, t.full_mah) for t in tel if t.soc_permille is not None]
    soc: int | None = None
    if socs:
        if all(full for _, full in socs):
            total = sum(full for _, full in socs)
            soc = round(sum(s * full for s, full in socs) / total)
        else:
            soc = round(sum(s for s, _ in socs) / len(socs))
    sohs = [t.soh_permille for t in tel if t.soh_permille is not None]

    return BankAggregates(
        current_ma=_sum_known(t.current_ma for t in tel),
        voltage_min_mv=min(voltages) if voltages else None,
        voltage_max_mv=max(voltages) if voltages else None,
        voltage_mean_mv=round(sum(voltages) / len(voltages)) if voltages else None,
        cell_min_mv=cell_min,
        cell_min_at=cell_min_at,
        cell_max_mv=cell_max,
        cell_max_at=cell_max_at,
        temp_min_dc=t_min,
        temp_min_at=t_min_at,
        temp_max_dc=t_max,
        temp_max_at=t_max_at,
        soc_permille=soc,
        soh_min_permille=min(sohs) if sohs else None,
        remaining_mah=_sum_known(t.remaining_mah for t in tel),
        full_mah=_sum_known(t.full_mah for t in tel),
        modules_configured=len(modules),
        modules_online=len(live),
        modules_alarmed=count_alarmed(modules, alarmed_positions),
    )


def count_alarmed(modules: Sequence[ModuleReading], alarmed_positions: Iterable[int]) -> int:
    """How many of ``modules`` are in alarm: at ``alarmed_positions`` (the alarm
    engine's active alarms) or live with a BMS protection or fault."""
    alarmed = set(alarmed_positions)
    for m in modules:
        if (m.status is ModuleStatus.OK and m.telemetry is not None and m.bms is not None
                and (m.bms.protections or m.bms.faults)):
            alarmed.add(m.position)
    return len(alarmed & {m.position for m in modules})

"""The SunSpec view at 40000: "SunS", common model 1, battery base model 802, end model.

SunSpec-aware SCADA/EMS software scans 40000 for the "SunS" marker and walks the models
that follow, so it finds the bank without a custom map. The point lists below follow the
SunSpec model definitions (a test compares them with the model JSON that pysunspec2
ships); every point the bank cannot truthfully fill reads as the SunSpec "not
implemented" sentinel.

Sign: SunSpec's DER models count power as positive when the device *delivers* it
(model 701: "positive for DER generation and negative for absorption"), so model 802's
``A`` and ``W`` here are **positive while the bank discharges** - the opposite of the
gateway's own map (+ = charging). ``ChaSt`` names the direction explicitly.
"""

from __future__ import annotations

from gateway.model import Condition, ModuleReading, Severity

from plugins.modbus_tcp.bank_view import BankView, DeviceInfo
from plugins.modbus_tcp.fields import Field, Layout, div_round

SUNS = (0x5375, 0x6E53)  #: "SunS"
END_MODEL = (0xFFFF, 0x0000)

MODEL_1 = Layout("sunspec_common", [
    Field("ID", "uint16", doc="1"),
    Field("L", "uint16", doc="66"),
    Field("Mn", "string", size=16, doc="manufacturer: bms-gateway"),
    Field("Md", "string", size=16, doc="model: LiFePO4 bank gateway"),
    Field("Opt", "string", size=8, doc="options: the register map version, e.g. \"map 1\""),
    Field("Vr", "string", size=8, doc="version of the bms-gateway software"),
    Field("SN", "string", size=16, doc="serial number: the gateway's configured name"),
    Field("DA", "uint16", doc="device address: the bank unit ID"),
    Field("Pad", "pad", doc="0x8000"),
])

MODEL_802 = Layout("sunspec_battery", [
    Field("ID", "uint16", doc="802"),
    Field("L", "uint16", doc="62"),
    Field("AHRtg", "uint16", doc="sum of the design capacities of the live modules, Ah"),
    Field("WHRtg", "uint16", doc="not implemented (nominal energy is not reported)"),
    Field("WChaRteMax", "uint16", doc="not implemented"),
    Field("WDisChaRteMax", "uint16", doc="not implemented"),
    Field("DisChaRte", "uint16", doc="not implemented"),
    Field("SoCMax", "uint16", doc="not implemented"),
    Field("SoCMin", "uint16", doc="not implemented"),
    Field("SocRsvMax", "uint16", doc="not implemented"),
    Field("SoCRsvMin", "uint16", doc="not implemented"),
    Field("SoC", "uint16", doc="bank `soc_permille`"),
    Field("DoD", "uint16", doc="not implemented"),
    Field("SoH", "uint16", doc="bank `soh_min_permille` (the weakest module)"),
    Field("NCyc", "uint32", doc="not implemented"),
    Field("ChaSt", "enum16", doc="from the bank current: 4 CHARGING (> 0), 3 DISCHARGING "
          "(< 0), 6 HOLDING (0)"),
    Field("LocRemCtl", "enum16", doc="1 LOCAL: the gateway takes no control commands"),
    Field("Hb", "uint16", doc="not implemented (see the bank block's `snapshot_seq`)"),
    Field("CtrlHb", "uint16", doc="not implemented"),
    Field("AlmRst", "uint16", doc="not implemented (read-only)"),
    Field("Typ", "enum16", doc="4 LITHIUM_ION"),
    Field("State", "enum16", doc="not implemented (contactor state is not reported)"),
    Field("StateVnd", "enum16", doc="not implemented"),
    Field("WarrDt", "uint32", doc="not implemented"),
    Field("Evt1", "bitfield32", doc="alarms and warnings of the live modules, see below"),
    Field("Evt2", "bitfield32", doc="0 (reserved by SunSpec)"),
    Field("EvtVnd1", "bitfield32", doc="BMS faults of any live module: the bits of the bank "
          "block's `bank_faults_bits_0_15`"),
    Field("EvtVnd2", "bitfield32", doc="bit 0 unclassified BMS flags present; bits 1-4 an "
          "active alarm of severity critical, major, minor, warning"),
    Field("V", "uint16", doc="bank `voltage_mean_mv` (modules are in parallel)"),
    Field("VMax", "uint16", doc="the charge voltage limit, bank `cvl_mv` (not implemented "
          "while the charge_limits plugin is off)"),
    Field("VMin", "uint16", doc="the discharge voltage limit, bank `cutoff_mv` (the inverter "
          "cut-off)"),
    Field("CellVMax", "uint16", doc="bank `cell_max_mv`"),
    Field("CellVMaxStr", "uint16", doc="not implemented (modules are in parallel)"),
    Field("CellVMaxMod", "uint16", doc="bank `cell_max_position`"),
    Field("CellVMin", "uint16", doc="bank `cell_min_mv`"),
    Field("CellVMinStr", "uint16", doc="not implemented"),
    Field("CellVMinMod", "uint16", doc="bank `cell_min_position`"),
    Field("CellVAvg", "uint16", doc="mean of the known cell voltages of the live modules"),
    Field("A", "int16", doc="bank current, **+ = discharging** (the negated `current_ma`)"),
    Field("AChaMax", "uint16", doc="the charge current limit, bank `ccl_ma` rounded down to "
          "whole amperes; 0 while the bank data is not live"),
    Field("ADisChaMax", "uint16", doc="the discharge current limit, bank `dcl_ma` rounded "
          "down to whole amperes; 0 while the bank data is not live"),
    Field("W", "int16", doc="bank power, **+ = discharging** (the negated `power_w`)"),
    Field("ReqInvState", "enum16", doc="not implemented"),
    Field("ReqW", "int16", doc="not implemented"),
    Field("SetOp", "enum16", doc="not implemented (read-only)"),
    Field("SetInvState", "enum16", doc="not implemented (read-only)"),
    Field("AHRtg_SF", "sunssf", doc="0"),
    Field("WHRtg_SF", "sunssf", doc="0"),
    Field("WChaDisChaMax_SF", "sunssf", doc="0"),
    Field("DisChaRte_SF", "sunssf", doc="not implemented"),
    Field("SoC_SF", "sunssf", doc="-1"),
    Field("DoD_SF", "sunssf", doc="not implemented"),
    Field("SoH_SF", "sunssf", doc="-1"),
    Field("V_SF", "sunssf", doc="-2"),
    Field("CellV_SF", "sunssf", doc="-3"),
    Field("A_SF", "sunssf", doc="-1"),
    Field("AMax_SF", "sunssf", doc="0"),
    Field("W_SF", "sunssf", doc="1"),
])

#: Fixed scale factors of model 802 (a value = register x 10^sf).
SCALE_FACTORS = {"AHRtg_SF": 0, "WHRtg_SF": 0, "WChaDisChaMax_SF": 0, "SoC_SF": -1,
                 "SoH_SF": -1, "V_SF": -2, "CellV_SF": -3, "A_SF": -1, "AMax_SF": 0, "W_SF": 1}

#: Which scale factor applies to which point (SunSpec model 802).
SF_OF = {"AHRtg": "AHRtg_SF", "WHRtg": "WHRtg_SF", "WChaRteMax": "WChaDisChaMax_SF",
         "WDisChaRteMax": "WChaDisChaMax_SF", "DisChaRte": "DisChaRte_SF", "SoCMax": "SoC_SF",
         "SoCMin": "SoC_SF", "SocRsvMax": "SoC_SF", "SoCRsvMin": "SoC_SF", "SoC": "SoC_SF",
         "DoD": "DoD_SF", "SoH": "SoH_SF", "V": "V_SF", "VMax": "V_SF", "VMin": "V_SF",
         "CellVMax": "CellV_SF", "CellVMin": "CellV_SF", "CellVAvg": "CellV_SF", "A": "A_SF",
         "AChaMax": "AMax_SF", "ADisChaMax": "AMax_SF", "W": "W_SF", "ReqW": "W_SF"}

#: Model 802 Evt1 bits and the normalized BMS conditions behind them: a protection of a
#: live module sets the ``*_ALARM`` bit, a warning the ``*_WARNING`` bit.
_HIGH_TEMP = (Condition.CHARGE_HIGH_TEMP | Condition.DISCHARGE_HIGH_TEMP
              | Condition.MOSFET_HIGH_TEMP | Condition.AMBIENT_HIGH_TEMP)
_LOW_TEMP = Condition.CHARGE_LOW_TEMP | Condition.DISCHARGE_LOW_TEMP | Condition.AMBIENT_LOW_TEMP
_OVER_VOLT = (Condition.CELL_OVER_VOLTAGE | Condition.PACK_OVER_VOLTAGE
              | Condition.CHARGER_OVER_VOLTAGE)
_UNDER_VOLT = Condition.CELL_UNDER_VOLTAGE | Condition.PACK_UNDER_VOLTAGE
EVT1_CONDITIONS: tuple[tuple[int, int, str, Condition], ...] = (
    # (alarm bit, warning bit, SunSpec name stem, conditions)
    (1, 2, "OVER_TEMP", _HIGH_TEMP),
    (3, 4, "UNDER_TEMP", _LOW_TEMP),
    (5, 6, "OVER_CHARGE_CURRENT", Condition.CHARGE_OVER_CURRENT),
    (7, 8, "OVER_DISCHARGE_CURRENT", Condition.DISCHARGE_OVER_CURRENT),
    (9, 10, "OVER_VOLT", _OVER_VOLT),
    (11, 12, "UNDER_VOLT", _UNDER_VOLT),
    (13, 14, "UNDER_SOC_MIN", Condition.LOW_CAPACITY),
    (25, 26, "OTHER", Condition.SHORT_CIRCUIT),
)
EVT1_COMMUNICATION_ERROR = 0
EVT1_OTHER_ALARM = 25

CHA_ST_DISCHARGING, CHA_ST_CHARGING, CHA_ST_HOLDING = 3, 4, 6
LOC_REM_CTL_LOCAL = 1
TYP_LITHIUM_ION = 4

MODEL_1_START = 2
MODEL_802_START = MODEL_1_START + MODEL_1.length
END_START = MODEL_802_START + MODEL_802.length
LENGTH = END_START + len(END_MODEL)


def make_evt1(view: BankView) -> int:
    """Evt1: communication error when any configured module is not live or the bank data
    is not fresh; the condition bits from the live modules' BMS warnings/protections;
    OTHER_ALARM also for any BMS fault."""
    evt = 0
    if not view.ok or any(not s.live for s in view.modules):
        evt |= 1 << EVT1_COMMUNICATION_ERROR
    protections = warnings = faults = 0  # plain ints: IntFlag operators are slow
    for m in view.live:
        b = m.bms
        if b is not None:
            protections |= int(b.protections)
            warnings |= int(b.warnings)
            faults |= int(b.faults)
    for alarm_bit, warning_bit, _, cond in EVT1_CONDITIONS:
        if protections & cond:
            evt |= 1 << alarm_bit
        if warnings & cond:
            evt |= 1 << warning_bit
    if faults:
        evt |= 1 << EVT1_OTHER_ALARM
    return evt


def _cell_avg_mv(live: list[ModuleReading]) -> int | None:
    cells = [mv for m in live if m.telemetry for mv in m.telemetry.cell_mv if mv is not None]
    return div_round(sum(cells), len(cells)) if cells else None


def _capacity_ah(live: list[ModuleReading]) -> int | None:
    caps = [m.telemetry.design_mah if m.telemetry else None for m in live]
    if not caps or any(c is None for c in caps):
        return None
    return div_round(sum(c for c in caps if c is not None), 1000)


def make_limit_points(view: BankView) -> dict[str, object]:
    """VMax, VMin, AChaMax and ADisChaMax from the snapshot's charge limits (none: not
    implemented). The current limits are rounded down (never above the limit) and read
    0 while the bank data is not live, as the bank block's ``ccl_ma`` and ``dcl_ma``."""
    snap = view.snapshot
    lim = snap.charge_limits if snap is not None else None
    if lim is None:
        return {}
    live = view.ok
    return {"VMax": div_round(lim.cvl.value, 10), "VMin": div_round(lim.cutoff_mv, 10),
            "AChaMax": lim.ccl.value // 1000 if live else 0,
            "ADisChaMax": lim.dcl.value // 1000 if live else 0}


def make_model_802_values(view: BankView) -> dict[str, object]:
    v: dict[str, object] = {"ID": 802, "L": MODEL_802.length - 2, "LocRemCtl": LOC_REM_CTL_LOCAL,
                            "Typ": TYP_LITHIUM_ION, "Evt1": make_evt1(view), "Evt2": 0}
    v.update(SCALE_FACTORS)
    snap = view.snapshot
    if snap is None:
        return v
    live = view.live
    faults = 0
    unclassified = False
    for m in live:
        if m.bms is not None:
            faults |= m.bms.faults
            unclassified = unclassified or bool(m.bms.unclassified)
    severities = {a.severity for a in snap.alarms}
    v["EvtVnd1"] = faults
    v["EvtVnd2"] = (int(unclassified)
                    | (Severity.CRITICAL in severities) << 1 | (Severity.MAJOR in severities) << 2
                    | (Severity.MINOR in severities) << 3 | (Severity.WARNING in severities) << 4)
    v.update(make_limit_points(view))
    if not view.ok:
        return v
    b = snap.bank
    power = view.power_uw()
    v.update(
        AHRtg=_capacity_ah(live),
        SoC=b.soc_permille,
        SoH=b.soh_min_permille,
        V=None if b.voltage_mean_mv is None else div_round(b.voltage_mean_mv, 10),
        CellVMax=b.cell_max_mv,
        CellVMaxMod=b.cell_max_at.position if b.cell_max_at else None,
        CellVMin=b.cell_min_mv,
        CellVMinMod=b.cell_min_at.position if b.cell_min_at else None,
        CellVAvg=_cell_avg_mv(live),
        A=None if b.current_ma is None else -div_round(b.current_ma, 100),
        W=None if power is None else -div_round(power, 10_000_000),
    )
    if b.current_ma is not None:
        v["ChaSt"] = (CHA_ST_CHARGING if b.current_ma > 0 else
                      CHA_ST_DISCHARGING if b.current_ma < 0 else CHA_ST_HOLDING)
    return v


def make_model_1_values(device: DeviceInfo, map_version: int) -> dict[str, object]:
    return {"ID": 1, "L": MODEL_1.length - 2, "Mn": device.manufacturer, "Md": device.model,
            "Opt": f"map {map_version}", "Vr": device.version, "SN": device.serial,
            "DA": device.device_address}


def make_sunspec_block(view: BankView, device: DeviceInfo, map_version: int
                       ) -> tuple[int, ...]:
    """Registers 40000.. : "SunS", model 1, model 802, end model."""
    return (SUNS + MODEL_1.pack(make_model_1_values(device, map_version))
            + MODEL_802.pack(make_model_802_values(view)) + END_MODEL)


# ------------------------------------------------------------- contract and docs -------


def contract() -> dict[str, object]:
    def points(layout: Layout, start: int) -> list[dict[str, object]]:
        out = []
        for f in layout.fields:
            d: dict[str, object] = {"address": 40000 + start + layout.offsets[f.name],
                                    "name": f.name, "type": f.type, "registers": f.length}
            if f.name in SF_OF:
                d["sf"] = SF_OF[f.name]
            if f.name in SCALE_FACTORS:
                d["value"] = SCALE_FACTORS[f.name]
            out.append(d)
        return out

    return {"base": 40000, "length": LENGTH, "marker": "SunS",
            "models": [{"id": 1, "start": 40000 + MODEL_1_START,
                        "points": points(MODEL_1, MODEL_1_START)},
                       {"id": 802, "start": 40000 + MODEL_802_START,
                        "points": points(MODEL_802, MODEL_802_START)},
                       {"id": 0xFFFF, "start": 40000 + END_START, "points": []}]}


def render_markdown() -> list[str]:
    def table(layout: Layout, start: int) -> list[str]:
        rows = ["| address | point | type | scale factor | value served |",
                "|---:|---|---|---|---|"]
        for f in layout.fields:
            a = 40000 + start + layout.offsets[f.name]
            addr = f"{a}" if f.length == 1 else f"{a}-{a + f.length - 1}"
            sf = SF_OF.get(f.name, "")
            if sf:
                sf = f"`{sf}`" + (f" = {SCALE_FACTORS[sf]}" if sf in SCALE_FACTORS else "")
            rows.append(f"| {addr} | `{f.name}` | {f.type} | {sf} | {f.doc} |")
        return rows

    evt1 = ["| Evt1 bit | SunSpec name | set when |", "|---:|---|---|",
            f"| {EVT1_COMMUNICATION_ERROR} | COMMUNICATION_ERROR | a configured module is not "
            "live, or the bank data is not fresh |"]
    for alarm_bit, warning_bit, stem, cond in EVT1_CONDITIONS:
        names = ", ".join(f"`{c.name}`" for c in Condition if c & cond)
        evt1.append(f"| {alarm_bit} | {stem}_ALARM | a live module's BMS protection: {names}"
                    + (", or any BMS fault" if alarm_bit == EVT1_OTHER_ALARM else "") + " |")
        evt1.append(f"| {warning_bit} | {stem}_WARNING | a live module's BMS warning: {names} |")
    return [
        "## SunSpec view",
        "",
        f"The bank unit also answers at 40000-{40000 + LENGTH - 1} the way SunSpec-aware",
        "software expects: the marker \"SunS\" (0x5375 0x6E53) at 40000, the common model 1,",
        "the battery base model 802, and the end model (0xFFFF, length 0). Points the bank",
        "cannot fill truthfully read as SunSpec \"not implemented\". The bank-level rules",
        "apply: when `bank_status` is not 1, every measurement reads as not implemented.",
        "",
        "**Sign: model 802's `A` and `W` are positive while the bank discharges** (SunSpec's",
        "convention for DER: power delivered is positive), the opposite of this gateway's own",
        "registers. `ChaSt` says which way the current flows.",
        "",
        "| address | content |",
        "|---:|---|",
        "| 40000-40001 | \"SunS\" |",
        f"| {40000 + MODEL_1_START}-{40000 + MODEL_802_START - 1} | model 1 (common), "
        f"length {MODEL_1.length - 2} |",
        f"| {40000 + MODEL_802_START}-{40000 + END_START - 1} | model 802 (battery base), "
        f"length {MODEL_802.length - 2} |",
        f"| {40000 + END_START}-{40000 + LENGTH - 1} | end model: 0xFFFF, 0 |",
        "",
        "### Model 1 (common)",
        "",
        *table(MODEL_1, MODEL_1_START),
        "",
        "### Model 802 (battery base)",
        "",
        *table(MODEL_802, MODEL_802_START),
        "",
        *evt1,
        "",
    ]

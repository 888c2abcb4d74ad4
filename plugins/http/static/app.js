// The status page: polls the JSON API (api/v1/bank, api/v1/events) and redraws.
// No remote assets, no libraries: works on an isolated site network.
"use strict";

const STATE_TEXT = {
  off: "off", steady: "steady", slow_flash: "slow flash", fast_flash: "fast flash",
  flash_1hz: "flashing 1 Hz", unknown: "unknown",
};
const MODE_TEXT = {
  idle: "idle", charging: "charging", discharging: "discharging", fully_charged: "fully charged",
};
const SEVERITY_RANK = { critical: 5, major: 4, minor: 3, warning: 2, indeterminate: 1 };
let refreshMs = 2000;
let lastEvents = 0;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const num = (v, scale, digits) => (v === null || v === undefined) ? "–" : (v / scale).toFixed(digits);
const volts = (mv, d = 2) => num(mv, 1000, d);
const amps = (ma) => num(ma, 1000, 1);
const pct = (pm) => num(pm, 10, 1);
const degc = (dc) => num(dc, 10, 1);

function age(s) {
  if (s === null || s === undefined) return "never";
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function fig(k, v, id) {
  return el("div", { class: "fig", id }, el("div", { class: "k" }, k), el("div", { class: "v" }, v));
}

function renderBank(doc) {
  const box = document.getElementById("bank");
  const b = doc.bank;
  const worst = doc.alarms.reduce((w, a) => (SEVERITY_RANK[a.severity] || 0) > (SEVERITY_RANK[w] || 0) ? a.severity : w, "none");
  const figs = b === null ? [fig("status", "no data yet")] : [
    fig("state of charge", `${pct(b.soc_permille)} %`, "bank-soc"),
    fig("current (+ charging)", `${amps(b.current_ma)} A`, "bank-current"),
    fig("mean voltage", `${volts(b.voltage_mean_mv)} V`, "bank-voltage"),
    fig("modules live", `${b.modules_online} / ${b.modules_configured}`, "bank-online"),
    fig("cell min", b.cell_min_mv === null ? "–" : `${volts(b.cell_min_mv, 3)} V (#${b.cell_min_at.position} cell ${b.cell_min_at.index})`),
    fig("cell max", b.cell_max_mv === null ? "–" : `${volts(b.cell_max_mv, 3)} V (#${b.cell_max_at.position} cell ${b.cell_max_at.index})`),
    fig("temperature", b.temp_min_dc === null ? "–" : `${degc(b.temp_min_dc)} … ${degc(b.temp_max_dc)} °C`),
    fig("active alarms", doc.alarms.length ? `${doc.alarms.length} (${worst})` : "none", "bank-alarms"),
  ];
  box.replaceChildren(...figs);
}

function led(name, label, state) {
  const s = state === null || state === undefined ? "unknown" : state;
  return el("div", { class: "lg" },
    el("span", { class: "led", "data-led": name, "data-state": s, title: `${label}: ${STATE_TEXT[s]}` }), label);
}

function ledText(l) {
  if (l === null) return el("div", { class: "ledtext" }, "Lights unknown: no live data from this module.");
  const parts = [`RUN ${STATE_TEXT[l.run || "unknown"]}` + (l.mode ? ` (${MODE_TEXT[l.mode]})` : "")];
  if (l.alm === "steady") parts.push("ALM orange steady (protection)");
  else if (l.alm === "flash_1hz") parts.push("ALM yellow flashing 1 Hz (warning)");
  else parts.push("ALM off");
  const out = el("div", { class: "ledtext" }, parts.join(" · ") + " · ");
  if (l.err === "off") out.append("ERR off");
  else {
    out.append("ERR red steady");
    if (l.fault_codes.length) {
      out.append(" · after RESET flashes ");
      out.append(el("span", { class: "code", "data-fault-codes": l.fault_codes.join(" ") },
        l.fault_codes.map((c, i) => `${c}× (${l.fault_texts[i]})`).join(", then ")));
    }
  }
  if (l.buzzer_beeps) out.append(` · buzzer ${l.buzzer_beeps} beeps / 15 s`);
  return out;
}

function heat(m, t) {
  const known = t.cell_mv.filter((v) => v !== null);
  const lo = Math.min(...known), hi = Math.max(...known);
  const span = Math.max(hi - lo, 20);
  const grid = el("div", { class: "heat", "aria-label": "cell voltages" });
  t.cell_mv.forEach((mv, i) => {
    const n = i + 1;
    let cls = "cell";
    if (n === t.cell_min_cell) cls += " min";
    if (n === t.cell_max_cell) cls += " max";
    const c = el("div", { class: cls, "data-cell": n, title: `cell ${n}: ${mv === null ? "unknown" : mv + " mV"}` },
      mv === null ? "?" : String(mv));
    if (mv !== null) {
      const x = (mv - lo) / span; // 0 = lowest, 1 = highest: blue -> green -> red
      c.style.background = `hsl(${Math.round(220 - 220 * x)}, 70%, 72%)`;
    } else c.style.background = "#ccc";
    grid.append(c);
  });
  return grid;
}

function moduleCard(m) {
  const card = el("article", { class: "module" + (m.alarms.length ? " alarmed" : ""), id: `module-${m.position}`,
    "data-position": m.position, "data-status": m.status });
  card.append(el("div", { class: "mhead" },
    el("span", { class: "name" }, `#${m.position}`),
    el("span", {}, `DIP ${m.address} · ${m.bus}`),
    el("span", { class: "badge", "data-status": m.status }, m.status.replace("_", " ")),
  ));
  const l = m.leds;
  const soc = l && l.soc ? l.soc : [null, null, null, null];
  card.append(el("div", { class: "panel", "data-leds": l ? "known" : "unknown" },
    led("run", "RUN", l && l.run), led("alm", "ALM", l && l.alm), led("err", "ERR", l && l.err),
    led("soc1", "SOC1", soc[0]), led("soc2", "SOC2", soc[1]), led("soc3", "SOC3", soc[2]), led("soc4", "SOC4", soc[3])));
  card.append(ledText(l));
  const t = m.telemetry;
  if (t === null) {
    card.append(el("div", { class: "nodata" }, `No live values; last good data ${age(m.age_s)}.`));
    return card;
  }
  card.append(el("div", { class: "vals" },
    el("div", {}, el("span", {}, "SoC"), el("b", { class: "soc" }, `${pct(t.soc_permille)} %`)),
    el("div", {}, el("span", {}, "voltage"), el("b", { class: "voltage" }, `${volts(t.voltage_mv)} V`)),
    el("div", {}, el("span", {}, "current"), el("b", { class: "current" }, `${amps(t.current_ma)} A`)),
    el("div", {}, el("span", {}, "cell min (cell)"), el("b", {}, `${volts(t.cell_min_mv, 3)} V (${t.cell_min_cell ?? "–"})`)),
    el("div", {}, el("span", {}, "cell max (cell)"), el("b", {}, `${volts(t.cell_max_mv, 3)} V (${t.cell_max_cell ?? "–"})`)),
    el("div", {}, el("span", {}, "data"), el("b", {}, age(m.age_s))),
  ));
  if (t.temps.length) {
    card.append(el("div", { class: "temps" }, "°C: " + t.temps.map((s) => `${s.role || "T" + s.sensor} ${degc(s.temp_dc)}`).join(" · ")));
  }
  if (t.cell_mv.length) card.append(heat(m, t));
  return card;
}

function renderModules(doc) {
  document.getElementById("modules").replaceChildren(...doc.modules.map(moduleCard));
}

function renderAlarms(doc) {
  const rows = doc.alarms.map((a) => el("tr", { "data-seq": a.seq },
    el("td", {}, a.seq), el("td", { class: `sev-${a.severity}` }, a.severity),
    el("td", {}, a.position ? `#${a.position}` : "bank"), el("td", {}, a.text), el("td", {}, age(a.age_s))));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 5 }, "No active alarm.")));
  document.querySelector("#alarms tbody").replaceChildren(...rows);
}

function renderEvents(doc) {
  const rows = doc.events.map((e) => el("tr", {},
    el("td", {}, (e.time || "").replace("T", " ").replace("Z", "")), el("td", {}, e.event || ""),
    el("td", {}, e.module ? `#${e.module}` : ""), el("td", {}, e.text || e.kind || "")));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 4 },
    doc.available ? "No event yet." : "No event log: gateway.state_dir is not set.")));
  document.querySelector("#events tbody").replaceChildren(...rows);
}

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store", credentials: "same-origin" });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

async function refresh() {
  const conn = document.getElementById("conn");
  try {
    const doc = await getJson("api/v1/bank");
    refreshMs = Math.max(500, (doc.gateway.refresh_s || 2) * 1000);
    document.getElementById("title").textContent = `${doc.gateway.name}: battery bank`;
    document.getElementById("footer").textContent = `bms-gateway ${doc.gateway.version}`;
    renderBank(doc);
    renderModules(doc);
    renderAlarms(doc);
    const now = Date.now();
    if (now - lastEvents > 5 * refreshMs) {
      renderEvents(await getJson("api/v1/events"));
      lastEvents = now;
    }
    conn.dataset.state = "live";
    conn.textContent = doc.snapshot ? `live · updated ${age(doc.snapshot.age_s)}` : "live · waiting for data";
  } catch (err) {
    conn.dataset.state = "lost";
    conn.textContent = "connection lost";
  }
  setTimeout(refresh, refreshMs);
}

refresh();

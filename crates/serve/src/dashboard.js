"use strict";
// Everything the page shows comes from the JSON API of the same server; text is set with
// textContent only (user names and feature names are data an attacker may have written).
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const iso = ms => ms === null || ms === undefined ? "–" : new Date(ms).toISOString().replace(".000Z", "Z");
const period = p => p ? `${iso(p.start)} – ${iso(p.end)}` : "–";
const fmt = v => typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : "–";

function flags(row) {
  const td = el("td");
  if (row.is_alert) td.append(el("span", "alert", "badge alert"), " ");
  if (row.is_anomaly) td.append(el("span", "flagged", "badge flag"));
  return td;
}

function why(explanation) {
  const td = el("td"), grid = el("div", undefined, "why");
  const entries = explanation || [], top = Math.max(...entries.map(e => Math.abs(e.contribution)), 1e-12);
  for (const e of entries) {
    grid.append(el("span", e.feature, "feature"), el("span", `${fmt(e.value)} (typical ${fmt(e.typical)})`, "typ"));
    const bar = el("div", undefined, "bar");
    bar.style.width = `${Math.round(100 * Math.abs(e.contribution) / top)}%`;
    bar.title = `contribution ${fmt(e.contribution)}`;
    grid.append(bar);
  }
  td.append(grid);
  return td;
}

function userLink(name) {
  const a = el("a", name, "user");
  a.href = `#user=${encodeURIComponent(name)}`;
  return a;
}

async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json().catch(() => ({}))).error || ""}`);
  return r.json();
}

async function refresh() {
  try {
    const [{ runs }, { anomalies }] = await Promise.all([api("/api/runs"), api("/api/anomalies?limit=200")]);
    const alerts = runs.reduce((n, r) => n + (r.alerts || 0), 0);
    document.getElementById("summary").textContent =
      `${runs.length} outputs · ${runs.reduce((n, r) => n + (r.users || 0), 0)} users scored · ${alerts} alerts`;
    const tbody = document.getElementById("runs");
    tbody.replaceChildren(...runs.map(r => {
      const tr = el("tr");
      const f = r.lineage && r.lineage.features ? `${r.lineage.features.name}@${r.lineage.features.version}` : "–";
      const m = r.lineage && r.lineage.detector ? String(r.lineage.detector.model_sha256 || "").slice(0, 12) : "–";
      tr.append(el("td", r.id), el("td", r.kind), el("td", period(r.period)), el("td", fmt(r.events), "num"),
        el("td", fmt(r.users), "num"), el("td", fmt(r.anomalies), "num"), el("td", fmt(r.alerts), "num"), el("td", f), el("td", m));
      return tr;
    }));
    document.getElementById("anomalies").replaceChildren(...anomalies.map(a => {
      const tr = el("tr"); tr.dataset.user = a.user;
      const name = el("td"); name.append(userLink(a.user));
      tr.append(name, el("td", a.window || a.run), el("td", period(a.period)), el("td", fmt(a.anomaly_score), "num"), flags(a), why(a.explanation));
      return tr;
    }));
    const newest = runs[0];
    if (newest && newest.lineage) {
      const l = newest.lineage, d = l.detector || {};
      document.getElementById("serving").textContent =
        `serving: ${l.features.name}@${l.features.version} · detector ${d.kind} · model ${String(d.model_sha256 || "").slice(0, 12)}`;
    }
    if (newest) await histogram(newest.id);
    document.getElementById("error").textContent = "";
    document.body.dataset.loaded = "yes";
  } catch (e) {
    document.getElementById("error").textContent = String(e);
  }
}

async function histogram(output) {
  const h = await api(`/api/scores?output=${encodeURIComponent(output)}`);
  const svg = document.getElementById("histogram"), ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  document.getElementById("histogram-output").textContent = output;
  if (h.bins.length === 0) return;
  const lo = h.bins[0].lo, hi = h.bins[h.bins.length - 1].hi, top = Math.max(...h.bins.map(b => b.count), 1);
  const span = Math.max(hi, h.alert_threshold) - Math.min(lo, h.alert_threshold) || 1, x0 = Math.min(lo, h.alert_threshold);
  const X = v => 20 + (v - x0) / span * 600;
  for (const b of h.bins) {
    const r = document.createElementNS(ns, "rect"), height = 100 * b.count / top;
    r.setAttribute("class", "bin");
    r.setAttribute("x", X(b.lo)); r.setAttribute("width", Math.max(X(b.hi) - X(b.lo) - 1, 1));
    r.setAttribute("y", 110 - height); r.setAttribute("height", height);
    const t = document.createElementNS(ns, "title"); t.textContent = `${fmt(b.lo)}–${fmt(b.hi)}: ${b.count}`; r.append(t);
    svg.append(r);
  }
  const line = document.createElementNS(ns, "line");
  line.setAttribute("class", "threshold");
  line.setAttribute("x1", X(h.alert_threshold)); line.setAttribute("x2", X(h.alert_threshold));
  line.setAttribute("y1", 5); line.setAttribute("y2", 112);
  svg.append(line);
  for (const [v, anchor] of [[x0, "start"], [x0 + span, "end"]]) {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", X(v)); t.setAttribute("y", 128); t.setAttribute("text-anchor", anchor); t.textContent = fmt(v);
    svg.append(t);
  }
  document.getElementById("histogram-legend").textContent =
    `${h.rows} users; anomaly score (−score_samples); dashed: alert threshold ${fmt(h.alert_threshold)}`;
}

function chart(series) {
  const svg = document.getElementById("user-chart"), ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const pts = series.filter(s => s.period && typeof s.anomaly_score === "number");
  if (pts.length === 0) return;
  const xs = pts.map(s => s.period.start), ys = pts.map(s => s.anomaly_score);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys, 0.3), Math.max(...ys, 0.8)];
  const X = x => 20 + (x1 === x0 ? 300 : (x - x0) / (x1 - x0) * 600), Y = y => 110 - (y - y0) / (y1 - y0) * 100;
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("class", "line");
  line.setAttribute("points", pts.map(s => `${X(s.period.start)},${Y(s.anomaly_score)}`).join(" "));
  svg.append(line);
  for (const s of pts) {
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("class", s.is_alert ? "dot alert" : "dot");
    c.setAttribute("cx", X(s.period.start)); c.setAttribute("cy", Y(s.anomaly_score)); c.setAttribute("r", 4);
    svg.append(c);
  }
}

async function showUser() {
  const m = location.hash.match(/^#user=(.+)$/);
  const view = document.getElementById("user-view");
  if (!m) { view.hidden = true; return; }
  const name = decodeURIComponent(m[1]);
  try {
    const { series } = await api(`/api/users/${encodeURIComponent(name)}`);
    document.getElementById("user-name").textContent = name;
    document.getElementById("user-rows").replaceChildren(...series.map(s => {
      const tr = el("tr");
      tr.append(el("td", s.window || s.run), el("td", period(s.period)), el("td", fmt(s.anomaly_score), "num"), flags(s), why(s.explanation));
      return tr;
    }));
    chart(series);
    view.hidden = false;
    view.dataset.loaded = "yes";
  } catch (e) {
    document.getElementById("error").textContent = String(e);
  }
}

// The log store: shown when the server has one; `#search=LINE` in the URL searches at once.
async function logs() {
  const r = await fetch("/api/logs");
  if (!r.ok) return;
  const stats = await r.json();
  document.getElementById("logs").hidden = false;
  document.getElementById("logs-stats").textContent = `${stats.points} points · ${stats.policy}`;
  const m = location.hash.match(/^#search=(.+)$/);
  if (m) { document.getElementById("logs-text").value = decodeURIComponent(m[1]); await search(); }
}

async function search() {
  const text = document.getElementById("logs-text").value;
  if (!text) return;
  try {
    const { hits } = await api("/api/logs/search", { text, k: 10 });
    document.getElementById("logs-hits").replaceChildren(...hits.map(h => {
      const p = h.payload || {}, tr = el("tr");
      if (p.label === 1) tr.className = "label-1";
      tr.append(el("td", h.similarity.toFixed(4), "num"), el("td", p.original_text || p.text), el("td", p.log_level || "–"),
        el("td", p.node_type || "–"), el("td", p.label === null || p.label === undefined ? "–" : String(p.label)),
        el("td", p.policy || "–"), el("td", p.timestamp || "–"));
      return tr;
    }));
    document.getElementById("logs").dataset.searched = "yes";
  } catch (e) {
    document.getElementById("error").textContent = String(e);
  }
}

document.getElementById("logs-form").addEventListener("submit", e => { e.preventDefault(); search(); });
document.getElementById("user-close").addEventListener("click", e => { e.preventDefault(); location.hash = ""; });
window.addEventListener("hashchange", showUser);
refresh(); showUser(); logs();
setInterval(refresh, 5000);

// replicaof dashboard: polls /v1/status every second, renders the sources
// and keeps five minutes of lag samples in memory for the chart. No
// external resources; DOM built with textContent only (no HTML injection).
"use strict";

(function () {
  const POLL_MS = 1000;
  const WINDOW_MS = 5 * 60 * 1000;
  const MAX_POINTS = 2 * WINDOW_MS / POLL_MS; // per source, in case polls bunch up
  const TOKEN_KEY = "replicaof-admin-token";
  const COLORS = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#0a7ea4", "#57606a"];

  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || "",
    history: new Map(), // "uid:name" -> {name, color, points: [{t, lag}]}
    colorNext: 0,
    timer: 0,
    skew: 0, // browser clock minus server clock (from the Date header), ms
  };

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function api(method, path) {
    const headers = { "Accept": "application/json" };
    if (state.token) headers["Authorization"] = "Bearer " + state.token;
    const r = await fetch(path, { method, headers, cache: "no-store" });
    if (r.status === 401) {
      askToken(state.token ? "The token was refused; enter it again:" : "This admin API needs a token:");
      const e = new Error("an admin token is required");
      e.auth = true;
      throw e;
    }
    const date = Date.parse(r.headers.get("Date") || "");
    if (!isNaN(date)) {
      // The header has 1 s resolution: ignore skews below that.
      const skew = Date.now() - date;
      state.skew = Math.abs(skew) > 1500 ? skew : 0;
    }
    let body = {};
    try { body = await r.json(); } catch (_) { /* empty or not JSON */ }
    if (!r.ok) throw new Error(body.error || (r.status + " " + r.statusText));
    return body;
  }

  function askToken(msg) {
    const f = $("token-form");
    f.querySelector("label").textContent = msg;
    f.hidden = false;
  }

  function banner(msg, info) {
    const b = $("banner");
    b.hidden = !msg;
    b.textContent = msg || "";
    b.className = info ? "banner info" : "banner";
  }

  function fmtBytes(n) {
    if (n < 0) return "?";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }

  function fmtLag(ms) {
    if (ms === null || ms === undefined || ms < 0) return "—";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
  }

  function fmtAgo(iso) {
    if (!iso) return "never";
    const t = Date.parse(iso);
    if (isNaN(t)) return iso;
    const s = Math.max(0, Math.round((Date.now() - state.skew - t) / 1000));
    if (s < 2) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return new Date(t).toLocaleString();
  }

  function badge(syncState) {
    const known = ["synced", "syncing", "stopped"].includes(syncState);
    return el("span", "badge " + (known ? syncState : "unknown"), syncState || "unknown");
  }

  function renderAggregate(st) {
    const b = $("aggregate-badge");
    b.replaceWith(Object.assign(badge(st.status), { id: "aggregate-badge" }));
    const counts = {};
    for (const s of st.sources || []) counts[s.sync_state] = (counts[s.sync_state] || 0) + 1;
    const n = (st.sources || []).length;
    const parts = Object.keys(counts).sort().map((k) => counts[k] + " " + k);
    $("aggregate-summary").textContent = n + (n === 1 ? " source" : " sources") + (parts.length ? ": " + parts.join(", ") : "");
    document.title = "replicaof · " + (st.status || "?");
  }

  function progressCell(s) {
    const td = el("td", "progress");
    if (s.sync_state !== "syncing") {
      td.textContent = s.sync_state === "synced" ? "100%" : "—";
      return td;
    }
    if (s.phase === "connecting" || s.phase === "waiting-for-snapshot") {
      // Nothing flows yet: say what the sync waits for, not a 0% bar.
      td.appendChild(el("div", "phase", s.phase === "connecting" ? "connecting…" : "waiting for snapshot"));
      td.appendChild(el("div", "detail", s.phase === "connecting" ? "handshake with the source" : "the source is writing its snapshot"));
      return td;
    }
    if (s.rdb_size < 0) {
      // A diskless transfer has no size: show what arrived.
      td.appendChild(el("div", "phase", s.phase || "loading"));
      let detail = fmtBytes(s.rdb_transferred) + " received";
      if (s.keys_loaded > 0) detail += " · " + s.keys_loaded.toLocaleString() + " keys";
      td.appendChild(el("div", "detail", detail));
      return td;
    }
    const pct = Math.max(0, Math.min(100, s.progress || 0));
    const bar = el("div", "bar");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    const fill = el("div");
    fill.style.width = pct + "%";
    bar.appendChild(fill);
    td.appendChild(bar);
    let detail = pct + "%";
    if (s.rdb_transferred > 0 || s.rdb_size > 0) detail += " · " + fmtBytes(s.rdb_transferred) + " / " + fmtBytes(s.rdb_size);
    if (s.keys_loaded > 0) detail += " · " + s.keys_loaded.toLocaleString() + " keys";
    if (s.cross_shard_emulated > 0) detail += " · " + s.cross_shard_emulated.toLocaleString() + " cross-shard";
    td.appendChild(el("div", "detail", detail));
    return td;
  }

  function renderSources(st) {
    const body = $("source-rows");
    const rows = [];
    for (const s of st.sources || []) {
      const tr = el("tr");
      tr.dataset.source = s.name;
      tr.dataset.status = s.sync_state;
      tr.appendChild(el("td", "name", s.name));
      const uriTd = el("td", "uri", s.uri);
      if (s.kind && s.kind !== "redis") {
        uriTd.appendChild(el("span", "when", s.kind + " · " + s.links + (s.links === 1 ? " link" : " links")));
      }
      tr.appendChild(uriTd);
      const stTd = el("td", "status");
      stTd.appendChild(badge(s.sync_state));
      stTd.title = s.status;
      tr.appendChild(stTd);
      tr.appendChild(progressCell(s));
      tr.appendChild(el("td", "lag", s.sync_state === "synced" ? fmtLag(s.lag_ms) : "—"));
      const upd = el("td", "updated", fmtAgo(s.last_update));
      if (s.last_update) upd.title = s.last_update;
      tr.appendChild(upd);
      const err = el("td", "error", s.last_error || "");
      if (s.last_error && s.last_error_time) err.appendChild(el("span", "when", fmtAgo(s.last_error_time)));
      tr.appendChild(err);
      rows.push(tr);
    }
    if (!rows.length) {
      const tr = el("tr", "empty");
      const td = el("td", "", "no sources configured");
      td.colSpan = 7;
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  // renderNodes shows the destination's kind and nodes as the proxy sees
  // them (destination_nodes: primaries with their slots, replicas with
  // proxy.read_from, and a cluster's replicas).
  function renderNodes(st) {
    const nodes = st.destination_nodes || [];
    $("nodes-section").hidden = nodes.length === 0;
    $("dest-kind").textContent = st.destination_kind === "cluster" ? "(Redis Cluster)"
      : st.destination_kind === "shards" ? "(standalone shards)" : "";
    const rows = [];
    for (const n of nodes) {
      const tr = el("tr");
      tr.dataset.node = n.addr;
      tr.dataset.role = n.role;
      tr.appendChild(el("td", "shard", String(n.shard)));
      tr.appendChild(el("td", "uri", n.addr));
      tr.appendChild(el("td", "role", n.role));
      const stTd = el("td", "status");
      if (n.unread) {
        stTd.appendChild(el("span", "badge unknown", "not read"));
      } else {
        stTd.appendChild(el("span", "badge " + (n.up ? "synced" : "stopped"),
          n.up ? (n.role === "replica" ? "in rotation" : "up") : (n.role === "replica" ? "out of rotation" : "down")));
      }
      tr.appendChild(stTd);
      tr.appendChild(el("td", "slots", n.slots || "—"));
      tr.appendChild(el("td", "lag", n.role === "replica" && !n.unread ? fmtLag(Math.round(n.lag_seconds * 1000)) : "—"));
      tr.appendChild(el("td", "reads", (n.reads || 0).toLocaleString()));
      tr.appendChild(el("td", "detail", n.role === "replica" && !n.unread
        ? "stale " + n.stale + " · link down " + n.link_down + " · errors " + n.errors : ""));
      rows.push(tr);
    }
    $("node-rows").replaceChildren(...rows);
  }

  function record(st, now) {
    const seen = new Set();
    for (const s of st.sources || []) {
      const key = s.uid + ":" + s.name;
      seen.add(key);
      let h = state.history.get(key);
      if (!h) {
        h = { name: s.name, color: COLORS[state.colorNext++ % COLORS.length], points: [] };
        state.history.set(key, h);
      }
      h.points.push({ t: now, lag: s.sync_state === "synced" && s.lag_ms >= 0 ? s.lag_ms : null });
    }
    for (const [key, h] of state.history) {
      while (h.points.length && (h.points[0].t < now - WINDOW_MS || h.points.length > MAX_POINTS)) h.points.shift();
      if (!seen.has(key) && !h.points.some((p) => p.lag !== null)) state.history.delete(key);
    }
  }

  function niceMax(v) {
    if (v <= 10) return 10;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  const SVGNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function drawChart(now) {
    const chart = $("lag-chart");
    const W = Math.max(300, Math.round(chart.clientWidth || 900)), H = 220;
    const L = 56, R = 10, T = 10, B = 24;
    chart.setAttribute("viewBox", "0 0 " + W + " " + H);
    let max = 0;
    for (const h of state.history.values()) for (const p of h.points) if (p.lag !== null) max = Math.max(max, p.lag);
    const ymax = niceMax(max);
    const x = (t) => L + (W - L - R) * (1 - (now - t) / WINDOW_MS);
    const y = (v) => T + (H - T - B) * (1 - v / ymax);
    const nodes = [];
    for (let i = 0; i <= 5; i++) {
      const v = ymax * i / 5;
      nodes.push(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      nodes.push(svg("text", { class: "axis", x: L - 6, y: y(v) + 4, "text-anchor": "end" }, fmtLag(Math.round(v))));
    }
    for (let m = 0; m <= 5; m++) {
      const t = now - m * 60000;
      nodes.push(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: T, y2: H - B }));
      nodes.push(svg("text", { class: "axis", x: x(t), y: H - 6, "text-anchor": m === 0 ? "end" : "middle" }, m === 0 ? "now" : "-" + m + " min"));
    }
    const legend = [];
    for (const h of state.history.values()) {
      // One polyline per run of samples with a lag (gaps while not synced).
      let run = [];
      const flush = () => {
        if (run.length === 1) run.push(run[0]);
        if (run.length) nodes.push(svg("polyline", { stroke: h.color, points: run.join(" ") }));
        run = [];
      };
      for (const p of h.points) {
        if (p.lag === null) { flush(); continue; }
        run.push(x(p.t).toFixed(1) + "," + y(Math.min(p.lag, ymax)).toFixed(1));
      }
      flush();
      const li = el("li");
      const sw = el("span", "swatch");
      sw.style.background = h.color;
      li.appendChild(sw);
      const last = h.points.length ? h.points[h.points.length - 1].lag : null;
      li.appendChild(el("span", "", h.name + " · " + fmtLag(last)));
      legend.push(li);
    }
    chart.replaceChildren(...nodes);
    $("lag-legend").replaceChildren(...legend);
  }

  async function poll() {
    clearTimeout(state.timer);
    try {
      const st = await api("GET", "/v1/status");
      const now = Date.now();
      renderAggregate(st);
      renderSources(st);
      renderNodes(st);
      record(st, now);
      drawChart(now);
      $("updated").textContent = "updated " + new Date(now).toLocaleTimeString();
      if (!$("banner").classList.contains("info")) banner("");
    } catch (e) {
      if (!e.auth) banner("Cannot read /v1/status: " + e.message);
    } finally {
      state.timer = setTimeout(poll, POLL_MS);
    }
  }

  async function control(action, question) {
    if (!window.confirm(question)) return;
    const buttons = [$("stop"), $("restart")];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api("POST", "/v1/sync/" + action);
      banner(action === "stop" ? "Sync stopped." : "Sync restarted: the destination was flushed and every source is syncing again.", true);
      setTimeout(() => { if ($("banner").classList.contains("info")) banner(""); }, 5000);
    } catch (e) {
      banner("Could not " + action + " sync: " + e.message);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
      poll();
    }
  }

  $("stop").addEventListener("click", () => control("stop",
    "Stop sync for every source? The destination keeps its data but stops following the sources."));
  $("restart").addEventListener("click", () => control("restart",
    "Restart sync? This FLUSHES every destination shard and fully syncs every source again."));
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    $("token").value = "";
    $("token-form").hidden = true;
    $("forget-token").hidden = false;
    poll();
  });
  $("forget-token").hidden = !state.token;
  $("forget-token").addEventListener("click", (ev) => {
    ev.preventDefault();
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    $("forget-token").hidden = true;
    poll();
  });
  poll();
})();

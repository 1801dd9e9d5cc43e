// Relay dashboard: delivery stats, queue depth and the delivery log, read from Relay's JSON API.
// Plain ES2020, no dependencies. All API strings reach the DOM through textContent / createElement only.
"use strict";

const TOKEN_KEY = "relay.token";
const REFRESH_MS = 30000;
const HOUR_MS = 3600000;
const DAY_MS = 24 * HOUR_MS;
const RANGES = {
  "24h": { label: "last 24 hours", bucket: "hour", buckets: 24 },
  "7d": { label: "last 7 days", bucket: "day", buckets: 7 },
  "30d": { label: "last 30 days", bucket: "day", buckets: 30 },
};
const TOTAL_KEYS = ["accepted", "delivered", "deferred", "bounced", "failed", "suppressed", "complained"];
const SERIES_KEYS = ["delivered", "deferred", "bounced", "failed", "suppressed", "complained"];
const DIRECTION_PREFIX = { client: "C: ", server: "S: ", info: "* " };

const state = {
  token: null,
  admin: false,
  stats: null,        // last rendered stats, re-drawn on resize
  statsSeq: 0,        // request counters: a response is dropped when a newer request started
  logSeq: 0,
  detailSeq: 0,
  cursor: null,
  timer: null,
};

const byId = (id) => document.getElementById(id);

// ---------- formatting ----------

function formatPercent(rate) {
  return rate == null ? "—" : (rate * 100).toFixed(1) + "%";
}

function formatCount(n) {
  return n == null ? "—" : String(n);
}

// 850 ms, 2.3 s, 4.1 min, 2.0 h
function formatDuration(ms) {
  if (ms == null || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return Math.round(ms) + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  if (ms < HOUR_MS) return (ms / 60000).toFixed(1) + " min";
  return (ms / HOUR_MS).toFixed(1) + " h";
}

// "2026-11-22 14:03:05" (UTC); withMs adds ".123".
function formatTime(iso, withMs = false) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toISOString().slice(0, withMs ? 23 : 19).replace("T", " ");
}

function formatReply(reply) {
  if (!reply) return "";
  return [reply.code, reply.enhanced, reply.text].filter((part) => part != null && part !== "").join(" ");
}

function bucketLabel(iso, bucket) {
  const date = new Date(iso);
  const day = date.toLocaleDateString("en-US", { timeZone: "UTC", month: "short", day: "numeric" });
  if (bucket !== "hour") return day;
  const hour = String(date.getUTCHours()).padStart(2, "0") + ":00";
  return date.getUTCHours() === 0 ? day : hour;
}

// ---------- DOM helpers ----------

// el("td", {class: "num", "data-testid": "x"}, "text", childNode…) — children are text or nodes.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  for (const child of children.flat()) {
    if (child != null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svgEl(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(node, attrs);
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
}

function badge(status) {
  const text = status || "unknown";
  return el("span", { class: "badge badge-" + text.replace(/[^a-z_]/g, "") }, text);
}

function showMessage(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

// Fills a tbody from rows; cells(row) returns the cell contents, numeric columns listed in numCols.
function fillTable(tbody, rows, cells, options) {
  const { testid, numCols = [], empty = "No data", colspan } = options;
  tbody.replaceChildren();
  if (!rows || rows.length === 0) {
    tbody.append(el("tr", { class: "empty" }, el("td", { colspan }, empty)));
    return;
  }
  for (const row of rows) {
    const tr = el("tr", { "data-testid": testid });
    cells(row).forEach((content, i) => tr.append(el("td", { class: numCols.includes(i) ? "num" : null }, content)));
    tbody.append(tr);
  }
}

// ---------- API ----------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path) {
  const token = state.token;
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: "Bearer " + token, Accept: "application/json" } });
  } catch (err) {
    throw new ApiError(0, "network", "Network error: " + err.message);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  const error = (body && body.error) || {};
  if (response.status === 401) {
    if (state.token === token) signOut("The token was rejected" + (error.message ? ": " + error.message : ".") + " Sign in again.");
    throw new ApiError(401, "unauthorized", "Unauthorized");
  }
  if (!response.ok) {
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText || "Request failed");
  }
  return body;
}

function describeError(err) {
  return err.status ? `${err.message} (HTTP ${err.status}${err.code ? ", " + err.code : ""})` : err.message;
}

// ---------- sign in / out ----------

function showLogin(message) {
  byId("dashboard").hidden = true;
  byId("login").hidden = false;
  showMessage(byId("login-message"), message);
  document.body.dataset.state = "signed-out";
  byId("token-input").value = "";
  byId("token-input").focus();
}

function signIn(token) {
  state.token = token;
  state.admin = !token.startsWith("rly_");
  sessionStorage.setItem(TOKEN_KEY, token);
  byId("login").hidden = true;
  byId("dashboard").hidden = false;
  byId("mode-label").textContent = state.admin ? "Operator" : "API key";
  byId("messages-admin-note").hidden = !state.admin;
  byId("messages-tools").hidden = state.admin;
  clearDashboard();
  loadStats();
  if (!state.admin) loadMessages(false);
  loadWebhooks();
  clearInterval(state.timer);
  state.timer = setInterval(() => { if (!document.hidden) { loadStats(); loadWebhooks(); } }, REFRESH_MS);
}

function signOut(message) {
  clearInterval(state.timer);
  state.timer = null;
  state.token = null;
  state.stats = null;
  state.statsSeq++;
  state.logSeq++;
  state.detailSeq++;
  sessionStorage.removeItem(TOKEN_KEY);
  delete document.body.dataset.statsQuery;
  clearDashboard();
  showLogin(message);
}

// Resets every card so nothing from a previous token stays visible.
function clearDashboard() {
  document.querySelectorAll("[data-testid]").forEach((node) => {
    if (node.classList.contains("value")) node.textContent = "—";
  });
  ["bounce-split", "timing-count", "range-label", "status-line"].forEach((id) => { byId(id).textContent = ""; });
  ["chart-box", "chart-legend", "queue-list", "errors-body", "providers-body", "domains-body", "messages-body", "webhooks-body"]
    .forEach((id) => byId(id).replaceChildren());
  showMessage(byId("stats-error"), "");
  showMessage(byId("messages-error"), "");
  renderReputation(null);
  byId("more-button").hidden = true;
  byId("search-recipient").value = "";
  byId("search-status").value = "";
  closeDetail();
}

// ---------- stats ----------

// since is aligned to the bucket start so the chart has exactly `buckets` bars; until is now.
function rangeWindow(key, now = new Date()) {
  const range = RANGES[key] || RANGES["7d"];
  const step = range.bucket === "hour" ? HOUR_MS : DAY_MS;
  const currentStart = Math.floor(now.getTime() / step) * step;
  const since = new Date(currentStart - (range.buckets - 1) * step);
  return { since: since.toISOString(), until: now.toISOString(), bucket: range.bucket };
}

async function loadStats() {
  if (!state.token) return;
  const seq = ++state.statsSeq;
  const rangeKey = byId("range-select").value;
  const query = new URLSearchParams(rangeWindow(rangeKey)).toString();
  document.body.dataset.state = "loading";
  byId("status-line").textContent = "Loading…";
  try {
    const stats = await api(`${state.admin ? "/admin" : "/v1"}/stats?${query}`);
    if (seq !== state.statsSeq) return;
    renderStats(stats);
    showMessage(byId("stats-error"), "");
    byId("range-label").textContent = "· " + RANGES[rangeKey].label;
    byId("status-line").textContent = "Updated " + formatTime(new Date().toISOString()) + " UTC";
    document.body.dataset.statsQuery = query;
    document.body.dataset.state = "ready";
  } catch (err) {
    if (seq !== state.statsSeq || err.status === 401) return;
    showMessage(byId("stats-error"), "Could not load stats: " + describeError(err));
    byId("status-line").textContent = "";
    document.body.dataset.state = "error";
  }
}

function renderStats(stats) {
  state.stats = stats;
  renderReputation(stats.reputation || null);
  renderFigures(stats);
  renderChart(stats.series || [], stats.bucket);
  renderQueue(stats.queue || {});
  fillTable(byId("errors-body"), stats.top_errors, (e) => [formatCount(e.code), e.enhanced || "—", e.sample || "", formatCount(e.count)],
    { testid: "error-row", numCols: [0, 3], empty: "No errors in this range", colspan: 4 });
  fillTable(byId("providers-body"), stats.providers, (p) => [p.provider, ...breakdownCells(p)],
    { testid: "provider-row", numCols: [1, 2, 3, 4, 5, 6], colspan: 7 });
  fillTable(byId("domains-body"), stats.domains, (d) => [d.domain, ...breakdownCells(d), d.provider || "—"],
    { testid: "domain-row", numCols: [1, 2, 3, 4, 5, 6], colspan: 8 });
}

// The reputation guard: a banner when the tenant is paused (sending refused, mail held) or close to it.
function renderReputation(reputation) {
  const banner = byId("reputation-banner");
  if (!reputation || reputation.state === "ok") {
    banner.hidden = true;
    banner.textContent = "";
    banner.dataset.state = "ok";
    return;
  }
  const which = reputation.reason === "complaint_rate" ? "complaint rate" : "bounce rate";
  const rate = reputation.reason === "complaint_rate" ? reputation.complaint_rate : reputation.bounce_rate;
  const limit = reputation.reason === "complaint_rate" ? reputation.complaint_rate_threshold : reputation.bounce_rate_threshold;
  const figures = `${which} ${formatPercent(rate)} (limit ${formatPercent(limit)}) over the last ${reputation.window_hours} h`;
  banner.textContent = reputation.state === "paused"
    ? `Sending is paused since ${formatTime(reputation.paused_at)} UTC: ${figures}. New messages are refused and queued mail is held until an operator resumes the account.`
    : `Warning: ${figures}. At the limit, sending is paused.`;
  banner.dataset.state = reputation.state;
  banner.hidden = false;
}

// The tenant's webhook endpoints, so a disabled one (410 Gone, a failure streak, or paused by hand) is seen.
async function loadWebhooks() {
  const card = byId("webhooks");
  if (!state.token || state.admin) {
    card.hidden = true;
    return;
  }
  try {
    const page = await api("/v1/webhooks?limit=100");
    card.hidden = false;
    fillTable(byId("webhooks-body"), page.data, (w) => [
      w.url,
      w.events && w.events.length ? w.events.join(", ") : "all",
      el("span", { class: "badge " + (w.enabled ? "badge-delivered" : "badge-bounced"), "data-testid": "webhook-status" },
        w.enabled ? "enabled" : "disabled: " + (w.disabled_reason || "manual")),
      formatTime(w.created_at),
    ], { testid: "webhook-row", empty: "No webhook endpoints (POST /v1/webhooks)", colspan: 4 });
  } catch (err) {
    if (err.status !== 401) card.hidden = true;
  }
}

function breakdownCells(row) {
  return [row.delivered, row.bounced, row.deferred, row.failed].map(formatCount)
    .concat([formatPercent(row.delivery_rate), formatPercent(row.bounce_rate)]);
}

function setFigure(testid, text) {
  document.querySelector(`[data-testid="${testid}"]`).textContent = text;
}

function renderFigures(stats) {
  const totals = stats.totals || {};
  const timing = stats.delivery_time_ms || {};
  setFigure("delivery-rate", formatPercent(stats.delivery_rate));
  setFigure("bounce-rate", formatPercent(stats.bounce_rate));
  for (const key of TOTAL_KEYS) setFigure("total-" + key, formatCount(totals[key]));
  for (const key of ["p50", "p95", "p99"]) setFigure(key, formatDuration(timing[key]));
  byId("bounce-split").textContent = totals.bounced_hard == null ? "" : `hard ${totals.bounced_hard} · soft ${totals.bounced_soft}`;
  byId("timing-count").textContent = timing.count == null ? "" : `${timing.count} timed`;
}

// Queue: every key of the object, ages formatted as durations.
function renderQueue(queue) {
  const list = byId("queue-list");
  list.replaceChildren();
  for (const [key, value] of Object.entries(queue)) {
    const text = key.endsWith("_seconds") ? formatDuration(value == null ? null : value * 1000)
      : (typeof value === "number" ? String(value) : (value == null ? "—" : String(value)));
    const label = key.replace(/_seconds$/, "").replace(/_/g, " ");
    list.append(el("div", { class: "queue-item" }, el("dt", {}, label), el("dd", { "data-testid": "queue-" + key }, text)));
  }
  if (list.children.length === 0) list.append(el("p", { class: "muted" }, "No queue data"));
}

// ---------- chart ----------

// Smallest "nice" axis maximum (1, 2, 2.5, 3, 4, 5, 6, 8 × 10^n, at least 1) at or above value.
function niceMax(value) {
  if (value <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 3, 4, 5, 6, 8, 10].map((f) => f * power).find((m) => m >= value);
}

function renderChart(series, bucket) {
  const box = byId("chart-box");
  const width = Math.max(300, Math.floor(box.clientWidth || 800));
  const height = width < 500 ? 200 : 240;
  const pad = { left: 40, right: 8, top: 10, bottom: 26 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const sums = series.map((point) => SERIES_KEYS.reduce((sum, key) => sum + (point[key] || 0), 0));
  const yMax = niceMax(Math.max(0, ...sums));
  const y = (v) => pad.top + plotH - (v / yMax) * plotH;

  const svg = svgEl("svg", { "data-testid": "series-chart", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": "Deliveries per " + (bucket || "bucket") });
  for (const tick of [0, yMax / 2, yMax].filter(Number.isInteger)) {
    svg.append(svgEl("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }));
    svg.append(svgEl("text", { class: "axis", x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end" },
      String(tick)));
  }

  const slot = series.length ? plotW / series.length : plotW;
  const barW = Math.max(1, Math.min(48, slot * 0.7));
  const labelEvery = Math.max(1, Math.ceil(series.length / Math.max(1, Math.floor(plotW / 64))));
  series.forEach((point, i) => {
    const label = bucketLabel(point.start, bucket);
    const x = pad.left + i * slot + (slot - barW) / 2;
    const summary = [`${formatTime(point.start)} UTC`, `accepted ${point.accepted ?? 0}`]
      .concat(SERIES_KEYS.map((key) => `${key} ${point[key] ?? 0}`)).join("\n");
    const group = svgEl("g", { "data-testid": "series-bar", "data-start": point.start });
    group.append(svgEl("rect", { class: "hit", x: pad.left + i * slot, y: pad.top, width: slot, height: plotH }, svgEl("title", {}, summary)));
    let base = 0;
    for (const key of SERIES_KEYS) {
      const count = point[key] || 0;
      if (count <= 0) continue;
      group.append(svgEl("rect", { class: "seg seg-" + key, x, y: y(base + count), width: barW, height: Math.max(0.5, y(base) - y(base + count)) },
        svgEl("title", {}, `${label}: ${count} ${key}`)));
      base += count;
    }
    svg.append(group);
    if (i % labelEvery === 0) {
      svg.append(svgEl("text", { class: "axis", x: pad.left + i * slot + slot / 2, y: height - 8, "text-anchor": "middle" }, label));
    }
  });
  if (series.length === 0) {
    svg.append(svgEl("text", { class: "axis", x: pad.left + plotW / 2, y: pad.top + plotH / 2, "text-anchor": "middle" }, "No data in this range"));
  }
  box.replaceChildren(svg);
  renderLegend();
}

function renderLegend() {
  const legend = byId("chart-legend");
  if (legend.children.length) return;
  for (const key of SERIES_KEYS) legend.append(el("li", {}, el("span", { class: "swatch seg-" + key }), key));
}

// ---------- delivery log (API key only) ----------

function messageQuery(cursor) {
  const params = new URLSearchParams({ limit: "50" });
  const recipient = byId("search-recipient").value.trim();
  const status = byId("search-status").value;
  if (recipient) params.set("recipient", recipient);
  if (status) params.set("status", status);
  if (cursor) params.set("cursor", cursor);
  return params;
}

async function loadMessages(append) {
  if (!state.token || state.admin) return;
  const seq = ++state.logSeq;
  const section = byId("messages");
  const params = messageQuery(append ? state.cursor : null);
  section.dataset.logState = "loading";
  byId("more-button").disabled = true;
  try {
    const page = await api("/v1/messages?" + params.toString());
    if (seq !== state.logSeq) return;
    renderMessageRows(page.data || [], append);
    state.cursor = page.next_cursor || null;
    byId("more-button").hidden = !state.cursor;
    showMessage(byId("messages-error"), "");
    params.delete("cursor");
    section.dataset.logQuery = params.toString();
    section.dataset.logState = "ready";
  } catch (err) {
    if (seq !== state.logSeq || err.status === 401) return;
    showMessage(byId("messages-error"), "Could not load messages: " + describeError(err));
    section.dataset.logState = "error";
  } finally {
    byId("more-button").disabled = false;
  }
}

function renderMessageRows(messages, append) {
  const tbody = byId("messages-body");
  if (!append) tbody.replaceChildren();
  tbody.querySelectorAll("tr.empty").forEach((row) => row.remove());
  for (const message of messages) {
    const recipients = el("ul", { class: "recipients" },
      (message.recipients || []).map((r) => el("li", {}, el("span", { class: "addr" }, r.email), " ", badge(r.status))));
    const row = el("tr", { class: "clickable", tabindex: 0, "data-testid": "message-row", "data-message-id": message.id },
      el("td", { class: "nowrap" }, formatTime(message.created_at)),
      el("td", { class: "nowrap" }, message.from || ""),
      el("td", {}, message.subject || "(no subject)"),
      el("td", {}, recipients),
      el("td", {}, badge(message.status)));
    tbody.append(row);
  }
  if (tbody.children.length === 0) {
    tbody.append(el("tr", { class: "empty" }, el("td", { colspan: 5 }, "No messages match")));
  }
}

// Opens the detail panel for one message: message, events and attempts are fetched together.
async function openMessage(id) {
  const seq = ++state.detailSeq;
  const panel = byId("detail");
  const body = byId("detail-body");
  document.querySelectorAll("tr.selected").forEach((row) => row.classList.remove("selected"));
  const row = document.querySelector(`tr[data-message-id="${CSS.escape(id)}"]`);
  if (row) row.classList.add("selected");
  panel.hidden = false;
  panel.dataset.messageId = id;
  panel.dataset.detailState = "loading";
  body.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  panel.scrollIntoView({ block: "start" });
  const base = "/v1/messages/" + encodeURIComponent(id);
  try {
    const [message, events, attempts] = await Promise.all([api(base), api(base + "/events"), api(base + "/attempts")]);
    if (seq !== state.detailSeq) return;
    renderDetail(message, events.data || [], attempts.data || []);
    panel.dataset.detailState = "ready";
  } catch (err) {
    if (seq !== state.detailSeq || err.status === 401) return;
    body.replaceChildren(el("p", { class: "message" }, "Could not load the message: " + describeError(err)));
    panel.dataset.detailState = "error";
  }
}

function closeDetail() {
  state.detailSeq++;
  byId("detail").hidden = true;
  byId("detail-body").replaceChildren();
  document.querySelectorAll("tr.selected").forEach((row) => row.classList.remove("selected"));
}

function renderDetail(message, events, attempts) {
  const facts = el("dl", { class: "facts" },
    fact("ID", message.id), fact("Created", formatTime(message.created_at) + " UTC"),
    fact("From", message.from || ""), fact("Subject", message.subject || "(no subject)"),
    fact("Status", badge(message.status)),
    fact("Tags", (message.tags || []).join(", ") || "—"),
    fact("Metadata", Object.keys(message.metadata || {}).length ? JSON.stringify(message.metadata) : "—"));

  const recipients = el("table", {}, el("thead", {}, el("tr", {}, ["Recipient", "Status", "Attempts", "Last reply", "MX", "Next attempt"].map((h) => el("th", {}, h)))),
    el("tbody", {}, (message.recipients || []).map((r) => el("tr", {},
      el("td", {}, r.email), el("td", {}, badge(r.status)), el("td", { class: "num" }, formatCount(r.attempts)),
      el("td", {}, formatReply(r.last_reply) || r.last_error || r.reason || "—"),
      el("td", {}, r.mx || "—"), el("td", { class: "nowrap" }, r.next_attempt_at ? formatTime(r.next_attempt_at) : "—")))));

  const eventRows = events.map((e) => el("tr", {},
    el("td", { class: "nowrap" }, formatTime(e.at, true)), el("td", {}, badge(e.type)), el("td", {}, e.recipient || "—"),
    el("td", {}, formatReply(e.reply) || e.detail || "—"),
    el("td", {}, [e.mx, e.remote_ip].filter(Boolean).join(" / ") || "—"),
    el("td", {}, e.tls ? (e.tls_version || "TLS") : (e.tls === false ? "none" : "—")),
    el("td", { class: "num" }, e.duration_ms == null ? "—" : formatDuration(e.duration_ms))));
  const eventsTable = el("table", {}, el("thead", {}, el("tr", {}, ["Time", "Event", "Recipient", "Reply / detail", "MX / IP", "TLS", "Took"].map((h) => el("th", {}, h)))),
    el("tbody", {}, eventRows.length ? eventRows : el("tr", { class: "empty" }, el("td", { colspan: 7 }, "No events"))));

  byId("detail-body").replaceChildren(facts,
    el("h3", {}, "Recipients"), el("div", { class: "table-wrap" }, recipients),
    el("h3", {}, "Events"), el("div", { class: "table-wrap" }, eventsTable),
    el("h3", {}, `Attempts (${attempts.length})`),
    ...(attempts.length ? attempts.map(renderAttempt) : [el("p", { class: "muted" }, "No delivery attempts yet")]));
}

function fact(label, value) {
  return el("div", {}, el("dt", {}, label), el("dd", {}, value));
}

function renderAttempt(attempt, index) {
  const summary = [`#${index + 1}`, formatTime(attempt.started_at) + " UTC", attempt.domain, attempt.mx && `MX ${attempt.mx}`,
    attempt.remote_ip, attempt.tls ? (attempt.tls_version || "TLS") : "no TLS",
    attempt.duration_ms == null ? null : formatDuration(attempt.duration_ms)].filter(Boolean).join(" · ");
  const results = el("ul", { class: "recipients" }, (attempt.recipients || []).map((r) =>
    el("li", {}, el("span", { class: "addr" }, r.email), " ", badge(r.status), " ", formatReply(r.reply) || r.detail || "")));
  return el("article", { class: "attempt", "data-attempt-id": attempt.id }, el("h4", {}, summary), results, renderTranscript(attempt.transcript || []));
}

// One line per transcript entry: "C: " client, "S: " server, "* " info; the timestamp is the line's tooltip.
function renderTranscript(lines) {
  const pre = el("pre", { class: "transcript", "data-testid": "transcript" });
  for (const line of lines) {
    const prefix = DIRECTION_PREFIX[line.direction] || "? ";
    for (const part of String(line.text ?? "").split(/\r?\n/)) {
      pre.append(el("span", { class: "tx-" + (line.direction || "info"), title: line.at ? formatTime(line.at, true) : null }, prefix + part), "\n");
    }
  }
  if (lines.length === 0) pre.textContent = "* no transcript recorded";
  return pre;
}

// ---------- wiring ----------

function onResize() {
  clearTimeout(onResize.pending);
  onResize.pending = setTimeout(() => {
    if (state.stats) renderChart(state.stats.series || [], state.stats.bucket);
  }, 150);
}

function init() {
  byId("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = byId("token-input").value.trim();
    if (token) signIn(token);
  });
  byId("signout-button").addEventListener("click", () => signOut("Signed out."));
  byId("refresh-button").addEventListener("click", () => {
    loadStats();
    loadMessages(false);
  });
  byId("range-select").addEventListener("change", loadStats);
  byId("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadMessages(false);
  });
  byId("more-button").addEventListener("click", () => loadMessages(true));
  byId("detail-close").addEventListener("click", closeDetail);
  const messagesBody = byId("messages-body");
  messagesBody.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-message-id]");
    if (row) openMessage(row.dataset.messageId);
  });
  messagesBody.addEventListener("keydown", (event) => {
    const row = event.target.closest("tr[data-message-id]");
    if (row && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      openMessage(row.dataset.messageId);
    }
  });
  window.addEventListener("resize", onResize);
  // Auto-refresh skips hidden tabs; catch up when the tab is shown again.
  document.addEventListener("visibilitychange", () => { if (!document.hidden && state.token) loadStats(); });

  const stored = sessionStorage.getItem(TOKEN_KEY);
  if (stored) signIn(stored);
  else showLogin("");
}

init();

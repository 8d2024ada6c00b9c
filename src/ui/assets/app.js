// tokentrace dashboard. Plain JavaScript, no dependencies, served by `tokentrace ui`.
//
// Safety rule of this file: session content (prompts, tool arguments and results, names, paths) only ever
// becomes text — `document.createTextNode` through `el()` — never markup, and links are only ever built
// from our own paths. Agent sessions contain arbitrary HTML and `<script>`; the Content-Security-Policy
// the server sends is the second wall.
"use strict";

const FILTERS = ["since", "until", "agent", "model", "project", "channel"];
const COLORS = ["#2f6fde", "#e8833a", "#2a9d6f", "#c0407a", "#8a63d2", "#c9a227", "#3aa6b9", "#7a7f87"];

/** Builds an element: `attrs` are set with setAttribute (never `on*` or `style`), children are nodes or text. */
function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (/^on/i.test(k) || k === "style") throw new Error("refusing attribute " + k);
    if (k === "href" && !String(v).startsWith("/")) throw new Error("refusing link " + v);
    node.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const usd = (v) => (v === null || v === undefined) ? "–"
  : "$" + (Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(4));
const int = (v) => (v === null || v === undefined) ? "–" : Number(v).toLocaleString("en-US");
const pct = (v) => (100 * (v || 0)).toFixed(1) + " %";
const ms = (v) => (v === null || v === undefined) ? "–"
  : v >= 60000 ? (v / 60000).toFixed(1) + " min" : v >= 1000 ? (v / 1000).toFixed(1) + " s" : v + " ms";
const when = (ms) => ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "–";
const tokensOf = (t) => t ? (t.input || 0) + (t.cache_read || 0) + (t.cache_write || 0) + (t.output || 0) : 0;

/** The page's query string without paging/sorting keys that do not belong to `keep`. */
function params(keep) {
  const src = new URLSearchParams(location.search);
  const out = new URLSearchParams();
  for (const [k, v] of src) if (v && (FILTERS.includes(k) || (keep || []).includes(k) || k === "tz")) out.set(k, v);
  return out;
}

/** A link to one of our pages with the current filters (and `extra`). */
function link(path, extra, ...children) {
  const q = params([]);
  for (const [k, v] of Object.entries(extra || {})) if (v === null) q.delete(k); else q.set(k, v);
  const s = q.toString();
  return el("a", { href: path + (s ? "?" + s : "") }, ...children);
}

async function api(path, query) {
  const q = query.toString();
  const resp = await fetch(path + (q ? "?" + q : ""), { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const doc = await resp.json().catch(() => ({ error: resp.statusText }));
  if (!resp.ok) throw new Error(doc.error || resp.statusText);
  return doc;
}

function setMain(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

// ---------------------------------------------------------------------------------------------- overview

function card(label, value, attrs) {
  return el("div", Object.assign({ class: "card" }, attrs || {}), el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

/** Daily spend as stacked bars (by agent or by model): one <rect> per day and series. */
function dailyChart(daily, stack) {
  const rows = daily.rows || [];
  const split = (r) => stack === "model"
    ? (r.breakdown || []).map((b) => [b.model, b.cost_usd])
    : (r.agents || []).map((a) => [a.agent, a.cost_usd]);
  const series = [...new Set(rows.flatMap((r) => split(r).map(([k]) => k)))];
  const color = (k) => COLORS[series.indexOf(k) % COLORS.length];
  const W = 900, H = 220, pad = 36, bottom = 24;
  const max = Math.max(1e-9, ...rows.map((r) => r.cost_usd || 0));
  const svg = el("svg:svg", { class: "chart", id: "daily-chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "Daily spend" });
  const bw = rows.length ? (W - pad - 10) / rows.length : 0;
  rows.forEach((r, i) => {
    let y = H - bottom;
    for (const [k, v] of split(r)) {
      const h = (H - bottom - 10) * (v || 0) / max;
      y -= h;
      const rect = el("svg:rect", { x: (pad + i * bw + bw * 0.1).toFixed(1), y: y.toFixed(1), width: Math.max(1, bw * 0.8).toFixed(1), height: h.toFixed(2), fill: color(k), "data-day": r.key, "data-series": k, "data-usd": v });
      rect.appendChild(el("svg:title", {}, `${r.key} · ${k}: ${usd(v)}`));
      svg.appendChild(rect);
    }
    if (rows.length <= 16 || i % Math.ceil(rows.length / 16) === 0) {
      svg.appendChild(el("svg:text", { x: (pad + i * bw + bw / 2).toFixed(1), y: H - 8, "text-anchor": "middle" }, r.key.slice(5)));
    }
  });
  svg.appendChild(el("svg:text", { x: 2, y: 14 }, usd(max)));
  const legend = el("div", { class: "legend" }, series.map((k) => el("span", {}, el("span", { class: "swatch", "data-color": color(k) }), k)));
  // The swatch colours: CSSOM (allowed by the policy), not a style attribute.
  legend.querySelectorAll(".swatch").forEach((s) => { s.style.background = s.dataset.color; });
  return [svg, legend];
}

/** A ranked table with a bar per row (cost by model, agent, channel, project). */
function ranked(title, doc, id, keyName) {
  const rows = [...(doc.rows || [])].sort((a, b) => (b.cost_usd || 0) - (a.cost_usd || 0));
  const max = Math.max(1e-9, ...rows.map((r) => r.cost_usd || 0));
  const body = rows.slice(0, 15).map((r) => {
    const bar = el("div", { class: "bar" });
    bar.style.width = (100 * (r.cost_usd || 0) / max).toFixed(1) + "%";
    return el("tr", { "data-key": r.key },
      el("td", {}, r.key === "unknown" ? el("span", { class: "muted" }, "(none)") : r.key),
      el("td", { class: "num" }, int(r.generations)),
      el("td", { class: "num" }, usd(r.cost_usd)),
      el("td", { class: "barcell" }, bar));
  });
  return el("section", { id },
    el("h2", {}, title),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, keyName), el("th", { class: "num" }, "Model calls"), el("th", { class: "num" }, "Cost"), el("th", {}, ""))),
      el("tbody", {}, body)));
}

function sessionsTable(rows, id) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, ["Start", "Agent", "Project", "Prompts", "Model calls", "Tokens", "Cost"].map((h, i) => el("th", { class: i >= 3 ? "num" : null }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", { "data-session-key": r.key },
      el("td", {}, link("/session/" + encodeURIComponent(r.key), {}, r.start || "–")),
      el("td", {}, r.agent || "–"),
      el("td", {}, r.project || "–"),
      el("td", { class: "num" }, int(r.prompts)),
      el("td", { class: "num" }, int(r.generations)),
      el("td", { class: "num" }, int(tokensOf(r.tokens))),
      el("td", { class: "num", "data-usd": r.cost_usd }, usd(r.cost_usd))))));
}

async function overview() {
  const stack = new URLSearchParams(location.search).get("stack") === "model" ? "model" : "agent";
  const doc = await api("/api/overview", params([]));
  const s = doc.spend, t = doc.tokens;
  const switcher = el("p", { class: "muted" }, "Stacked by ",
    stack === "agent" ? el("b", {}, "agent") : link("/", { stack: null }, "agent"), " · ",
    stack === "model" ? el("b", {}, "model") : link("/", { stack: "model" }, "model"));
  setMain(
    el("h1", {}, "Overview"),
    el("div", { class: "cards", id: "spend" },
      card("Today", usd(s.today_usd), { id: "spend-today", "data-usd": s.today_usd }),
      card("This week", usd(s.week_usd), { id: "spend-week", "data-usd": s.week_usd }),
      card("This month", usd(s.month_usd), { id: "spend-month", "data-usd": s.month_usd }),
      card(doc.window.since || doc.window.until ? "In the range" : "All time", usd(s.window_usd), { id: "total-cost", "data-usd": s.window_usd }),
      card("Unpriced model calls", `${int(s.unpriced_generations)} (${pct(s.unpriced_share)})`, { id: "unpriced", "data-count": s.unpriced_generations }),
      card("Sessions", int(doc.totals.sessions), { id: "total-sessions", "data-count": doc.totals.sessions }),
      card("Model calls", int(doc.totals.generations), { id: "total-generations", "data-count": doc.totals.generations })),
    el("h2", {}, "Daily spend"), switcher, dailyChart(doc.daily, stack),
    el("div", { class: "grid2" },
      ranked("Cost by model", doc.by_model, "by-model", "Model"),
      ranked("Cost by agent", doc.by_agent, "by-agent", "Agent"),
      ranked("Cost by channel", doc.by_channel, "by-channel", "Channel"),
      ranked("Cost by project", doc.by_project, "by-project", "Project")),
    el("h2", {}, "Tokens"),
    el("table", { id: "tokens" }, el("tbody", {},
      [["Input", t.input], ["Cache read", t.cache_read], ["Cache write", t.cache_write], ["Output", t.output], ["Reasoning (in output)", t.reasoning], ["Total", t.total]]
        .map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "num", "data-tokens": v }, int(v)))),
      el("tr", {}, el("td", {}, "Cache hit ratio (cache read ÷ prompt tokens)"), el("td", { class: "num", id: "cache-hit" }, pct(t.cache_hit_ratio))))),
    el("h2", {}, "Top sessions by cost"), sessionsTable(doc.top_sessions, "top-sessions"));
}

// ---------------------------------------------------------------------------------------------- sessions

async function sessions() {
  const here = new URLSearchParams(location.search);
  const q = params(["q", "sort", "dir", "page", "per"]);
  const doc = await api("/api/sessions", q);
  const header = (label, key, num) => {
    const active = doc.sort === key;
    const dir = active && doc.dir === "desc" ? "asc" : "desc";
    return el("th", { class: num ? "num" : null }, link("/sessions", { sort: key, dir, page: null, q: here.get("q") || null, per: here.get("per") || null }, label, active ? (doc.dir === "desc" ? " ▾" : " ▴") : ""));
  };
  const search = el("form", { id: "search", action: "/sessions", method: "get" },
    ...[...params([]).entries()].map(([k, v]) => el("input", { type: "hidden", name: k, value: v })),
    el("input", { name: "q", value: here.get("q") || "", placeholder: "session id, project, channel", size: 30 }),
    el("button", { type: "submit" }, "Search"));
  const pager = el("div", { class: "pager" },
    doc.page > 1 ? link("/sessions", { page: doc.page - 1, sort: doc.sort, dir: doc.dir, q: here.get("q") || null, per: here.get("per") || null }, "← previous") : "",
    el("span", { id: "page-info" }, `page ${doc.page} of ${doc.pages} · ${int(doc.total)} sessions`),
    doc.page < doc.pages ? link("/sessions", { page: doc.page + 1, sort: doc.sort, dir: doc.dir, q: here.get("q") || null, per: here.get("per") || null }, "next →") : "");
  setMain(
    el("h1", {}, "Sessions"), search, pager,
    el("table", { id: "sessions", "data-total": doc.total },
      el("thead", {}, el("tr", {},
        header("Start", "start"), header("Agent", "agent"), header("Project", "project"), el("th", {}, "Channel"),
        header("Prompts", "prompts", 1), header("Model calls", "generations", 1), header("Tool calls", "tool_calls", 1),
        header("Errors", "errors", 1), header("Tokens", "tokens", 1), header("Cost", "cost", 1))),
      el("tbody", {}, doc.rows.map((r) => el("tr", { "data-session-key": r.key, "data-session-id": r.session_id },
        el("td", {}, link("/session/" + encodeURIComponent(r.key), {}, r.start || "–")),
        el("td", {}, r.agent || "–"),
        el("td", {}, r.project || "–"),
        el("td", {}, r.channel || "–"),
        el("td", { class: "num" }, int(r.prompts)),
        el("td", { class: "num", "data-generations": r.generations }, int(r.generations)),
        el("td", { class: "num" }, int(r.tool_calls)),
        el("td", { class: "num" + (r.errors ? " err" : "") }, int(r.errors)),
        el("td", { class: "num" }, int(r.total_tokens)),
        el("td", { class: "num", "data-usd": r.cost_usd }, usd(r.cost_usd)))))),
    pager.cloneNode(true));
}

// ---------------------------------------------------------------------------------------------- session

function content(label, c) {
  if (!c || c.text === undefined || c.text === null || c.text === "") return null;
  const more = c.chars > c.text.length ? ` (first ${int(c.text.length)} of ${int(c.chars)} characters)` : "";
  return el("div", { class: "content-block" }, el("span", { class: "muted" }, label + more), el("pre", { class: "content" }, c.text));
}

function observationNode(o, children) {
  const facts = [];
  if (o.model) facts.push(o.model);
  if (o.tokens) facts.push(`in ${int(o.tokens.input)} · cache read ${int(o.tokens.cache_read)} · cache write ${int(o.tokens.cache_write)} · out ${int(o.tokens.output)}`);
  if (o.cost_usd !== null && o.cost_usd !== undefined) facts.push(usd(o.cost_usd));
  if (o.unpriced) facts.push("unpriced");
  if (o.duration_ms !== null && o.duration_ms !== undefined) facts.push(ms(o.duration_ms));
  const attrs = { "data-obs-id": o.id, "data-kind": o.kind, "data-name": o.name };
  if (o.tokens) Object.assign(attrs, { "data-input": o.tokens.input, "data-output": o.tokens.output, "data-cache-read": o.tokens.cache_read, "data-cache-write": o.tokens.cache_write });
  if (o.cost_usd !== null && o.cost_usd !== undefined) attrs["data-usd"] = o.cost_usd;
  return el("li", attrs,
    el("span", { class: "kind " + o.kind }, o.kind), el("span", { class: "name" }, o.name),
    el("span", { class: "facts" }, facts.join(" · ")),
    o.level === "ERROR" ? el("div", { class: "err" }, "error: ", o.error || "") : null,
    content("input", o.input), content("output", o.output),
    children.length ? el("ul", { class: "tree" }, children) : null);
}

/** The observations of one trace as a tree (by parent_id), in start order. */
function tree(observations) {
  const byParent = new Map();
  const ids = new Set(observations.map((o) => o.id));
  for (const o of observations) {
    const p = o.parent_id && ids.has(o.parent_id) ? o.parent_id : "";
    if (!byParent.has(p)) byParent.set(p, []);
    byParent.get(p).push(o);
  }
  const build = (p, depth) => (byParent.get(p) || []).map((o) => observationNode(o, depth > 60 ? [] : build(o.id, depth + 1)));
  return el("ul", { class: "tree" }, build("", 0));
}

/** A waterfall of one trace: a bar per generation and tool call between its start and end. */
function waterfall(trace) {
  const obs = trace.observations.filter((o) => o.start_ms && (o.kind === "generation" || o.kind === "tool"));
  if (!obs.length) return null;
  const t0 = Math.min(...obs.map((o) => o.start_ms));
  const t1 = Math.max(...obs.map((o) => o.end_ms || o.start_ms), t0 + 1);
  const W = 900, row = 14, H = obs.length * row + 6, label = 170;
  const svg = el("svg:svg", { class: "waterfall", viewBox: `0 0 ${W} ${H}`, "data-bars": obs.length });
  obs.forEach((o, i) => {
    const x = label + (W - label - 4) * (o.start_ms - t0) / (t1 - t0);
    const w = Math.max(2, (W - label - 4) * ((o.end_ms || o.start_ms) - o.start_ms) / (t1 - t0));
    svg.appendChild(el("svg:text", { x: 2, y: i * row + 13 }, (o.kind === "tool" ? "⚙ " : "◆ ") + o.name.slice(0, 28)));
    const r = el("svg:rect", { class: o.kind, x: x.toFixed(1), y: i * row + 4, width: w.toFixed(1), height: row - 4 });
    r.appendChild(el("svg:title", {}, `${o.name}: ${ms(o.duration_ms)}`));
    svg.appendChild(r);
  });
  return svg;
}

async function session(key) {
  const doc = await api("/api/session/" + encodeURIComponent(key), params([]));
  const s = doc.session, m = doc.summary || {};
  const traces = doc.traces.map((t, i) => el("details", { class: "trace", open: i < 20 ? "" : null, "data-trace-id": t.id },
    el("summary", {}, `${t.is_prompt ? "Prompt" : "Trace"} ${i + 1}: ${t.name || ""}`, el("span", { class: "facts" }, `${when(t.start_ms)} · ${t.observations.length} observations`)),
    content("prompt", t.input), waterfall(t), tree(t.observations), content("answer", t.output)));
  setMain(
    el("h1", {}, "Session ", el("span", { id: "session-id" }, s.session_id)),
    el("p", { class: "muted" }, `${s.agent}${s.agent_version ? " " + s.agent_version : ""} · ${s.project || "no project"}${s.channel ? " · channel " + s.channel : ""} · ${when(s.start_ms)} → ${when(s.end_ms)}`),
    doc.parent ? el("p", {}, "Ran under session ", link("/session/" + encodeURIComponent(doc.parent.key), {}, doc.parent.session_id)) : null,
    doc.children.length ? el("p", { id: "children" }, "Subagent sessions: ",
      doc.children.map((c, i) => [i ? ", " : "", link("/session/" + encodeURIComponent(c.key), {}, c.name || c.session_id)])) : null,
    el("div", { class: "cards", id: "session-totals" },
      card("Cost", usd(m.cost_usd), { id: "session-cost", "data-usd": m.cost_usd }),
      card("Prompts", int(m.prompts)),
      card("Model calls", int(m.generations), { id: "session-generations", "data-count": m.generations }),
      card("Tool calls", int(m.tool_calls), { id: "session-tools", "data-count": m.tool_calls }),
      card("Errors", int((m.generation_errors || 0) + (m.tool_errors || 0))),
      card("Tokens", int(tokensOf(m.tokens)))),
    el("div", { id: "traces" }, traces));
}

// ---------------------------------------------------------------------------------------------- models

async function models() {
  const doc = await api("/api/models", params([]));
  const rate = (p, k) => p.priced && p.usd_per_mtok[k] !== null && p.usd_per_mtok[k] !== undefined ? "$" + Number(p.usd_per_mtok[k].toPrecision(4)) : "–";
  setMain(
    el("h1", {}, "Models and prices"),
    el("p", { class: "muted" }, "Which price each model got and why (the same as `tokentrace prices MODEL`). USD per million tokens. Unpriced models are highlighted: their tokens are counted, never priced as $0."),
    el("table", { id: "models" },
      el("thead", {}, el("tr", {}, ["Model", "Provider", "Model calls", "Tokens", "Cost", "Price from", "Input", "Output", "Cache read", "Cache write"].map((h, i) => el("th", { class: i >= 2 && i !== 5 ? "num" : null }, h)))),
      el("tbody", {}, doc.rows.map((r) => el("tr", { class: r.price.priced ? null : "unpriced", "data-model": r.key, "data-priced": r.price.priced },
        el("td", {}, r.key), el("td", {}, r.provider || "–"),
        el("td", { class: "num" }, int(r.generations)),
        el("td", { class: "num" }, int(tokensOf(r.tokens))),
        el("td", { class: "num", "data-usd": r.cost_usd }, usd(r.cost_usd)),
        el("td", {}, r.price.priced ? `${r.price.source}: ${r.price.key} (${r.price.rule})` : "no price found"),
        ["input", "output", "cache_read", "cache_write"].map((k) => el("td", { class: "num" }, rate(r.price, k))))))));
}

// ---------------------------------------------------------------------------------------------- frame

function route() {
  const path = location.pathname;
  if (path.startsWith("/session/")) return ["session", () => session(decodeURIComponent(path.slice(9)))];
  if (path === "/sessions") return ["sessions", sessions];
  if (path === "/models") return ["models", models];
  return ["overview", overview];
}

async function render() {
  const [page, draw] = route();
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  try {
    await draw();
    document.body.dataset.rendered = page;
  } catch (e) {
    setMain(el("div", { class: "error-box", id: "error" }, "Could not load this page: ", e.message));
    document.body.dataset.rendered = "error";
  }
}

function setupFilters() {
  const form = document.getElementById("filters");
  const q = new URLSearchParams(location.search);
  for (const k of FILTERS) if (form.elements[k]) form.elements[k].value = q.get(k) || "";
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams(location.search);
    for (const k of FILTERS) { const v = form.elements[k].value.trim(); if (v) next.set(k, v); else next.delete(k); }
    next.delete("page");
    history.pushState(null, "", location.pathname + (next.toString() ? "?" + next : ""));
    render();
  });
  document.getElementById("clear").addEventListener("click", () => {
    history.pushState(null, "", location.pathname);
    for (const k of FILTERS) form.elements[k].value = "";
    render();
  });
  window.addEventListener("popstate", render);
}

/** Live updates: the store's change counter is polled; a change redraws the page in place. */
function live() {
  let version = null;
  const badge = document.getElementById("live");
  const poll = async () => {
    try {
      const doc = await api("/api/changes", new URLSearchParams());
      if (version !== null && doc.version !== version) await render();
      version = doc.version;
      badge.textContent = "● live";
    } catch (e) {
      badge.textContent = "○ offline";
    }
  };
  poll();
  setInterval(poll, 3000);
}

setupFilters();
render();
live();

// The operators' pages: a live dashboard plotted as the sale happens (sales
// per second, queue length, admitted, active holds, p99 latency of the
// buying requests, and the funnel joined (and gave up waiting) → admitted → holding → bought →
// expired), events created and edited (policy, security settings, pause and
// resume), the audit log, and snapshot and backup buttons. Admin endpoints
// need a login with two factors; without one the page offers enrollment.
import { t, number } from "./i18n.js";
import { api, esc, page, state, showError, brl, when, renderEnroll, announce } from "./app.js";

const POINTS = 60;
/** The routes whose latency the dashboard's p99 follows (a fan buying). */
const BUYING = ["queue_join", "cart_set", "cart_add", "checkout"];

export async function renderAdmin(parts) {
  if (!state.me?.admin) { page(t("admin.title"), `<p class="error">${esc(t("admin.forbidden"))}</p>`); return; }
  if (!state.twoFactorSession) {
    page(t("admin.title"), `<p class="warning">${esc(t("admin.needTwoFactor"))}</p>
      ${state.me.two_factor ? `<p><a class="tap" href="#/login">${esc(t("nav.login"))}</a></p>` : `<button type="button" id="enroll">${esc(t("admin.enroll"))}</button>`}`);
    document.getElementById("enroll")?.addEventListener("click", () => renderEnroll());
    return;
  }
  const tab = parts[0] ?? "dashboard";
  const tabs = [["dashboard", t("admin.dashboard")], ["events", t("admin.events")], ["audit", t("admin.audit")]];
  const nav = `<nav aria-label="${esc(t("admin.title"))}" class="card">${tabs.map(([id, text]) =>
    `<a href="#/admin/${id}" ${id === tab ? 'aria-current="page"' : ""}>${esc(text)}</a>`).join(" · ")}
    <button type="button" class="secondary" id="snapshot">${esc(t("admin.snapshot"))}</button>
    <button type="button" class="secondary" id="backup">${esc(t("admin.backup"))}</button>
    <p id="ops-result" role="status"></p></nav>`;
  if (tab === "events") await renderEvents(nav);
  else if (tab === "audit") await renderAudit(nav);
  else await renderDashboard(nav);
}

/** The snapshot and backup buttons of the admin bar (after each render). */
function wireOps() {
  const result = document.getElementById("ops-result");
  for (const [id, path, key] of [["snapshot", "/api/admin/snapshot", "admin.snapshotTaken"], ["backup", "/api/admin/backup", "admin.backupTaken"]]) {
    document.getElementById(id).addEventListener("click", async () => {
      try {
        const answer = await api("POST", path);
        result.className = "ok";
        result.textContent = t(key, { seq: answer.snapshot_seq ?? "", path: answer.backup ?? "" });
      } catch (e) { showError(result, e); }
    });
  }
}

// ---- dashboard ------------------------------------------------------------------

/** Cumulative latency buckets of the buying routes, from /metrics. */
async function latencyBuckets() {
  const text = await (await fetch("/metrics")).text();
  const buckets = new Map();
  for (const line of text.split("\n")) {
    const m = line.match(/^ingressoja_http_request_duration_seconds_bucket\{(.*)\} (\d+)/);
    if (!m) continue;
    const route = m[1].match(/route="([^"]+)"/)?.[1];
    const le = m[1].match(/le="([^"]+)"/)?.[1];
    if (!BUYING.includes(route)) continue;
    const bound = le === "+Inf" ? Infinity : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(m[2]));
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]);
}

/** The p99 (ms) of requests between two bucket readings (null: none). */
function p99Between(before, after) {
  const counts = after.map(([bound, n], i) => [bound, n - (before[i]?.[1] ?? 0)]);
  const total = counts.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const bucket = counts.find(([, n]) => n >= total * 0.99);
  return bucket && Number.isFinite(bucket[0]) ? bucket[0] * 1000 : null;
}

/** A round top for a chart's scale (1, 2 or 5 × 10ⁿ) at or above `max`,
 * so a small sale's few tickets fill the chart instead of a sliver. */
function niceTop(max) {
  if (max <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * power).find((top) => top >= max);
}

/** Draws the last POINTS samples: the title and the latest value in a band
 * of their own above the plot (lines never run over them), a scale with
 * its top and middle marked on the left, and each sample as a dot too, so
 * a few samples still show. */
function plot(canvas, values, label) {
  const ctx = canvas.getContext("2d");
  const px = devicePixelRatio;
  const width = (canvas.width = canvas.clientWidth * px);
  const height = (canvas.height = canvas.clientHeight * px);
  ctx.clearRect(0, 0, width, height);
  const known = values.filter((v) => v !== null);
  const top = niceTop(Math.max(0, ...known));
  const band = 30 * px, left = 36 * px, bottom = height - 8 * px;
  const y = (v) => bottom - (v / top) * (bottom - band);
  const x = (i) => left + (i / (POINTS - 1)) * (width - left - 6 * px);
  ctx.font = `${11 * px}px sans-serif`; ctx.textBaseline = "middle";
  for (const mark of [0, top / 2, top]) {
    ctx.strokeStyle = "#c8cec9"; ctx.lineWidth = px;
    ctx.beginPath(); ctx.moveTo(left, y(mark)); ctx.lineTo(width, y(mark)); ctx.stroke();
    ctx.fillStyle = "#4a4a4a"; ctx.fillText(number(Math.round(mark * 10) / 10), 4 * px, y(mark));
  }
  ctx.strokeStyle = "#0b5d3b"; ctx.fillStyle = "#0b5d3b"; ctx.lineWidth = 2 * px; ctx.beginPath();
  values.forEach((v, i) => {
    if (v === null) return;
    i === 0 || values[i - 1] === null ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v));
  });
  ctx.stroke();
  values.forEach((v, i) => { if (v !== null) { ctx.beginPath(); ctx.arc(x(i), y(v), 2 * px, 0, 2 * Math.PI); ctx.fill(); } });
  const latest = known.at(-1);
  ctx.fillStyle = "#1a1a1a"; ctx.font = `600 ${12 * px}px sans-serif`; ctx.textBaseline = "alphabetic";
  ctx.fillText(`${label}: ${latest === undefined ? "–" : number(latest)}`, 4 * px, 14 * px);
  canvas.setAttribute("aria-label", `${label}: ${latest === undefined ? "–" : number(latest)}`);
}

async function renderDashboard(nav) {
  const { events } = await api("GET", "/api/events");
  const chosen = Number(sessionStorage.getItem("dashboard-event") ?? events[0]?.id ?? 0);
  const series = { sales: [], waiting: [], admitted: [], holds: [], p99: [] };
  const charts = [["sales", t("dash.sales")], ["waiting", t("dash.waiting")], ["admitted", t("dash.admitted")], ["holds", t("dash.holds")], ["p99", t("dash.p99")]];
  page(t("admin.dashboard"), `${nav}
    <label for="dash-event">${esc(t("dash.event"))}</label>
    <select id="dash-event">${events.map((e) => `<option value="${e.id}" ${e.id === chosen ? "selected" : ""}>${esc(e.name)}</option>`).join("")}</select>
    <h2>${esc(t("dash.funnel"))}</h2><div class="funnel" id="funnel" aria-live="polite"></div>
    <div class="charts">${charts.map(([id, label]) => `<canvas id="chart-${id}" role="img" aria-label="${esc(label)}"></canvas>`).join("")}</div>
    <div id="cluster-panel"></div>`);
  wireOps();
  document.getElementById("dash-event").addEventListener("change", (e) => {
    sessionStorage.setItem("dashboard-event", e.target.value);
    renderDashboard(nav);
  });
  let lastSold = null, lastBuckets = null, lastAt = null;
  const sample = async () => {
    // No asking again inside a sample: the next one comes in a second.
    const [stats, buckets] = await Promise.all([api("GET", "/api/admin/stats", undefined, {}, { retryFor: 0 }), latencyBuckets()]);
    const s = stats.events.find((e) => e.event === chosen);
    if (!s) return;
    const now = performance.now();
    const push = (name, value) => { series[name].push(value); if (series[name].length > POINTS) series[name].shift(); };
    push("sales", lastSold === null ? 0 : Math.round(((s.tickets_sold - lastSold) * 1000) / (now - lastAt)));
    push("waiting", s.waiting); push("admitted", s.admitted); push("holds", s.holds);
    push("p99", lastBuckets ? p99Between(lastBuckets, buckets) : null);
    lastSold = s.tickets_sold; lastBuckets = buckets; lastAt = now;
    document.getElementById("funnel").innerHTML = [["joined", s.joined], ["left", s.left], ["admitted", s.admitted], ["holding", s.holds], ["bought", s.orders], ["expired", s.holds_expired]]
      .map(([k, v]) => `<div><span class="muted">${esc(t("funnel." + k))}</span><br><strong data-testid="funnel-${k}">${esc(number(v))}</strong></div>`).join("");
    for (const [id, label] of charts) plot(document.getElementById(`chart-${id}`), series[id], label);
    renderCluster(stats.cluster);
  };
  await sample().catch(() => {});
  const timer = setInterval(() => sample().catch(() => {}), 1000);
  state.cleanup.push(() => clearInterval(timer));
}

/** The servers of a cluster, as each answered (none on a single node). */
function renderCluster(nodes) {
  const panel = document.getElementById("cluster-panel");
  if (!panel || !nodes) return;
  const cell = (v) => (v === null || v === undefined ? "—" : esc(String(v)));
  panel.innerHTML = `<h2>${esc(t("cluster.title"))}</h2><table data-testid="cluster"><thead><tr>
    <th scope="col">${esc(t("cluster.node"))}</th><th scope="col">${esc(t("cluster.state"))}</th>
    <th scope="col">${esc(t("cluster.term"))}</th><th scope="col">${esc(t("cluster.leader"))}</th>
    <th scope="col">${esc(t("cluster.applied"))}</th><th scope="col">${esc(t("cluster.lag"))}</th></tr></thead>
    <tbody>${nodes.map((n) => `<tr data-node="${n.id}"><td>${n.id} ${n.this_node ? esc(t("cluster.this")) : ""}</td>
      <td>${n.reachable ? esc(t("cluster.role." + n.state, null, n.state ?? "—")) : `<strong>${esc(t("cluster.unreachable"))}</strong>`}</td>
      <td>${cell(n.term)}</td><td>${cell(n.leader)}</td><td>${cell(n.applied_index)}</td><td>${cell(n.lag)}</td></tr>`).join("")}</tbody></table>`;
}

// ---- events ---------------------------------------------------------------------

function localInput(ms) {
  const d = new Date(ms - new Date().getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

function policyFields(prefix, policy = {}) {
  const field = (name, label, value, attrs = "") =>
    `<label for="${prefix}-${name}">${esc(label)}</label><input id="${prefix}-${name}" name="${name}" type="number" value="${value ?? ""}" ${attrs}>`;
  return field("max_active", t("policy.maxActive"), policy.max_active, 'min="1"')
    + field("admit_per_second", t("policy.admitPerSecond"), policy.admit_per_second, 'min="1"')
    + field("overadmit_percent", t("policy.overadmit"), policy.overadmit_percent, 'min="100" max="1000"')
    + field("arrival_window_seconds", t("policy.arrivalWindow"), policy.arrival_window_seconds, 'min="0" max="300"')
    + field("hold_minutes", t("policy.holdMinutes"), policy.hold_minutes, 'min="1" max="30"')
    + field("per_event_limit", t("policy.perEventLimit"), policy.per_event_limit, 'min="1"')
    + field("pow_difficulty", t("policy.pow"), policy.pow_difficulty, 'min="0" max="24"')
    + `<label><input id="${prefix}-require_two_factor" name="require_two_factor" type="checkbox" ${policy.require_two_factor === false ? "" : "checked"}> ${esc(t("policy.twoFactor"))}</label>`;
}

function readPolicy(form) {
  const number = (name) => { const v = form.elements[name]?.value; return v === "" || v === undefined ? undefined : Number(v); };
  const policy = {
    max_active: number("max_active"), admit_per_second: number("admit_per_second"),
    per_event_limit: number("per_event_limit"), pow_difficulty: number("pow_difficulty"),
    overadmit_percent: number("overadmit_percent"),
    require_two_factor: form.elements.require_two_factor.checked,
  };
  const arrivalWindow = number("arrival_window_seconds");
  if (arrivalWindow !== undefined) policy.arrival_window_ms = arrivalWindow * 1000;
  const hold = number("hold_minutes");
  if (hold !== undefined) policy.hold_ttl_ms = hold * 60000;
  return Object.fromEntries(Object.entries(policy).filter(([, v]) => v !== undefined));
}

async function renderEvents(nav) {
  const { events } = await api("GET", "/api/events");
  const now = Date.now();
  page(t("admin.events"), `${nav}
    ${events.map((e) => `<section class="card"><h2>${esc(e.name)}</h2>
      <p>${esc(t("phase." + e.phase))}${e.paused ? " · " + esc(t("sale.paused")) : ""} · ${esc(when(e.opens_at_ms))} – ${esc(when(e.closes_at_ms))}</p>
      <p>${e.ticket_types.map((tt) => `${esc(tt.name)}: ${tt.sold}/${tt.capacity}`).join(" · ")}</p>
      <button type="button" data-pause="${e.id}" data-paused="${e.paused}">${esc(t(e.paused ? "admin.resume" : "admin.pause"))}</button>
      <details><summary>${esc(t("admin.editPolicy"))}</summary>
        <form data-policy="${e.id}">${policyFields(`p${e.id}`)}<button type="submit">${esc(t("admin.save"))}</button><p role="status"></p></form>
        <form data-schedule="${e.id}" data-prequeue="${e.prequeue_opens_at_ms}" data-opens="${e.opens_at_ms}" data-closes="${e.closes_at_ms}">
          <label for="s${e.id}-opens">${esc(t("admin.opens"))}</label><input id="s${e.id}-opens" name="opens" type="datetime-local" value="${localInput(e.opens_at_ms)}" required>
          <label for="s${e.id}-closes">${esc(t("admin.closes"))}</label><input id="s${e.id}-closes" name="closes" type="datetime-local" value="${localInput(e.closes_at_ms)}" required>
          <button type="submit">${esc(t("admin.saveSchedule"))}</button><p role="status"></p></form></details>
    </section>`).join("")}
    <form class="card" id="new-event"><h2>${esc(t("admin.newEvent"))}</h2>
      <label for="ne-name">${esc(t("admin.name"))}</label><input id="ne-name" name="name" required>
      <label for="ne-venue">${esc(t("admin.venue"))}</label><input id="ne-venue" name="venue" required>
      <div class="row"><div><label for="ne-opens">${esc(t("admin.opens"))}</label><input id="ne-opens" name="opens" type="datetime-local" value="${localInput(now)}" required></div>
      <div><label for="ne-closes">${esc(t("admin.closes"))}</label><input id="ne-closes" name="closes" type="datetime-local" value="${localInput(now + 7 * 86400000)}" required></div></div>
      <fieldset><legend>${esc(t("admin.ticketType"))}</legend>
        <label for="ne-type">${esc(t("admin.name"))}</label><input id="ne-type" name="type" value="Pista" required>
        <label for="ne-price">${esc(t("admin.priceReais"))}</label><input id="ne-price" name="price" type="number" min="0" step="0.01" value="250" required>
        <label for="ne-capacity">${esc(t("admin.capacity"))}</label><input id="ne-capacity" name="capacity" type="number" min="1" value="1000" required>
        <label for="ne-limit">${esc(t("admin.typeLimit"))}</label><input id="ne-limit" name="limit" type="number" min="1" value="4" required>
      </fieldset>
      ${policyFields("ne", { max_active: 2000, admit_per_second: 500, overadmit_percent: 100, arrival_window_seconds: 10, hold_minutes: 8, per_event_limit: 4, pow_difficulty: 18 })}
      <button type="submit">${esc(t("admin.create"))}</button><p id="new-event-result" role="status"></p></form>`);
  wireOps();
  document.querySelectorAll("[data-pause]").forEach((b) => b.addEventListener("click", async () => {
    const action = b.dataset.paused === "true" ? "resume" : "pause";
    await api("POST", `/api/admin/events/${b.dataset.pause}/${action}`).catch((e) => alert(e.message));
    renderEvents(nav);
  }));
  document.querySelectorAll("[data-policy]").forEach((form) => form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = form.querySelector("[role=status]");
    try { await api("PUT", `/api/admin/events/${form.dataset.policy}/policy`, readPolicy(form)); status.className = "ok"; status.textContent = t("admin.saved"); }
    catch (error) { showError(status, error); }
  }));
  document.querySelectorAll("[data-schedule]").forEach((form) => form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = form.querySelector("[role=status]");
    // A field left as shown keeps its exact instant (the input has minutes
    // only, and an opening that already happened cannot move).
    const instant = (name) => {
      const before = Number(form.dataset[name]);
      const value = form.elements[name].value;
      return value === localInput(before) ? before : new Date(value).getTime();
    };
    const opens = instant("opens");
    const before = Number(form.dataset.opens);
    const prequeue = Number(form.dataset.prequeue);
    const body = { prequeue_opens_at_ms: opens === before ? prequeue : opens - (before - prequeue), opens_at_ms: opens, closes_at_ms: instant("closes") };
    try { await api("PUT", `/api/admin/events/${form.dataset.schedule}/schedule`, body); status.className = "ok"; status.textContent = t("admin.saved"); }
    catch (error) { showError(status, error); }
  }));
  document.getElementById("new-event").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    const opens = new Date(f.opens.value).getTime(), closes = new Date(f.closes.value).getTime();
    const body = {
      name: f.name.value, venue: f.venue.value, opens_at_ms: opens, closes_at_ms: closes, starts_at_ms: closes,
      ticket_types: [{ name: f.type.value, price_cents: Math.round(Number(f.price.value) * 100), capacity: Number(f.capacity.value), limit_per_customer: Number(f.limit.value) }],
      policy: readPolicy(e.target),
    };
    try {
      const event = await api("POST", "/api/admin/events", body);
      sessionStorage.setItem("dashboard-event", String(event.id));
      // The list shows the new event at once; the bar says so.
      await renderEvents(nav);
      const done = document.getElementById("ops-result");
      done.className = "ok"; done.textContent = t("admin.created", { id: event.id });
      announce(done.textContent);
    } catch (error) { showError(document.getElementById("new-event-result"), error); }
  });
}

// ---- audit ----------------------------------------------------------------------

/** An entry's detail for people: for a sale record its typed facts (the
 * ticket types by name, a hold's expiry as a date, an amount in reais),
 * else the text the log keeps. */
function readableDetail(e, events) {
  const types = events.find((ev) => ev.id === e.event)?.ticket_types ?? [];
  const parts = [];
  if (e.items) parts.push(e.items.map((i) => `${i.quantity} × ${types[i.ticket_type]?.name ?? `#${i.ticket_type}`}`).join(", "));
  if (e.until_ms) parts.push(t("audit.until", { when: when(e.until_ms) }));
  if (e.amount_cents !== undefined) parts.push(t("audit.amount", { amount: brl(e.amount_cents) }));
  return parts.length ? parts.join(" · ") : String(e.detail ?? "");
}

async function renderAudit(nav) {
  page(t("admin.audit"), `${nav}<form class="card row" id="audit-filter">
      <div><label for="af-log">${esc(t("audit.log"))}</label><select id="af-log" name="log">
        <option value="audit">${esc(t("audit.log.audit"))}</option><option value="sale">${esc(t("audit.log.sale"))}</option></select></div>
      <div><label for="af-account">${esc(t("audit.accountOrEmail"))}</label><input id="af-account" name="account" type="text" autocomplete="off"></div>
      <div><label for="af-event">${esc(t("audit.event"))}</label><select id="af-event" name="event"><option value="">—</option></select></div>
      <div><button type="submit">${esc(t("audit.filter"))}</button></div></form>
    <div id="audit-rows"></div>`);
  wireOps();
  const { events } = await api("GET", "/api/events");
  document.getElementById("af-event").insertAdjacentHTML("beforeend", events.map((ev) => `<option value="${ev.id}">${esc(ev.name)}</option>`).join(""));
  const eventName = (id) => events.find((ev) => ev.id === id)?.name ?? `${t("audit.event")} ${id}`;
  const load = async () => {
    const f = document.getElementById("audit-filter").elements;
    const query = new URLSearchParams({ limit: "200", log: f.log.value });
    const who = f.account.value.trim();
    if (who) query.set(who.includes("@") ? "email" : "account", who);
    if (f.event.value) query.set("event", f.event.value);
    const { entries, complete } = await api("GET", `/api/admin/audit?${query}`);
    const labels = [t("audit.when"), t("audit.action"), t("audit.who"), t("audit.event"), t("audit.detail"), t("audit.where")];
    const cell = (n, html) => `<td data-label="${esc(labels[n])}">${html}</td>`;
    // A table on a wide screen; on a phone each entry is a card of
    // labelled lines (CSS), with no sideways scrolling.
    document.getElementById("audit-rows").innerHTML = `${complete === false ? `<p role="status">${esc(t("audit.partial"))}</p>` : ""}<table class="stack audit"><thead><tr>
      ${labels.map((l) => `<th scope="col">${esc(l)}</th>`).join("")}</tr></thead>
      <tbody>${entries.map((e) => `<tr data-seq="${e.seq}">${cell(0, esc(when(e.at_ms)))}
        ${cell(1, `${esc(t("act." + e.action, null, e.action))} <code class="muted">${esc(e.action)}</code>`)}
        ${cell(2, `${esc(e.email ?? "")}${e.account !== null && e.account !== undefined ? ` <span class="muted">#${e.account}</span>` : ""}`)}
        ${cell(3, e.event !== null && e.event !== undefined ? esc(eventName(e.event)) : "")}
        ${cell(4, esc(readableDetail(e, events)))}${cell(5, esc(e.ip ?? ""))}</tr>`).join("")}</tbody></table>`;
  };
  document.getElementById("audit-filter").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  await load();
}


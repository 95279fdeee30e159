// The fan's pages: events, login with two factors, registration with
// enrollment, the waiting room (proof of work in a Web Worker, live place
// over server-sent events), the purchase with its hold countdown, and my
// tickets. Hash routes (#/...) so the server serves one page. Every state
// change sends the session's CSRF token; live updates are announced to
// screen readers through one polite live region. Requests and live streams
// ride out a node dying behind the balancer (see "a server that comes and
// goes").
import { t, lang, setLang } from "./i18n.js";
import { renderAdmin } from "./admin.js";
import { calendarFile } from "./calendar.js";
import { legal, TERMS_VERSION } from "./legal.js";

export const state = { me: null, csrf: null, cleanup: [], kept: null };
const main = document.getElementById("main");

/** Escapes text for HTML. */
export function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function brl(cents) {
  return new Intl.NumberFormat(lang() === "en" ? "en-US" : "pt-BR", { style: "currency", currency: "BRL" }).format(cents / 100);
}

export function when(ms) {
  return new Intl.DateTimeFormat(lang() === "en" ? "en-GB" : "pt-BR", { dateStyle: "medium", timeStyle: "short" }).format(new Date(ms));
}

/** Says `text` to screen readers (and nothing visual). */
export function announce(text) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50);
}

// ---- a server that comes and goes ------------------------------------------------
// Behind a balancer a node can die in the middle of a sale, and another
// takes over within a second or two. The page rides that out by itself:
// - a request the server says was not done (503 `not_leader`, refused
//   before anything was proposed; 503 `catching_up`, a node still applying
//   what the fan saw) is sent again after the Retry-After it gave;
// - a request that is safe to repeat (a GET, or one the caller marks
//   `idempotent`: joining the line, leaving it, paying with the attempt's
//   Idempotency-Key, holding a selection) is sent again after a lost answer
//   too: no connection, the balancer's 502/503/504, `outcome_unknown`;
// - for up to RETRY_FOR_MS, then the error is shown as before.
// Anything else (taking single tickets out of the cart is not safe to
// repeat) shows its error at once; the fan's stream then shows what the
// cart really holds.
// A line at the top of the page says "reconnecting" while any of it lasts.
const RETRY_FOR_MS = 20000;
const NOT_DONE = new Set(["not_leader", "catching_up"]);
const ANSWER_LOST = new Set(["network", "http_502", "http_503", "http_504", "outcome_unknown"]);

/** A payment's Idempotency-Key is kept for the next attempt after any of
 * these: the payment may still be under way or done (a retry with the
 * same key can never buy twice); any other answer ends the attempt. */
const KEEP_KEY = new Set([...NOT_DONE, ...ANSWER_LOST, "payment_in_progress", "overloaded", "unavailable"]);

/** What is reconnecting now; the line shows while the set is not empty. */
const troubles = new Set();
function trouble(key, on) {
  if (on) troubles.add(key); else troubles.delete(key);
  const line = document.getElementById("connection");
  if (!line) return;
  const show = troubles.size > 0;
  if (show === !line.hidden) return;
  line.hidden = !show;
  line.textContent = show ? t("net.reconnecting") : "";
}

/** `ms` give or take a fifth, so that the pages a dead node dropped do
 * not all come back in the same instant. */
function jitter(ms) { return ms * (0.8 + Math.random() * 0.4); }

/** The pause before asking again: the server's Retry-After (in seconds)
 * when it gave one, else a second. */
function pauseBefore(retryAfter) {
  const seconds = Number(retryAfter);
  return jitter(Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 5) * 1000 : 1000);
}

/** An API error: status, code and a message for people. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) { super(message); this.status = status; this.code = code; this.retryAfter = retryAfter; }
}

/** One request as the logged-in fan (cookie session, CSRF header). */
async function callOnce(method, path, body, headers) {
  const init = { method, credentials: "same-origin", headers: { ...headers } };
  if (method !== "GET") init.headers["X-CSRF-Token"] = state.csrf ?? "";
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  let response;
  try { response = await fetch(path, init); } catch { throw new ApiError(0, "network", t("error.network")); }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const code = answer?.error?.code ?? "http_" + response.status;
    throw new ApiError(response.status, code, t("code." + code, null, answer?.error?.message ?? code), response.headers.get("Retry-After"));
  }
  if (answer.csrf_token) state.csrf = answer.csrf_token;
  return answer;
}

/** Calls the API as the logged-in fan, asking again while the server is
 * changing hands (see above). `options.idempotent` (GETs are): the request
 * may be repeated after a lost answer; `options.retryFor`: how long to keep
 * asking (0: never ask again, for a caller that polls anyway). */
export async function api(method, path, body, headers = {}, options = {}) {
  const idempotent = options.idempotent ?? method === "GET";
  const deadline = Date.now() + (options.retryFor ?? RETRY_FOR_MS);
  const key = Symbol(path);
  try {
    for (;;) {
      try { return await callOnce(method, path, body, headers); } catch (e) {
        const again = NOT_DONE.has(e.code) || (idempotent && ANSWER_LOST.has(e.code));
        const pause = pauseBefore(e.retryAfter);
        if (!again || Date.now() + pause > deadline) throw e;
        trouble(key, true);
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  } finally { trouble(key, false); }
}

/** A live stream (server-sent events) that keeps itself open while the
 * page shows it. The browser reconnects an EventSource by itself after a
 * dropped connection, but gives up for good on an HTTP error (the
 * balancer's 502/503 while a node dies, a node's 503 while it catches up),
 * so a closed one is opened again after a pause (1 s, doubling to 10 s).
 * The server's first message on every connection is the current state:
 * nothing the page shows is missed. `listeners`: event name → handler. */
export function liveStream(path, listeners) {
  const key = Symbol(path);
  let source = null, stopped = false, timer = null, pause = 1000;
  const open = () => {
    source = new EventSource(path);
    for (const [name, handler] of Object.entries(listeners)) source.addEventListener(name, handler);
    source.addEventListener("open", () => { pause = 1000; trouble(key, false); });
    source.addEventListener("error", () => {
      if (stopped) return;
      trouble(key, true);
      if (source.readyState !== EventSource.CLOSED) return;
      timer = setTimeout(open, jitter(pause));
      pause = Math.min(pause * 2, 10000);
    });
  };
  open();
  state.cleanup.push(() => { stopped = true; clearTimeout(timer); source.close(); trouble(key, false); });
}

/** Loads who is logged in (null when nobody). */
async function loadMe() {
  try {
    const me = await api("GET", "/api/me");
    state.me = me.account; state.holder = me.holder; state.csrf = me.csrf_token; state.twoFactorSession = me.session_two_factor;
  } catch { state.me = null; state.holder = null; state.csrf = null; state.twoFactorSession = false; }
}

function renderNav() {
  const links = [["#/", t("nav.events")]];
  if (state.me) {
    links.push(["#/tickets", t("nav.tickets")]);
    if (state.me.admin) links.push(["#/admin", t("nav.admin")]);
  } else {
    links.push(["#/login", t("nav.login")], ["#/register", t("nav.register")]);
  }
  const nav = document.getElementById("nav");
  nav.innerHTML = links.map(([href, text]) => `<a href="${href}">${esc(text)}</a>`).join("")
    + (state.me ? `<button type="button" class="link" id="logout">${esc(t("nav.logout"))}</button>` : "");
  document.getElementById("logout")?.addEventListener("click", async () => {
    await api("DELETE", "/api/session").catch(() => {});
    state.me = null; state.csrf = null;
    location.hash = "#/login";
    announce(t("auth.loggedOut"));
  });
  nav.setAttribute("aria-label", t("nav.main"));
  const language = document.getElementById("language");
  language.textContent = t("nav.language");
  language.onclick = switchLanguage;
  document.getElementById("skip-link").textContent = t("nav.skip");
}

// ---- switching language without losing anything ------------------------------------
// The page is drawn again in the other language; what the fan typed (a
// card number, an e-mail) and the last messages shown are kept and put
// back, translated, including in parts drawn later (the shop appears when
// the fan's stream answers).

/** Messages shown in the sale's status bar, by slot, as functions of the
 * language (so a switch shows them again, translated). */
const messages = new Map();

async function switchLanguage() {
  const typed = {};
  for (const input of main.querySelectorAll("input[id], select[id]")) {
    // A radio keeps whether it is chosen, not its value.
    if (input.type === "radio") { if (input.checked) typed[input.id] = true; continue; }
    if (input.type !== "password" && input.value !== "") typed[input.id] = input.value;
  }
  state.kept = { hash: location.hash, typed, messages: new Map(messages) };
  setLang(lang() === "en" ? "pt" : "en");
  await route();
  putBack();
}

/** Puts back what was kept by a language switch into what is drawn now;
 * called again when more of the page is drawn. */
export function putBack() {
  const kept = state.kept;
  if (!kept || kept.hash !== location.hash) return;
  for (const [id, value] of Object.entries(kept.typed)) {
    const input = document.getElementById(id);
    if (input?.type === "radio") { input.checked = true; input.dispatchEvent(new Event("change", { bubbles: true })); delete kept.typed[id]; }
    else if (input && input.tagName !== "SELECT") { input.value = value; delete kept.typed[id]; }
  }
  for (const [slot, message] of kept.messages) {
    if (document.getElementById(slot)) { say(slot, message.text, message.kind); kept.messages.delete(slot); }
  }
}

/** Shows `text` (a function of the language) in the element `slot`, with
 * a class (`ok`, `error`, `warning`), remembered for a language switch. */
export function say(slot, text, kind) {
  const el = document.getElementById(slot);
  if (!el) return;
  messages.set(slot, { text, kind });
  const shown = text();
  // The same message again (a refusal shown by this page and then by the
  // fan's stream) is shown once, not flashed or read out twice.
  if (el.textContent === shown && el.className === kind) return;
  el.textContent = shown; el.className = kind;
}

/** Shows a page: a title (focused, for screen readers) and its body. */
export function page(title, html) {
  document.title = `${title} · IngressoJá`;
  main.innerHTML = `<h1 tabindex="-1" id="page-title">${esc(title)}</h1>${html}`;
  document.getElementById("page-title").focus();
}

/** Shows an error in `element`, in the fan's language (again after a
 * language switch when the element has an id). */
export function showError(element, error) {
  const text = () => error?.code ? t("code." + error.code, null, error.message) : (error?.message ?? String(error));
  if (element.id) say(element.id, text, "error");
  else { element.textContent = text(); element.className = "error"; }
}

// ---- events ---------------------------------------------------------------

async function renderEvents() {
  const { events } = await api("GET", "/api/events");
  page(t("events.title"), events.length === 0 ? `<p>${esc(t("events.none"))}</p>` : events.map((e) => `
    <article class="card">
      <h2><a href="#/event/${e.id}">${esc(e.name)}</a></h2>
      <p>${esc(e.venue)} · ${esc(when(e.starts_at_ms))}</p>
      <p>${esc(t("phase." + e.phase))}${e.paused ? " · " + esc(t("sale.paused")) : ""} ·
         ${esc(t("events.from", { price: brl(Math.min(...e.ticket_types.map((tt) => tt.price_cents))) }))}</p>
    </article>`).join(""));
}

function stockRows(event) {
  return event.ticket_types.map((tt) => `
    <tr><th scope="row">${esc(tt.name)}</th><td>${esc(brl(tt.price_cents))}</td>
    <td data-testid="available-${tt.id}">${tt.available > 0 ? esc(t("event.left", { n: tt.available })) : esc(t("event.soldOut"))}</td></tr>`).join("");
}

async function renderEvent(id) {
  const event = await api("GET", `/api/events/${id}`);
  page(event.name, `
    <p>${esc(event.venue)} · ${esc(when(event.starts_at_ms))}</p>
    <p id="event-phase">${esc(t("phase." + event.phase))}</p>
    <table><caption class="sr-only">${esc(t("event.types"))}</caption>
      <thead><tr><th scope="col">${esc(t("event.type"))}</th><th scope="col">${esc(t("event.price"))}</th><th scope="col">${esc(t("event.stock"))}</th></tr></thead>
      <tbody id="stock">${stockRows(event)}</tbody></table>
    ${event.ticket_types.some((tt) => tt.half_price_of !== null) ? `<p class="muted">${esc(t("event.halfPrice"))}</p>` : ""}
    ${event.holder_required ? `<p class="muted">${esc(t("event.holderRequired"))}</p>` : ""}
    <p><a class="button" href="#/event/${id}/sale" id="join-link">${esc(t("event.join"))}</a></p>`);
  // The anti-bot check is solved here, while the fan reads the page, so
  // that joining the line is one request when the sale opens.
  if (state.me && event.phase !== "sold_out" && event.phase !== "ended") prepareProof(id);
  liveStream(`/api/events/${id}/stream`, {
    state: (message) => {
      const live = JSON.parse(message.data);
      document.getElementById("stock").innerHTML = stockRows(live);
      document.getElementById("event-phase").textContent = t("phase." + live.phase) + (live.paused ? " · " + t("sale.paused") : "");
    },
  });
}

// ---- accounts ---------------------------------------------------------------

function credentials() {
  return { email: document.getElementById("email").value, password: document.getElementById("password").value };
}

/** The terms of use or the privacy notice (`which`), in the page's language. */
function renderLegal(which) {
  const text = legal[lang() === "en" ? "en" : "pt"][which];
  page(text.title, `<div class="card legal">${text.sections.map(([title, body]) => `<h2>${esc(title)}</h2><p>${esc(body)}</p>`).join("")}
    <p class="muted">${esc(t("legal.version", { version: TERMS_VERSION }))}</p></div>`);
}

function credentialsForm(id, submit, extra = "") {
  return `<form id="${id}" class="card" novalidate>
    <label for="email">${esc(t("auth.email"))}</label><input id="email" name="email" type="email" autocomplete="email" required>
    <label for="password">${esc(t("auth.password"))}</label><input id="password" name="password" type="password" autocomplete="${id === "register" ? "new-password" : "current-password"}" minlength="10" required>
    ${extra}
    <button type="submit">${esc(submit)}</button><p id="form-error" role="alert"></p></form>`;
}

/** Where the fan was going when they were asked to log in (the line of an
 * event), kept until they are in: through login, or through sign-up,
 * two-factor enrollment and the recovery codes. */
function pendingStep() { return sessionStorage.getItem("after-login"); }

/** A line saying why the fan is asked to log in, when they were on their
 * way into a line. */
function whyLogin() {
  return /^#\/event\/\d+\/sale$/.test(pendingStep() ?? "") ? `<p class="notice" data-testid="why-login">${esc(t("auth.loginToJoin"))}</p>` : "";
}

function renderLogin() {
  page(t("auth.loginTitle"), whyLogin() + credentialsForm("login", t("auth.login"))
    + `<p><a class="tap" href="#/register">${esc(t("auth.noAccount"))}</a></p><p><a class="tap" href="#/forgot">${esc(t("auth.forgot"))}</a></p>`);
  document.getElementById("login").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const error = document.getElementById("form-error");
    try {
      const answer = await api("POST", "/api/session", credentials());
      if (answer.stage === "two_factor") return renderCodeStep();
      await finishLogin();
    } catch (e) { showError(error, e); }
  });
}

/** Asks for a reset link by e-mail. The answer is the same whether or not
 * the address has an account. */
function renderForgot() {
  page(t("forgot.title"), `<form id="forgot" class="card" novalidate><p>${esc(t("forgot.help"))}</p>
    <label for="email">${esc(t("auth.email"))}</label><input id="email" type="email" autocomplete="email" required>
    <button type="submit">${esc(t("forgot.send"))}</button><p id="form-error" role="alert"></p></form>`);
  document.getElementById("forgot").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const button = submit.target.querySelector("button");
    button.disabled = true;
    try {
      await api("POST", "/api/password-reset", { email: document.getElementById("email").value }, {}, { idempotent: true });
      say("form-error", () => t("forgot.sent"), "ok");
    } catch (e) { showError(document.getElementById("form-error"), e); } finally { button.disabled = false; }
  });
}

/** A reset link's page: a new password for the token in the address. */
function renderReset(token) {
  page(t("reset.title"), `<form id="reset" class="card" novalidate>
    <label for="password">${esc(t("reset.password"))}</label><input id="password" type="password" autocomplete="new-password" minlength="10" required>
    <p class="muted">${esc(t("auth.passwordRule"))}</p>
    <button type="submit">${esc(t("reset.save"))}</button><p id="form-error" role="alert"></p></form>`);
  document.getElementById("reset").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    try {
      await api("POST", "/api/password-reset/confirm", { token, new_password: document.getElementById("password").value });
      page(t("reset.title"), `<p class="ok" role="status" data-testid="reset-done">${esc(t("reset.done"))}</p>
        <p><a class="button" href="#/login">${esc(t("auth.login"))}</a></p>`);
    } catch (e) {
      showError(document.getElementById("form-error"), e);
      if (e.code === "invalid_reset_token") {
        document.getElementById("form-error").insertAdjacentHTML("afterend", `<p><a class="tap" href="#/forgot">${esc(t("reset.again"))}</a></p>`);
      }
    }
  });
}

function renderCodeStep() {
  page(t("auth.codeTitle"), `<form id="code-form" class="card" novalidate>
    <p>${esc(t("auth.codeHelp"))}</p>
    <label for="code">${esc(t("auth.code"))}</label>
    <input id="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required>
    <button type="submit">${esc(t("auth.verify"))}</button>
    <button type="button" class="link" id="use-recovery">${esc(t("auth.useRecovery"))}</button>
    <p id="form-error" role="alert"></p></form>`);
  let recovery = false;
  document.getElementById("use-recovery").addEventListener("click", () => {
    recovery = true;
    const input = document.getElementById("code");
    input.removeAttribute("pattern"); input.removeAttribute("maxlength"); input.inputMode = "text";
    document.querySelector("label[for=code]").textContent = t("auth.recoveryCode");
    input.focus();
  });
  document.getElementById("code-form").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const value = document.getElementById("code").value.trim();
    try {
      await api("POST", "/api/session/code", recovery ? { recovery_code: value } : { code: value });
      await finishLogin();
    } catch (e) {
      // A code just used (at enrollment, or a moment ago) is refused until
      // the app shows the next one: say so, not only "incorrect".
      if (e.code === "invalid_code" && !recovery) say("form-error", () => `${t("code.invalid_code")} ${t("auth.codeWait")}`, "error");
      else showError(document.getElementById("form-error"), e);
    }
  });
}

async function finishLogin() {
  await loadMe();
  announce(t("auth.loggedIn"));
  const back = sessionStorage.getItem("after-login");
  sessionStorage.removeItem("after-login");
  location.hash = back ?? "#/";
  route();
}

function renderRegister() {
  // Consent is asked for, never assumed (LGPD): a box to tick, with the
  // texts one tap away (they open in a new tab, keeping what was typed).
  const consent = `<p class="muted">${esc(t("auth.passwordRule"))}</p>
    <div class="consent"><input type="checkbox" id="accept-terms" required>
      <label for="accept-terms">${esc(t("auth.acceptBefore"))} <a href="#/terms" target="_blank" rel="noopener">${esc(t("legal.terms"))}</a>
      ${esc(t("auth.acceptAnd"))} <a href="#/privacy" target="_blank" rel="noopener">${esc(t("legal.privacy"))}</a></label></div>`;
  page(t("auth.registerTitle"), whyLogin() + credentialsForm("register", t("auth.register"), consent));
  document.getElementById("register").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    if (!document.getElementById("accept-terms").checked) {
      say("form-error", () => t("code.terms_required"), "error");
      document.getElementById("accept-terms").focus();
      return;
    }
    try {
      await api("POST", "/api/accounts", { ...credentials(), accept_terms: true });
      await loadMe();
      renderNav();
      await renderEnroll();
    } catch (e) { showError(document.getElementById("form-error"), e); }
  });
}

/** Two-factor enrollment: QR code, secret, first code, recovery codes once. */
export async function renderEnroll() {
  const enrollment = await api("POST", "/api/me/two-factor");
  page(t("enroll.title"), `<div class="card">
    <p data-testid="why-two-factor">${esc(t("enroll.why"))}</p>
    <p>${esc(t("enroll.scan"))}</p>
    <div class="qr" role="img" aria-label="${esc(t("enroll.qrLabel"))}">${enrollment.qr_svg}</div>
    <p>${esc(t("enroll.orType"))}</p><p class="secret" data-testid="totp-secret">${esc(enrollment.secret)}</p>
    <form id="confirm" novalidate>
      <label for="code">${esc(t("auth.code"))}</label>
      <input id="code" inputmode="numeric" autocomplete="one-time-code" maxlength="6" required>
      <button type="submit">${esc(t("enroll.confirm"))}</button><p id="form-error" role="alert"></p>
    </form></div>`);
  document.getElementById("confirm").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    try {
      const confirmed = await api("POST", "/api/me/two-factor/confirm", { code: document.getElementById("code").value.trim() });
      await loadMe();
      const codes = confirmed.recovery_codes;
      const file = URL.createObjectURL(new Blob([`${t("enroll.fileHeader", { email: state.me?.email ?? "" })}\r\n\r\n${codes.join("\r\n")}\r\n`], { type: "text/plain" }));
      state.cleanup.push(() => URL.revokeObjectURL(file));
      page(t("enroll.codesTitle"), `<div class="card"><p class="warning">${esc(t("enroll.codesOnce"))}</p>
        <ol class="codes" data-testid="recovery-codes">${codes.map((c) => `<li>${esc(c)}</li>`).join("")}</ol>
        <button type="button" class="secondary" id="copy-codes">${esc(t("enroll.copy"))}</button>
        <a class="button secondary" href="${file}" download="ingressoja-recovery-codes.txt" id="download-codes">${esc(t("enroll.download"))}</a>
        <p id="copy-result" role="status"></p>
        <a class="button" href="${esc(pendingStep() ?? "#/")}" id="codes-saved">${esc(t("enroll.saved"))}</a></div>`);
      document.getElementById("copy-codes").addEventListener("click", async () => {
        try { await navigator.clipboard.writeText(codes.join("\n")); say("copy-result", () => t("enroll.copied"), "ok"); }
        catch { say("copy-result", () => t("enroll.copyFailed"), "warning"); }
      });
      // Back to the step the fan was on (the line they were joining).
      document.getElementById("codes-saved").addEventListener("click", () => sessionStorage.removeItem("after-login"));
      renderNav();
    } catch (e) { showError(document.getElementById("form-error"), e); }
  });
}

// ---- waiting room and purchase ------------------------------------------------

// A join's proof of work, solved ahead and kept for this tab until shortly
// before the challenge expires (the server accepts it for five minutes).
const PROOF_MARGIN_MS = 30_000;

async function solveChallenge(id, onProgress = () => {}) {
  const { challenge, difficulty, expires_at_ms: expires } = await api("GET", `/api/events/${id}/challenge`);
  if (difficulty === 0) return { body: undefined, expires };
  const solution = await solveInWorker(challenge, difficulty, (tried) => onProgress(Math.min(tried / 2 ** difficulty, 0.99)));
  return { body: { challenge, solution }, expires };
}

/** Solves the join's challenge in the background and keeps it (once per
 * tab and event, renewed before it expires); failures are silent: the
 * sale page solves one itself. */
async function prepareProof(id) {
  const key = `proof:${id}`;
  const kept = JSON.parse(sessionStorage.getItem(key) ?? "null");
  if (kept && kept.expires - PROOF_MARGIN_MS > Date.now()) return;
  try {
    const proof = await solveChallenge(id);
    sessionStorage.setItem(key, JSON.stringify(proof));
  } catch { /* the sale page will solve one */ }
}

/** The kept proof, if still good; it is used once. */
function takeProof(id) {
  const key = `proof:${id}`;
  const kept = JSON.parse(sessionStorage.getItem(key) ?? "null");
  sessionStorage.removeItem(key);
  return kept && kept.expires - PROOF_MARGIN_MS > Date.now() ? kept : null;
}

function solveInWorker(challenge, difficulty, onProgress) {
  return new Promise((resolve, reject) => {
    const worker = new Worker("/pow-worker.js", { type: "module" });
    state.cleanup.push(() => worker.terminate());
    worker.onmessage = ({ data }) => {
      if (data.solution !== undefined) { worker.terminate(); resolve(data.solution); }
      else onProgress(data.tried);
    };
    worker.onerror = (e) => { worker.terminate(); reject(e); };
    worker.postMessage({ challenge, difficulty });
  });
}

/** A wait for people: seconds under a minute, then rounded minutes or hours. */
export function duration(ms) {
  const seconds = Math.ceil(ms / 1000);
  if (seconds < 60) return t("duration.s", { n: seconds });
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return t("duration.min", { n: minutes });
  return t("duration.h", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

function waitingHtml(queue) {
  switch (queue.status) {
    case "prequeue": return `<p>${esc(t("wait.prequeue"))}</p><p>${esc(t("wait.prequeueCount", { n: queue.prequeue_len }))}</p>`;
    case "drawing": {
      const left = Math.max(0, queue.draw_at_ms - Date.now());
      return `<p data-testid="drawing">${esc(t("wait.drawing", { d: duration(left) }))}</p>
        <p>${esc(t("wait.inDraw", { n: queue.in_draw }))}</p>
        <p>${esc(queue.people_ahead === 0 ? t("wait.drawFirst") : t("wait.drawAhead", { n: queue.people_ahead }))}</p>`;
    }
    case "waiting": {
      // No estimate (null) when nobody is ahead (the wait is for a free
      // place) or when the line has not moved for a minute.
      const next = queue.people_ahead === 0;
      const eta = next ? ""
        : queue.estimated_wait_ms === null ? `<p class="warning" data-testid="stalled">${esc(t("wait.stalled"))}</p>`
        : `<p data-testid="eta">${esc(t("wait.eta", { d: duration(queue.estimated_wait_ms) }))}</p>`;
      return `<p class="big" data-testid="position">${esc(t("wait.position", { n: queue.position }))}</p>
      <p data-testid="ahead">${esc(next ? t("wait.next") : t("wait.ahead", { n: queue.people_ahead }))}</p>
      ${eta}`;
    }
    case "closed": return `<p class="error" data-testid="closed">${esc(t(queue.reason === "sold_out" ? "sale.soldOut" : "sale.ended"))}</p>`;
    case "turn_over": return `<p class="warning">${esc(t("wait.turnOver"))}</p>`;
    case "left": return `<p class="warning" data-testid="left">${esc(t("wait.left"))}</p>`;
    default: return "";
  }
}

async function renderSale(id) {
  if (!state.me) { sessionStorage.setItem("after-login", location.hash); location.hash = "#/login"; return; }
  const event = await api("GET", `/api/events/${id}`);
  page(event.name, `<div class="sale-bar" id="sale-bar">
      <p class="countdown" id="countdown" aria-live="off"></p><p id="bar-total" class="bar-total"></p>
      <p id="cart-notice" role="status"></p><p id="hold-warning" role="alert"></p></div>
    <div id="paused" role="status"></div><section class="card" id="waiting" aria-live="polite"></section>
    <section id="shop" hidden></section><p id="sale-error" role="alert"></p>`);
  const waiting = document.getElementById("waiting");
  const saleError = document.getElementById("sale-error");
  // A sale with named holders: the name and CPF first, here, so that the
  // fan is never stopped at the cart with the clock running.
  if (event.holder_required && !state.holder && !(await askHolder(waiting))) return;
  // With a proof solved on the event page, joining is one request (a fan
  // already in line gets their status back from it too).
  let queue;
  try {
    const kept = takeProof(id);
    if (kept) {
      try { queue = await api("POST", `/api/events/${id}/queue`, kept.body, {}, { idempotent: true }); }
      catch (e) { if (!String(e.code).startsWith("proof_of_work")) throw e; }
    }
    queue ??= await api("GET", `/api/events/${id}/queue`);
    if (queue.status === "not_joined") {
      waiting.innerHTML = `<p>${esc(t("pow.preparing"))}</p><progress id="pow-progress" max="1" value="0" aria-label="${esc(t("pow.progress"))}"></progress>`;
      const { body } = await solveChallenge(id, (done) => { document.getElementById("pow-progress").value = done; });
      queue = await api("POST", `/api/events/${id}/queue`, body, {}, { idempotent: true });
    }
    if (queue.status !== "not_joined") announce(t("wait.joined"));
  } catch (e) { showError(saleError, e); waiting.innerHTML = ""; return; }
  const shop = new Shop(id, event);
  const show = (status) => {
    queue = status.queue ?? queue;
    // After a purchase the turn ends (the limit reached, or the page said
    // it is done): the confirmation stays, not "your turn is over".
    if (shop.bought) { waiting.hidden = true; return; }
    if (queue.status === "shopping") {
      waiting.hidden = true; shop.open(status.cart, queue.owned);
    } else {
      waiting.hidden = false; waiting.innerHTML = waitingHtml(queue); shop.close();
      if (["waiting", "prequeue", "drawing"].includes(queue.status)) {
        // Giving up the place: it goes to the next in line instead of being
        // held for a fan who is gone.
        const leave = document.createElement("button");
        leave.type = "button"; leave.className = "secondary"; leave.textContent = t("wait.leave");
        leave.addEventListener("click", async () => {
          if (!confirm(t("wait.leaveConfirm"))) return;
          try { show({ queue: await api("DELETE", `/api/events/${id}/queue`, undefined, {}, { idempotent: true }) }); announce(t("wait.left")); }
          catch (e) { showError(saleError, e); }
        });
        waiting.append(leave);
      }
    }
  };
  show({ queue });
  liveStream(`/api/events/${id}/me/stream`, {
    status: (m) => { show(JSON.parse(m.data)); shop.checkPix(); },
    // An order placed without this page asking (a Pix charge paid in the
    // bank's app): the same checkout again answers with it.
    order_confirmed: () => shop.checkPix(),
    admitted: () => announce(t("wait.admitted")),
    expiring_soon: () => shop.notice(() => t("cart.expiringSoon"), "warning", "hold-warning"),
    hold_expired: () => shop.expired(),
    // A refusal of a request made from this or another of the fan's pages,
    // in the page's language.
    rejected: (m) => {
      const refusal = JSON.parse(m.data);
      shop.refused(refusal);
    },
  });
  liveStream(`/api/events/${id}/stream`, {
    state: (m) => {
      const live = JSON.parse(m.data);
      document.getElementById("paused").innerHTML = live.paused ? `<p class="warning" data-testid="paused">${esc(t("sale.paused"))}</p>` : "";
      shop.stock(live);
    },
  });
}

/** Whether `cpf` (digits, dots and dash) has the right check digits. */
export function cpfValid(cpf) {
  const d = cpf.replace(/[.\-\s]/g, "");
  if (!/^\d{11}$/.test(d) || /^(\d)\1{10}$/.test(d)) return false;
  const check = (len) => {
    let sum = 0;
    for (let i = 0; i < len; i++) sum += Number(d[i]) * (len + 1 - i);
    const rest = (sum * 10) % 11;
    return rest === 10 ? 0 : rest;
  };
  return check(9) === Number(d[9]) && check(10) === Number(d[10]);
}

/** Asks for the ticket holder (full name and CPF) in `where`; true once
 * saved, false if the fan left the page. The CPF's check digits are
 * checked here first, so a typo is told at once. */
function askHolder(where) {
  where.innerHTML = `<form id="holder-form" novalidate><h2>${esc(t("holder.title"))}</h2>
    <p class="muted">${esc(t("holder.why"))}</p>
    <label for="holder-name">${esc(t("holder.name"))}</label><input id="holder-name" autocomplete="name" required maxlength="120">
    <label for="holder-cpf">${esc(t("holder.cpf"))}</label><input id="holder-cpf" inputmode="numeric" autocomplete="off" placeholder="000.000.000-00" required maxlength="14">
    <p class="muted">${esc(t("holder.privacy"))}</p>
    <button type="submit">${esc(t("holder.save"))}</button><p id="holder-error" role="alert"></p></form>`;
  putBack();
  return new Promise((resolve) => {
    state.cleanup.push(() => resolve(false));
    const form = document.getElementById("holder-form");
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const name = document.getElementById("holder-name").value;
      const cpf = document.getElementById("holder-cpf").value;
      if (!cpfValid(cpf)) { say("holder-error", () => t("code.invalid_cpf"), "error"); document.getElementById("holder-cpf").focus(); return; }
      try {
        const saved = await api("PUT", "/api/me/holder", { name, cpf }, {}, { idempotent: true });
        state.holder = saved.holder;
        where.innerHTML = "";
        resolve(true);
      } catch (error) { showError(document.getElementById("holder-error"), error); }
    });
  });
}

/** The purchase panel: types and quantities (no more than the limits
 * leave the fan), the cart, and payment. What happened and how long the
 * hold lasts are in the status bar at the top of the page (sticky: in
 * view while the fan types the card), never below the fold. */
class Shop {
  constructor(id, event) { this.id = id; this.event = event; this.el = document.getElementById("shop"); this.timer = null; this.built = false;
    this.owned = []; this.available = new Map(); this.held = new Map();
  }

  open(cart, owned) {
    if (!this.built) this.build();
    this.el.hidden = false;
    if (owned) this.offer(owned);
    // The first cart seen (on a reload, the stream's) sets the boxes too,
    // unless the fan already chose: on a slow phone the stream's first
    // status (an empty cart) can arrive after the shop was drawn from the
    // join's answer and a quantity picked, and must not reset it.
    if (cart) { this.showCart(cart, { boxes: !this.cartSeen && !this.chosen }); this.cartSeen = true; }
    // Back from the bank's app (a phone may have reloaded the page): the
    // charge this hold already has, or its order.
    if (!this.resumed && cart?.items.length && sessionStorage.getItem(this.pixSlot())) { this.resumed = true; this.resumePix(); }
  }

  close() { this.el.hidden = true; }

  build() {
    this.built = true;
    this.el.innerHTML = `<div class="card"><h2>${esc(t("shop.title"))}</h2><p class="muted" id="limit-hint"></p>
      <form id="add-form">${this.event.ticket_types.map((tt) => `
        <label for="qty-${tt.id}">${esc(tt.name)}${tt.half_price_of !== null && !/meia/i.test(tt.name) ? ` (${esc(t("shop.half"))})` : ""} · ${esc(brl(tt.price_cents))} <span class="muted" id="left-${tt.id}"></span></label>
        <select id="qty-${tt.id}" data-type="${tt.id}"></select>`).join("")}
        <div class="consent" id="half-box" hidden><input type="checkbox" id="half-declared"><label for="half-declared">${esc(t("shop.halfDeclare"))}</label></div>
        <button type="submit">${esc(t("shop.add"))}</button></form></div>
      <div class="card" id="cart" aria-labelledby="cart-title"><h2 id="cart-title">${esc(t("cart.title"))}</h2><div id="cart-body"></div></div>
      <form class="card" id="pay-form" novalidate><h2>${esc(t("pay.title"))}</h2>
        <fieldset class="methods"><legend>${esc(t("pay.method"))}</legend>
          <label class="method" for="method-pix"><input type="radio" name="method" id="method-pix" value="pix" checked> ${esc(t("pay.pix"))}</label>
          <label class="method" for="method-card"><input type="radio" name="method" id="method-card" value="card"> ${esc(t("pay.cardMethod"))}</label>
        </fieldset>
        <div id="card-fields" hidden><label for="card">${esc(t("pay.card"))}</label><input id="card" inputmode="numeric" autocomplete="cc-number" required>
        <p class="muted">${esc(t("pay.testCards"))}</p></div>
        <p class="muted" id="pix-about">${esc(t("pay.pixAbout"))}</p>
        <button type="submit" id="pay">${esc(t("pay.pixButton"))}</button><p id="pay-result" class="muted"></p>
        <div id="pix-box" hidden></div></form>`;
    document.getElementById("add-form").addEventListener("submit", (e) => { e.preventDefault(); this.add(); });
    document.getElementById("add-form").addEventListener("change", () => { this.chosen = true; this.cap(); this.halfBox(); });
    document.getElementById("pay-form").addEventListener("submit", (e) => { e.preventDefault(); this.pay(); });
    document.querySelector("#pay-form .methods").addEventListener("change", () => this.method());
    this.method();
    this.offer([]);
    this.stock(this.event);
    putBack();
  }

  /** Whether the selection has meia-entrada tickets. */
  wantsHalf() {
    return [...document.querySelectorAll("#add-form select")]
      .some((s) => Number(s.value) > 0 && this.event.ticket_types[Number(s.dataset.type)]?.half_price_of !== null);
  }

  /** The declaration of the right to meia-entrada, shown while the
   * selection has some. */
  halfBox() { const box = document.getElementById("half-box"); if (box) box.hidden = !this.wantsHalf(); }

  /** How many more the fan may take: of each type, and in all. */
  room() {
    const owned = (type) => this.owned.find((i) => i.ticket_type === type)?.quantity ?? 0;
    const total = this.owned.reduce((sum, i) => sum + i.quantity, 0);
    const inAll = Math.max(0, this.event.limit_per_customer - total);
    return { total, inAll, of: (tt) => Math.max(0, Math.min(tt.limit_per_customer - owned(tt.id), inAll)) };
  }

  /** What the fan already bought changed (or is first known): the boxes
   * and the hint follow. */
  offer(owned) {
    this.owned = owned;
    this.cap();
    const room = this.room();
    const hint = [t("shop.limit", { n: this.event.limit_per_customer })];
    if (room.total > 0) hint.push(t("shop.owned", { n: room.total }), room.inAll > 0 ? t("shop.canTake", { n: room.inAll }) : t("shop.noMore"));
    if (room.inAll > 0) hint.push(t("shop.selectionHint"));
    document.getElementById("limit-hint").textContent = hint.join(" ");
    document.querySelector("#add-form button[type=submit]").disabled = room.inAll === 0;
  }

  /** The boxes offer only selections the fan can take: within the limits
   * per type and per event (counting what they bought already and what
   * the other boxes say) and within the stock left (plus what they hold
   * of it). Asked again whenever one of those changes; `wanted(type)`:
   * what the boxes should say (else what they say now). */
  cap(wanted = null) {
    const room = this.room();
    const selects = [...document.querySelectorAll("#add-form select")];
    const chosen = selects.map((s) => (wanted ? wanted(Number(s.dataset.type)) : Number(s.value || 0)));
    // Each box alone: its type's limit and stock.
    const alone = selects.map((select) => {
      const type = Number(select.dataset.type);
      const stock = (this.available.get(type) ?? Infinity) + (this.held.get(type) ?? 0);
      return Math.max(0, Math.min(room.of(this.event.ticket_types[type]), stock));
    });
    // Together: what the others say counts against the limit in all.
    const others = (i) => chosen.reduce((sum, n, j) => (j === i ? sum : sum + n), 0);
    chosen.forEach((n, i) => { chosen[i] = Math.min(n, alone[i]); });
    chosen.forEach((n, i) => { chosen[i] = Math.max(0, Math.min(n, room.inAll - others(i))); });
    selects.forEach((select, i) => {
      const max = Math.max(0, Math.min(alone[i], room.inAll - others(i)));
      if (select.options.length !== max + 1) {
        select.innerHTML = Array.from({ length: max + 1 }, (_, n) => `<option value="${n}">${n}</option>`).join("");
      }
      select.value = String(chosen[i]);
    });
  }

  stock(live) {
    for (const tt of live.ticket_types) {
      this.available.set(tt.id, tt.available);
      const left = document.getElementById(`left-${tt.id}`);
      if (left) left.textContent = tt.available > 0 ? t("event.left", { n: tt.available }) : t("event.soldOut");
    }
    if (this.built) this.cap();
  }

  /** A line about the last action (`cart-notice`) or, apart so that one
   * never hides the other, about the hold's time (`hold-warning`), in the
   * status bar. `text`: a function of the language. */
  notice(text, kind, slot = "cart-notice") { say(slot, text, kind); }

  /** A refusal, in the fan's language; a limit says what is left. */
  refused(e) {
    const room = this.room();
    this.notice(() => {
      const text = t("code." + e.code, null, e.message);
      return e.code === "limit_reached" ? `${text} ${room.inAll > 0 ? t("shop.selectionMax", { n: room.inAll }) : t("shop.noMore")}` : text;
    }, "error");
  }

  /** Holds exactly what the boxes say (PUT: the hold becomes the
   * selection), so a double tap or a retry holds once; the button is off
   * while it is asked. */
  async add() {
    const items = [...document.querySelectorAll("#add-form select")]
      .map((s) => ({ ticket_type: Number(s.dataset.type), quantity: Number(s.value) }));
    if (items.every((i) => i.quantity === 0) && !this.holding) return this.notice(() => t("shop.pickSome"), "error");
    const declared = document.getElementById("half-declared").checked;
    if (this.wantsHalf() && !declared) {
      document.getElementById("half-declared").focus();
      return this.notice(() => t("code.half_price_declaration_required"), "error");
    }
    const button = document.querySelector("#add-form button[type=submit]");
    button.disabled = true;
    try {
      this.showCart(await api("PUT", `/api/events/${this.id}/cart`, { items, half_price_declared: declared }, {}, { idempotent: true }), { boxes: true });
      this.notice(() => t("cart.held"), "ok");
    } catch (e) { this.refused(e); } finally { button.disabled = this.room().inAll === 0; }
  }

  async remove(type, quantity) {
    try { this.showCart(await api("DELETE", `/api/events/${this.id}/cart/items`, { items: [{ ticket_type: type, quantity }] }), { boxes: true }); }
    catch (e) { this.refused(e); }
  }

  /** Shows the cart; `boxes`: the quantity boxes take what is held too
   * (after the fan's own change, not on every live update, which could
   * overwrite a choice being made). */
  showCart(cart, { boxes = false } = {}) {
    const body = document.getElementById("cart-body");
    if (!body) return;
    this.holding = cart.items.length > 0;
    this.held = new Map(cart.items.map((i) => [i.ticket_type, i.quantity]));
    if (boxes) { this.cap((type) => this.held.get(type) ?? 0); this.halfBox(); }
    const name = (type) => this.event.ticket_types[type]?.name ?? type;
    body.innerHTML = cart.items.length === 0 ? `<p>${esc(t("cart.empty"))}</p>` : `<ul class="cart-items">${cart.items.map((i) => `
      <li><span>${i.quantity} × ${esc(name(i.ticket_type))}</span>
      <button type="button" class="secondary" data-remove="${i.ticket_type}" data-quantity="${i.quantity}">${esc(t("cart.remove"))}</button></li>`).join("")}</ul>
      <p>${esc(t("cart.total"))}: <strong data-testid="total">${esc(brl(cart.total_cents))}</strong></p>`;
    body.querySelectorAll("[data-remove]").forEach((b) => { b.disabled = Boolean(this.pix); b.addEventListener("click", () => this.remove(Number(b.dataset.remove), Number(b.dataset.quantity))); });
    document.getElementById("bar-total").textContent = cart.items.length === 0 ? "" : brl(cart.total_cents);
    this.countdown(cart.expires_at_ms);
  }

  countdown(expiresAt) {
    clearInterval(this.timer);
    const el = document.getElementById("countdown");
    if (!expiresAt) { el.textContent = ""; return; }
    const tick = () => {
      const left = Math.max(0, expiresAt - Date.now());
      const m = Math.floor(left / 60000), s = Math.floor((left % 60000) / 1000);
      el.textContent = t("cart.countdown", { time: `${m}:${String(s).padStart(2, "0")}` });
      el.classList.toggle("urgent", left < 60000);
      if (left === 0) clearInterval(this.timer);
    };
    tick();
    this.timer = setInterval(tick, 1000);
    state.cleanup.push(() => clearInterval(this.timer));
  }

  expired() {
    // After a purchase the shop is the confirmation: nothing to empty.
    if (this.bought) return;
    clearInterval(this.timer);
    document.getElementById("countdown").textContent = "";
    document.getElementById("bar-total").textContent = "";
    document.getElementById("cart-body").innerHTML = `<p>${esc(t("cart.empty"))}</p>`;
    if (this.pix) {
      // The charge lapsed with the hold: nothing can be paid or charged.
      this.endPix();
      this.notice(() => t("pix.expired"), "error");
    }
    this.notice(() => t("cart.expired"), "error", "hold-warning");
  }

  /** The chosen way to pay: the card's fields only for a card. Each way
   * has its own Idempotency-Key (`key`, `pixKey`): a charge awaiting in
   * the bank's app stays payable while the fan tries a card, and
   * whichever is paid first becomes the order (the other is given back). */
  method() {
    const pix = document.getElementById("method-pix").checked;
    this.paying = pix ? "pix" : "card";
    document.getElementById("card-fields").hidden = pix;
    const button = document.getElementById("pay");
    button.textContent = t(pix ? "pay.pixButton" : "pay.pay");
    button.hidden = pix && Boolean(this.pix);
    document.getElementById("pix-about").hidden = !pix || Boolean(this.pix);
    const box = document.getElementById("pix-box");
    if (box) box.hidden = !(pix && this.pix);
  }

  pixSlot() { return `ingressoja.pix.${this.id}`; }

  async pay() {
    if (this.paying === "pix") return this.payPix();
    const result = document.getElementById("pay-result");
    const button = document.getElementById("pay");
    // One key per attempt: a retry after a network error reuses it and can
    // never buy twice.
    this.key = this.key ?? crypto.randomUUID();
    button.disabled = true;
    result.textContent = t("pay.paying");
    this.notice(() => t("pay.paying"), "muted");
    try {
      const order = await this.checkout({ card_number: document.getElementById("card").value });
      this.confirmed(order);
    } catch (e) {
      // The same key again after anything that may not have been the end of
      // this payment (a lost answer, a busy server): it can never buy twice.
      if (!KEEP_KEY.has(e.code)) this.key = null;
      result.textContent = "";
      this.refused(e);
    } finally { button.disabled = false; }
  }

  /** The order is placed: the confirmation, with its number, where the
   * fan is looking (the status bar, and the panel that replaces the shop). */
  confirmed(order) {
    clearInterval(this.timer);
    this.endPix();
    this.bought = true;
    this.el.hidden = false;
    // The turn may have ended already (the stream can be quicker than
    // this answer): its "turn over" gives way to the confirmation.
    const waiting = document.getElementById("waiting");
    if (waiting) waiting.hidden = true;
    document.getElementById("countdown").textContent = "";
    document.getElementById("bar-total").textContent = "";
    say("hold-warning", () => "", "");
    this.notice(() => `${t("pay.confirmed")} ${t("pay.orderNumber", { number: order.number })}`, "ok");
    this.el.innerHTML = `<div class="card"><p class="ok big" data-testid="confirmed">${esc(t("pay.confirmed"))}</p>
      <p data-testid="order-number" class="order-number">${esc(t("pay.orderNumber", { number: order.number }))}</p>
      <p>${esc(t("pay.orderTotal", { n: order.tickets.length, total: brl(order.total_cents) }))}</p>
      <p class="muted">${esc(t("pay.receiptHint"))}</p>
      <a class="button" href="#/tickets">${esc(t("nav.tickets"))}</a></div>`;
    this.el.scrollIntoView({ block: "nearest" });
    // Done: the turn's place goes to the next in line now rather than
    // when the admission window ends (the engine ends it by itself when
    // the limit is reached; this covers a purchase below it).
    api("DELETE", `/api/events/${this.id}/queue`).catch(() => {});
  }

  /** Asks for a Pix charge for the hold (the same one again for the same
   * key: a double tap or a reload shows the charge already issued). */
  async payPix() {
    const button = document.getElementById("pay");
    this.pixKey = this.pixKey ?? crypto.randomUUID();
    sessionStorage.setItem(this.pixSlot(), this.pixKey);
    button.disabled = true;
    try { this.pixAnswer(await this.checkout({ method: "pix" }, this.pixKey)); } catch (e) {
      if (!KEEP_KEY.has(e.code)) { this.pixKey = null; sessionStorage.removeItem(this.pixSlot()); }
      this.refused(e);
    } finally { button.disabled = false; }
  }

  /** A reloaded page with a Pix attempt kept: its charge or its order. */
  async resumePix() {
    this.pixKey = sessionStorage.getItem(this.pixSlot());
    try { this.pixAnswer(await api("POST", `/api/events/${this.id}/checkout`, { method: "pix" }, { "Idempotency-Key": this.pixKey }, { idempotent: true })); }
    catch { this.pixKey = null; sessionStorage.removeItem(this.pixSlot()); }
  }

  /** Whether the awaited Pix was paid: asked when the stream says an
   * order was placed, when it (re)connects, and every few seconds while a
   * charge awaits (a missed message cannot leave the fan waiting). */
  async checkPix() {
    if (!this.pix || this.checking) return;
    this.checking = true;
    try { this.pixAnswer(await api("POST", `/api/events/${this.id}/checkout`, { method: "pix" }, { "Idempotency-Key": this.pixKey }, { idempotent: true })); }
    catch (e) { if (e.code === "no_hold" && this.pix) this.expired(); }
    finally { this.checking = false; }
  }

  pixAnswer(answer) {
    if (answer.pix) this.showPix(answer.pix); else this.confirmed(answer);
  }

  /** The charge: amount, QR code, the code to copy, what to do, and a
   * line in the status bar saying the page waits for the bank. */
  showPix(charge) {
    const first = !this.pix;
    this.pix = charge;
    const box = document.getElementById("pix-box");
    if (!box) return;
    if (first) {
      // On a phone the code is pasted, not scanned: it and its button come
      // first; the QR code is for paying from another device.
      box.innerHTML = `<h3>${esc(t("pix.title", { amount: brl(charge.amount_cents) }))}</h3>
        <label for="pix-code">${esc(t("pix.code"))}</label>
        <textarea id="pix-code" readonly rows="4" spellcheck="false">${esc(charge.code)}</textarea>
        <button type="button" id="pix-copy">${esc(t("pix.copy"))}</button>
        <ol class="pix-steps"><li>${esc(t("pix.step1"))}</li><li>${esc(t("pix.step2"))}</li><li>${esc(t("pix.step3"))}</li></ol>
        <div class="qr pix-qr" role="img" aria-label="${esc(t("pix.qr", { amount: brl(charge.amount_cents) }))}">${charge.qr_svg}</div>
        <button type="button" class="secondary" id="pix-simulate">${esc(t("pix.simulate"))}</button>`;
      document.getElementById("pix-copy").addEventListener("click", async () => {
        const code = document.getElementById("pix-code");
        try { await navigator.clipboard.writeText(charge.code); } catch { code.select(); document.execCommand?.("copy"); }
        this.notice(() => t("pix.copied"), "ok");
      });
      document.getElementById("pix-simulate").addEventListener("click", async () => {
        try { await api("POST", "/api/sandbox/pix", { code: charge.code }); this.notice(() => t("pix.simulated"), "muted"); }
        catch (e) { this.refused(e); }
      });
      this.method();
      document.querySelector("#add-form button[type=submit]").disabled = true;
      document.querySelectorAll("#cart-body [data-remove]").forEach((b) => { b.disabled = true; });
      clearInterval(this.pixPoll);
      this.pixPoll = setInterval(() => this.checkPix(), 10000);
      state.cleanup.push(() => clearInterval(this.pixPoll));
      document.getElementById("pix-copy").scrollIntoView({ block: "center" });
    }
    this.notice(() => t("pix.waiting", { amount: brl(charge.amount_cents) }), "muted");
  }

  /** No Pix awaited any more (paid, or lapsed with the hold). */
  endPix() {
    clearInterval(this.pixPoll);
    sessionStorage.removeItem(this.pixSlot());
    if (!this.pix) return;
    this.pix = null;
    this.pixKey = null;
    const box = document.getElementById("pix-box");
    if (box) { box.hidden = true; box.innerHTML = ""; }
    if (document.getElementById("pay")) this.method();
  }

  // Pays with this attempt's key; while the server says the payment with
  // this key is still in progress (another tab, a retry after a lost
  // answer), asks again after the second it suggests, for up to a minute.
  async checkout(body, key = this.key) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await api("POST", `/api/events/${this.id}/checkout`, body, { "Idempotency-Key": key }, { idempotent: true });
      } catch (e) {
        if (e.code !== "payment_in_progress" || attempt >= 60) throw e;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }
}

// ---- my tickets -----------------------------------------------------------------

/** A ticket's code in groups of four, so that it wraps on a phone and can
 * be read out at the gate. */
function grouped(code) { return code.match(/.{1,4}/g)?.join(" ") ?? code; }

async function renderTickets() {
  if (!state.me) { location.hash = "#/login"; return; }
  const [first, { events }] = await Promise.all([api("GET", "/api/me/orders"), api("GET", "/api/events")]);
  const eventOf = (id) => events.find((e) => e.id === id);
  const typeOf = (event, type) => eventOf(event)?.ticket_types[type];
  const files = [];
  state.cleanup.push(() => files.forEach((f) => URL.revokeObjectURL(f)));
  // Each order: the event, venue and date, the order number, and every
  // ticket with its QR code, type, price and code; printed alone (print
  // stylesheet) or added to the calendar (.ics made here, see calendar.js).
  const orderCard = (o) => {
    const event = eventOf(o.event);
    const place = event ? `${event.venue} · ${when(event.starts_at_ms)}` : "";
    const ics = event ? URL.createObjectURL(new Blob([calendarFile({
      uid: `${o.number}@ingressoja`, name: event.name, venue: event.venue, startsAtMs: event.starts_at_ms,
      description: `${t("tickets.orderTitle", { number: o.number })} · ${t("pay.orderTotal", { n: o.tickets.length, total: brl(o.total_cents) })}`,
    })], { type: "text/calendar" })) : null;
    if (ics) files.push(ics);
    return `
    <section class="card order" data-order="${esc(o.number)}" aria-labelledby="order-${esc(o.number)}">
      <h2 id="order-${esc(o.number)}">${esc(event?.name ?? "")}</h2>
      <p><strong data-testid="order-number">${esc(t("tickets.orderTitle", { number: o.number }))}</strong></p>
      <p>${esc(place)}</p>
      <p class="muted">${esc(t("tickets.order", { when: when(o.placed_at_ms), total: brl(o.total_cents) }))}</p>
      <div class="no-print">
        <button type="button" class="secondary" data-print="${esc(o.number)}">${esc(t("tickets.print"))}</button>
        ${ics ? `<a class="button secondary" href="${ics}" download="${esc(o.number)}.ics" data-testid="calendar">${esc(t("tickets.calendar"))}</a>` : ""}
      </div>
      <div class="tickets">${o.tickets.map((tk) => `<figure class="ticket" data-testid="ticket">
        <div class="qr" role="img" aria-label="${esc(t("tickets.qr", { code: tk.code }))}">${tk.qr_svg}</div>
        <figcaption>
          <strong>${esc(event?.name ?? "")}</strong>
          <span>${esc(place)}</span>
          <span data-testid="ticket-type">${esc(typeOf(o.event, tk.ticket_type)?.name ?? "")} · ${esc(brl(typeOf(o.event, tk.ticket_type)?.price_cents ?? 0))}</span>
          ${first.holder ? `<span data-testid="holder">${esc(t("tickets.holderName", { name: first.holder.name, cpf: first.holder.cpf }))}</span>` : ""}
          ${typeOf(o.event, tk.ticket_type)?.half_price_of != null ? `<span data-testid="half-price"><strong>${esc(t("tickets.half"))}</strong></span>` : ""}
          <span>${esc(t("tickets.holder", { email: state.me.email }))}</span>
          <span class="muted">${esc(t("tickets.orderTitle", { number: o.number }))}</span>
          <span class="sr-only">${esc(t("tickets.code"))}</span><code class="ticket-code">${esc(grouped(tk.code))}</code>
        </figcaption></figure>`).join("")}</div>
    </section>`;
  };
  if (first.orders.length === 0) { page(t("tickets.title"), `<p>${esc(t("tickets.none"))}</p>`); return; }
  // Orders come a page at a time (each ticket is a QR code to draw).
  page(t("tickets.title"), `<div id="orders">${first.orders.map(orderCard).join("")}</div>
    <button type="button" id="more-orders" class="secondary no-print" hidden>${esc(t("tickets.more"))}</button>`);
  const orders = document.getElementById("orders");
  // Printing one order prints only it (the others are marked away while
  // the print dialog is open).
  orders.addEventListener("click", (click) => {
    const number = click.target.closest("[data-print]")?.dataset.print;
    if (!number) return;
    document.body.classList.add("printing-one");
    orders.querySelectorAll(".order").forEach((o) => o.classList.toggle("printing", o.dataset.order === number));
    window.addEventListener("afterprint", () => document.body.classList.remove("printing-one"), { once: true });
    window.print();
  });
  const more = document.getElementById("more-orders");
  let next = first.next;
  more.hidden = !next;
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const pageOf = await api("GET", `/api/me/orders?after=${encodeURIComponent(next)}`);
      orders.insertAdjacentHTML("beforeend", pageOf.orders.map(orderCard).join(""));
      next = pageOf.next;
      more.hidden = !next;
    } finally { more.disabled = false; }
  });
}

// ---- routing --------------------------------------------------------------------

export async function route() {
  state.cleanup.splice(0).forEach((f) => f());
  messages.clear();
  if (state.kept && state.kept.hash !== location.hash) state.kept = null;
  document.documentElement.lang = lang() === "en" ? "en" : "pt-BR";
  renderNav();
  const path = (location.hash || "#/").slice(1);
  const parts = path.split("/").filter(Boolean);
  try {
    if (parts.length === 0) await renderEvents();
    else if (parts[0] === "login") renderLogin();
    else if (parts[0] === "register") renderRegister();
    else if (parts[0] === "forgot") renderForgot();
    else if (parts[0] === "terms" || parts[0] === "privacy") renderLegal(parts[0]);
    else if (parts[0] === "reset") renderReset(parts[1] ?? "");
    else if (parts[0] === "enroll") await renderEnroll();
    else if (parts[0] === "tickets") await renderTickets();
    else if (parts[0] === "admin") await renderAdmin(parts.slice(1));
    else if (parts[0] === "event" && parts[2] === "sale") await renderSale(Number(parts[1]));
    else if (parts[0] === "event") await renderEvent(Number(parts[1]));
    else page(t("notFound"), "");
  } catch (e) {
    page(t("error.title"), `<p class="error" role="alert">${esc(e.message)}</p>`);
  }
}

window.addEventListener("hashchange", route);
// The skip link moves the focus to the content; followed as a link, its
// "#main" would be taken for a route (and show "page not found").
document.getElementById("skip-link").addEventListener("click", (click) => { click.preventDefault(); main.focus(); });
await loadMe();
route();

// Shared by the browser tests: the `ingressoja` binary started on a free
// loopback port with a fresh data directory and an administrator (made with
// `ingressoja admin create`, as an operator would), TOTP codes computed
// from a secret (RFC 6238), the join's proof of work, and chromium through
// playwright-core with a screenshot of the page when a test fails.
import { spawn, spawnSync } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import { SMTPServer } from "smtp-server";
import { simpleParser } from "mailparser";

const target = process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, ".cache/ingressoja/target");
export const BIN = process.env.INGRESSOJA ?? join(target, "release/ingressoja");
export const ADMIN = { email: "ops@example.com", password: "a long admin password" };
export const PASSWORD = "uma senha bem comprida";
const SHOTS = resolve(target, "browser-failures");
/** Where every page's screenshots go, for a reviewer to look at. */
export const SCREENS = resolve(target, "screenshots");
const AXE = readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");
/** axe-core's rules for WCAG 2.0, 2.1 and 2.2, levels A and AA, and its
 * best practices. */
const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];
const SIZES = [{ width: 390, height: 844 }, { width: 1280, height: 800 }];

/** Polls `check` (an async function returning a value, or null, false or
 * undefined for "not yet"; a throw counts as not yet) every 50 ms until it
 * gives a value; fails after `ms` saying `what`. */
export async function until(what, check, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => null);
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A local SMTP receiver (smtp-server, no TLS, no login) on a free
 * loopback port: every letter it receives, parsed (mailparser), in
 * `letters` ({ to, subject, text }); `waitFor(to, match)` polls for one. */
export async function startSmtp() {
  const letters = [];
  const server = new SMTPServer({
    authOptional: true, disabledCommands: ["STARTTLS", "AUTH"], logger: false,
    onData(stream, session, done) {
      simpleParser(stream).then((mail) => {
        letters.push({ to: mail.to?.value?.map((a) => a.address).join(","), from: mail.from?.text, subject: mail.subject, text: mail.text });
        done();
      }, done);
    },
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    port: server.server.address().port,
    letters,
    /** The first letter to `to` whose subject matches `match`. */
    waitFor: (to, match, ms = 15000) => until(`a letter to ${to} matching ${match}`, async () => letters.find((l) => l.to === to && match.test(l.subject)), ms),
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/** Starts a server; resolves to { url, stop }. With `smtpPort`, its letters
 * go to that SMTP server (a `[mail]` table in a configuration file). */
export async function startServer({ smtpPort } = {}) {
  const data = mkdtempSync(join(tmpdir(), "ingressoja-browser-"));
  const config = [];
  const confDir = mkdtempSync(join(tmpdir(), "ingressoja-config-"));
  if (smtpPort) {
    const file = join(confDir, "ingressoja.toml");
    writeFileSync(file, `[mail]\nsmtp_url = "smtp://127.0.0.1:${smtpPort}"\nfrom = "IngressoJá <ingressos@example.com>"\n`);
    config.push("--config", file);
  }
  const made = spawnSync(BIN, ["admin", "create", ADMIN.email, "--data", data, "--password-stdin"], { input: ADMIN.password + "\n" });
  if (made.status !== 0) throw new Error("admin create failed: " + made.stderr);
  const child = spawn(BIN, ["serve", "--listen", "127.0.0.1:0", "--data", data, ...config], { stdio: ["ignore", "pipe", "pipe"] });
  let logs = "";
  child.stderr.on("data", (d) => { logs += d; });
  const url = await new Promise((ok, fail) => {
    let out = "";
    const timer = setTimeout(() => fail(new Error("the server did not start: " + logs)), 20000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/serving on (http:\/\/[\d.:]+)/);
      if (m) { clearTimeout(timer); ok(m[1]); }
    });
    child.on("exit", (code) => fail(new Error(`the server exited (${code}): ${logs}`)));
  });
  return {
    url,
    logs: () => logs,
    /** Stops the server (graceful, then killed after 10 s) and removes
     * its data once it has exited. */
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((done) => child.once("exit", done));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(data, { recursive: true, force: true });
      rmSync(confDir, { recursive: true, force: true });
    },
  };
}

function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of text.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  return Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
}

/** The TOTP code of a base-32 secret, `stepsAhead` steps from now. */
export function totp(secret, stepsAhead = 0) {
  const step = Math.floor(Date.now() / 30000) + stepsAhead;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32(secret)).update(counter).digest();
  const offset = mac[19] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

export function solve(challenge, difficulty) {
  for (let n = 0; ; n++) {
    const digest = createHash("sha256").update(`${challenge}:${n}`).digest();
    if ((digest.readUInt32BE(0) >>> (32 - difficulty)) === 0 || difficulty === 0) return String(n);
  }
}

/** A small API client with a bearer session (for setting things up). */
export class Api {
  constructor(url, token) { this.url = url; this.token = token; }
  /** One call; asked again (for up to 20 s) while a cluster says nothing
   * was done (503 not_leader or catching_up: an election, a node still
   * applying), as the pages do. */
  async call(method, path, body) {
    const deadline = Date.now() + 20000;
    for (;;) {
      const response = await fetch(this.url + path, {
        method, headers: { "Content-Type": "application/json", ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = await response.json().catch(() => ({}));
      const notDone = response.status === 503 && ["not_leader", "catching_up"].includes(json?.error?.code);
      if (notDone && Date.now() < deadline) { await new Promise((resolve) => setTimeout(resolve, 200)); continue; }
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
      return { json, cookie: response.headers.get("set-cookie")?.match(/ij_session=([^;]*)/)?.[1] };
    }
  }
}

/** The administrator's two-factor session (enrolled on first use), with
 * the enrolled secret as `.secret`. */
export async function adminApi(url) {
  const api = new Api(url);
  const login = await api.call("POST", "/api/session", ADMIN);
  const session = new Api(url, login.cookie);
  const { json } = await session.call("POST", "/api/me/two-factor");
  const confirmed = await session.call("POST", "/api/me/two-factor/confirm", { code: totp(json.secret) });
  const admin = new Api(url, confirmed.cookie);
  // For a later login in the browser (with the next step's code).
  admin.secret = json.secret;
  return admin;
}

/** A fan made through the API (a new account, password only) who solves
 * the join challenge and joins event `id`; their API client and token. */
export async function apiFanInLine(url, id, email) {
  const { cookie: token } = await new Api(url).call("POST", "/api/accounts", { email, password: PASSWORD, accept_terms: true });
  const fan = new Api(url, token);
  const { json: challenge } = await fan.call("GET", `/api/events/${id}/challenge`);
  await fan.call("POST", `/api/events/${id}/queue`, { challenge: challenge.challenge, solution: solve(challenge.challenge, challenge.difficulty) });
  return { fan, token };
}

/** Polls the fan's place until their turn comes (an arrival window's draw
 * may come first), for at most `ms`. */
export async function waitForTurn(fan, id, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const { json } = await fan.call("GET", `/api/events/${id}/queue`);
    if (json.status === "shopping") return json;
    if (Date.now() > deadline) throw new Error(`no turn within ${ms} ms: ${JSON.stringify(json)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Makes an event; `policy` may set pow_difficulty, require_two_factor …
 * It opened a second ago, so fans join after opening: in arrival order
 * unless `policy.arrival_window_ms` asks for a draw (the product's default
 * of 10 s would make every test wait for one). */
export async function createEvent(admin, name, { policy = {}, types } = {}) {
  policy = { arrival_window_ms: 0, ...policy };
  const now = Date.now();
  const { json } = await admin.call("POST", "/api/admin/events", {
    name, venue: "Arena de Teste", starts_at_ms: now + 86400000, opens_at_ms: now - 1000, prequeue_opens_at_ms: now - 2000,
    closes_at_ms: now + 3600000,
    ticket_types: types ?? [{ name: "Pista", price_cents: 25000, capacity: 100, limit_per_customer: 4 },
      { name: "Camarote", price_cents: 90000, capacity: 10, limit_per_customer: 2 }],
    policy,
  });
  return json.id;
}

/** Chromium, headless, a fresh profile; a test fails (never skips) when it
 * cannot start. */
export async function browser() {
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
}

/** Runs `body(page)` in a new context; on failure saves a screenshot. */
export async function withPage(chrome, name, body) {
  const context = await chrome.newContext({ viewport: { width: 390, height: 844 }, locale: "pt-BR" });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  try {
    await body(page);
    if (problems.length) throw new Error("errors in the page: " + problems.join("; "));
  } catch (error) {
    mkdirSync(SHOTS, { recursive: true });
    const path = join(SHOTS, `${name}.png`);
    await page.screenshot({ path, fullPage: true }).catch(() => {});
    error.message += `\n(screenshot: ${path}; page errors: ${problems.join("; ") || "none"})`;
    throw error;
  } finally {
    await context.close();
  }
}

/** Registers through the pages and enrolls two-factor with a code computed
 * from the shown secret; returns the secret and the recovery codes. */
export async function registerWithTwoFactor(page, url, email) {
  await page.goto(url + "/#/register");
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Senha").fill(PASSWORD);
  await page.getByLabel(/Li e aceito os/).check();
  await page.getByRole("button", { name: "Criar conta" }).click();
  const secret = (await page.getByTestId("totp-secret").textContent()).trim();
  await page.locator(".qr svg").first().waitFor();
  await page.getByLabel("Código").fill(totp(secret));
  await page.getByRole("button", { name: "Confirmar" }).click();
  await page.getByTestId("recovery-codes").locator("li").first().waitFor();
  const codes = await page.getByTestId("recovery-codes").locator("li").allTextContents();
  await page.getByRole("link", { name: "Já guardei" }).click();
  return { secret, codes };
}

/** Checks the page as it is now with axe-core at phone and desktop size
 * (no serious or critical violation, each listed with where it is), and
 * writes its screenshots at both sizes to SCREENS as `<name>-<w>x<h>.png`
 * (the whole page); `alsoCheck(size)` checks more at each size. Evaluated through the
 * browser's debugger protocol, so the page's CSP is not loosened. */
export async function checkPage(page, name, alsoCheck = async () => {}) {
  const before = page.viewportSize();
  mkdirSync(SCREENS, { recursive: true });
  try {
    for (const size of SIZES) {
      await page.setViewportSize(size);
      await page.evaluate(AXE);
      const found = await page.evaluate((tags) => axe.run(document, { runOnly: { type: "tag", values: tags } }), AXE_TAGS);
      const bad = found.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
      if (bad.length) {
        throw new Error(`${name} at ${size.width}×${size.height}: ` + bad.map((v) =>
          `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`).join("; "));
      }
      await page.screenshot({ path: join(SCREENS, `${name}-${size.width}x${size.height}.png`), fullPage: true });
      await alsoCheck(size);
    }
  } finally { await page.setViewportSize(before); }
}

/** The controls in the page smaller than 44 × 44 px, as "text (w×h)";
 * links inside a sentence are exempt, as WCAG's target-size rule has it. */
export async function smallTargets(page) {
  return page.evaluate(() => [...document.querySelectorAll("a[href], button, select, input, [role=button]")]
    .filter((el) => {
      // A radio button's target is the label around it (a tap on it chooses).
      const box = (el.type === "radio" && el.closest("label") ? el.closest("label") : el).getBoundingClientRect();
      // Hidden, or shown only when focused (the skip link).
      if (box.width <= 1 || el.closest("[hidden]")) return false;
      const inSentence = el.tagName === "A" && el.parentElement?.tagName === "P" && el.parentElement.textContent.trim() !== el.textContent.trim();
      return !inSentence && !(el.type === "checkbox") && (box.width < 44 || box.height < 44);
    })
    .map((el) => { const b = el.getBoundingClientRect(); return `${(el.textContent || el.id).trim()} (${Math.round(b.width)}×${Math.round(b.height)})`; }));
}

/** From the event list into the waiting room (the proof of work solved). */
export async function joinTheLine(page, eventName) {
  await page.getByRole("link", { name: "Eventos" }).click();
  await page.getByRole("link", { name: eventName }).click();
  await page.getByRole("link", { name: "Entrar na fila" }).click();
}

/** From the event list to shopping: the queue, its proof of work, the turn. */
export async function queueUp(page, eventName) {
  await joinTheLine(page, eventName);
  await page.getByRole("heading", { name: "Escolha seus ingressos" }).waitFor({ timeout: 30000 });
}

/** Holds `quantity` of `type` (the selection's box for it, then the button). */
export async function hold(page, type, quantity) {
  await page.getByLabel(type).selectOption(String(quantity));
  await page.getByRole("button", { name: "Reservar seleção" }).click();
}

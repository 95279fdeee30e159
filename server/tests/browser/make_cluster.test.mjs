// `make cluster` as a newcomer meets it: scripts/cluster.sh (what the
// target runs once the binary is built) starts three nodes and HAProxy with
// the demo event and prints the address to open; a fan opens it in the
// browser, registers with two-factor through the balancer, queues for the
// demo event, holds and pays (the receipt, printed to a node's log,
// links to the balancer); Ctrl-C (SIGINT) then stops HAProxy and the
// three nodes, leaving nothing listening. Ports are moved off the
// defaults (NODE_HTTP_BASE, NODE_PEERS_BASE, LISTEN) so that a developer's
// own `make cluster` and this test never meet.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BIN, browser, registerWithTwoFactor, withPage } from "./support.mjs";
import { freePort, freeRange, isFree, until } from "./cluster.mjs";

const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../scripts/cluster.sh");
let chrome, script, data;
/** Signals the script's whole process group (it and the nodes and HAProxy
 * it started), as a terminal's Ctrl-C does; false once none is left. */
const signalGroup = (signal) => {
  try { process.kill(-script.pid, signal); return true; } catch { return false; }
};
after(async () => {
  await chrome?.close();
  // Whatever happened above, nothing of the cluster outlives the test: a
  // Ctrl-C first (the script stops its children), then SIGKILL for any
  // process of the group still there.
  if (script) {
    if (script.exitCode === null && script.signalCode === null) {
      signalGroup("SIGINT");
      await until("the script to end", async () => script.exitCode !== null || script.signalCode !== null, 15000).catch(() => {});
    }
    signalGroup("SIGKILL");
  }
  if (data) rmSync(data, { recursive: true, force: true });
});

test("make cluster: a browser buys from three nodes behind HAProxy, and Ctrl-C stops them all", { timeout: 180000 }, async () => {
  data = mkdtempSync(join(tmpdir(), "ingressoja-make-cluster-"));
  const [httpBase, peersBase, front] = [await freeRange(3), await freeRange(3), await freePort()];
  // In a process group of its own, as in a terminal.
  script = spawn("bash", [SCRIPT, BIN, data], {
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, LISTEN: `127.0.0.1:${front}`, NODE_HTTP_BASE: String(httpBase), NODE_PEERS_BASE: String(peersBase) },
  });
  let said = "";
  script.stdout.on("data", (d) => { said += d; });
  script.stderr.on("data", (d) => { said += d; });
  const exited = new Promise((done) => script.once("exit", (code, signal) => done({ code, signal })));
  await until("the cluster's welcome", async () => {
    if (script.exitCode !== null) throw new Error("scripts/cluster.sh ended: " + said);
    return said.includes("Ctrl-C stops everything.");
  }, 60000).catch((e) => { throw new Error(e.message + "\n" + said); });
  const url = said.match(/open\s+(http:\/\/[\d.:]+)\//)?.[1];
  assert.equal(url, `http://127.0.0.1:${front}`, said);

  chrome = await browser();
  await withPage(chrome, "make-cluster", async (page) => {
    await registerWithTwoFactor(page, url, "nova@example.com");
    await page.getByRole("link", { name: "Eventos" }).click();
    await page.getByRole("link", { name: "Festival IngressoJá — demo" }).click();
    await page.getByRole("link", { name: "Entrar na fila" }).click();
    // The demo sale names its holders (the CPF key and the holder go
    // through the replicated log, from whichever node answers).
    await page.getByLabel("Nome completo").fill("Nova Fã da Silva");
    await page.getByLabel("CPF").fill("111.444.777-35");
    await page.getByRole("button", { name: "Salvar e entrar na fila" }).click();
    // The demo event draws its first arrivals after ten seconds.
    await page.getByRole("heading", { name: "Escolha seus ingressos" }).waitFor({ timeout: 60000 });
    await page.getByLabel(/^Pista ·/).selectOption("1");
    await page.getByRole("button", { name: "Reservar seleção" }).click();
    await page.locator("#cart-notice").getByText("Ingressos reservados para você.").waitFor();
    await page.getByLabel("Cartão de crédito").check();
    await page.getByLabel("Número do cartão").fill("4242 4242 4242 4242");
    await page.getByRole("button", { name: "Pagar" }).click();
    await page.getByTestId("confirmed").waitFor({ timeout: 30000 });
  });
  // No SMTP relay: the receipt is printed to the log of the node that sent
  // it, its link pointing at the balancer (INGRESSOJA_PUBLIC_URL), not at
  // that node.
  const logs = () => [1, 2, 3].map((n) => { try { return readFileSync(join(data, `node${n}.log`), "utf8"); } catch { return ""; } }).join("\n");
  await until("the receipt in a node's log", async () => logs().includes("mail to nova@example.com (receipt)"), 15000);
  assert.ok(logs().includes(`${url}/#/tickets`), "the receipt links to the balancer");

  // Ctrl-C (to the whole group, as a terminal sends it): the script stops
  // HAProxy and the nodes, and ends.
  signalGroup("SIGINT");
  let timer;
  const ended = await Promise.race([exited, new Promise((done) => { timer = setTimeout(() => done(null), 30000); })]);
  clearTimeout(timer);
  assert.ok(ended, "scripts/cluster.sh still running 30 s after Ctrl-C:\n" + said);
  const ports = [front, ...[1, 2, 3].map((n) => httpBase + n), ...[1, 2, 3].map((n) => peersBase + n)];
  await until("every port let go", async () => (await Promise.all(ports.map(isFree))).every(Boolean), 10000);
  assert.match(said, /stopping HAProxy and the nodes/);
});

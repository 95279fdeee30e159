// Three nodes behind HAProxy, in a real browser: a fan who registered and
// turned on two-factor on one node logs in through the balancer, joins,
// holds, and pays while the leader is SIGKILLed - the worst case: every
// connection of the page on that node, and for a moment no other node in
// the balancer, so the page's stream reconnection and its payment are both
// refused (503). The page rides it out by itself, with no reload: it says
// it is reconnecting, asks again, the payment of the hold goes through
// once the nodes are back, and its live streams come back (a pause and a
// resumption made after the kill reach it). An operator's dashboard, also
// through the balancer, shows the three nodes, the dead one as not
// answering, and the new leader; the books count one purchase, and the
// killed node, restarted, agrees.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ADMIN, PASSWORD, Api, adminApi, browser, createEvent, registerWithTwoFactor, totp, withPage, hold, queueUp } from "./support.mjs";
import { startCluster, until } from "./cluster.mjs";

let cluster, chrome;
before(async () => { cluster = await startCluster(); chrome = await browser(); });
after(async () => { await chrome?.close(); await cluster?.stop(); });

/** Logs in through the pages with a password and the next step's code
 * (this step's was spent enrolling). */
async function login(page, url, email, password, secret) {
  await page.goto(url + "/#/login");
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Senha").fill(password);
  await page.getByRole("button", { name: "Entrar" }).click();
  await page.getByLabel("Código").fill(totp(secret, 1));
  await page.getByRole("button", { name: "Verificar" }).click();
  await page.getByRole("link", { name: "Meus ingressos" }).waitFor();
}

/** An admin API call through the balancer, asked again while the cluster
 * has no leader (503) - the setup's client is not the page under test. */
const adminCall = (admin, method, path, body) => until(`${method} ${path}`, () => admin.call(method, path, body).then(({ json }) => json ?? {}));

/** The dashboard's row for node `id`. */
const row = (desk, id) => desk.getByTestId("cluster").locator(`tr[data-node="${id}"]`);
/** The dashboard's cells that say "leader" (the role, not the column's
 * heading). */
const leading = (where) => where.locator("td").filter({ hasText: /^Líder$/ });

test("through HAProxy: a fan holds, the leader is SIGKILLed, the page recovers and the purchase completes once", { timeout: 240000 }, async () => {
  const admin = await adminApi(cluster.balancer);
  const event = "Show dos Três Servidores";
  const id = await createEvent(admin, event);
  const leader = await cluster.leader();
  const dead = cluster.nodes[leader];
  // Enrolled on a node that survives, straight (not through the balancer).
  const home = cluster.nodes[(leader + 1) % 3];
  let secret;
  await withPage(chrome, "cluster-register", async (page) => {
    ({ secret } = await registerWithTwoFactor(page, home.url, "gil@example.com"));
  });

  await withPage(chrome, "cluster-desk", async (desk) => {
    await login(desk, cluster.balancer, ADMIN.email, ADMIN.password, admin.secret);
    await desk.getByRole("link", { name: "Administração" }).click();
    await desk.getByTestId("cluster").waitFor();
    await until("three nodes answering, one of them leading", async () =>
      (await desk.getByTestId("cluster").getByText("sem resposta").count()) === 0
      && (await desk.getByTestId("cluster").locator("tbody tr").count()) === 3
      && (await leading(row(desk, dead.id)).count()) === 1);

    await withPage(chrome, "cluster-fan", async (page) => {
      // The worst case: every connection of the fan's page on the node
      // that will die. The other two are drained (HAProxy's runtime API)
      // while the page opens its streams and holds, and put back only after
      // the kill.
      const others = [0, 1, 2].filter((i) => i !== leader);
      for (const i of others) await cluster.balance(i, "drain");
      await login(page, cluster.balancer, "gil@example.com", PASSWORD, secret);
      await queueUp(page, event);
      await hold(page, "Pista", 2);
      await page.locator("#cart-notice").getByText("Ingressos reservados para você.").waitFor();
      assert.match(await page.getByTestId("total").textContent(), /500,00/);
      await page.getByLabel("Cartão de crédito").check();
      await page.getByLabel("Número do cartão").fill("4242 4242 4242 4242");

      // The machine that leads the group, and serves the page, dies; for a
      // moment the balancer has no node to offer (the others still drained).
      const streamRefused = page.waitForResponse((r) => r.url().endsWith(`/api/events/${id}/me/stream`) && r.status() === 503);
      await cluster.kill(leader);
      // The page's streams broke, and their reconnection was refused (an
      // EventSource gives up for good on that): the page says it is
      // reconnecting.
      await streamRefused;
      await page.locator("#connection").getByText("Reconectando ao servidor").waitFor({ timeout: 10000 });
      // The fan pays now: refused by the balancer too, and asked again.
      const payRefused = page.waitForResponse((r) => r.url().endsWith(`/api/events/${id}/checkout`) && r.status() === 503);
      await page.getByRole("button", { name: "Pagar" }).click();
      await payRefused;
      // The nodes come back into the balancer: the payment goes through
      // (the hold survived on the new leader), once.
      for (const i of others) await cluster.balance(i, "ready");
      await page.getByTestId("confirmed").waitFor({ timeout: 30000 });
      assert.match(await page.locator("#shop").textContent(), /2 ingresso\(s\), R\$\s500,00/);
      await page.locator("#connection").waitFor({ state: "hidden", timeout: 30000 });

      // The operator sees the dead node on the dashboard, and another
      // node leading.
      await row(desk, dead.id).getByText("sem resposta").waitFor({ timeout: 20000 });
      await leading(desk.getByTestId("cluster")).waitFor({ timeout: 20000 });

      // The page's live streams are back: a pause and a resumption made
      // after the kill reach it.
      await adminCall(admin, "POST", `/api/admin/events/${id}/pause`);
      await page.getByTestId("paused").waitFor({ timeout: 20000 });
      await adminCall(admin, "POST", `/api/admin/events/${id}/resume`);
      await page.getByTestId("paused").waitFor({ state: "detached", timeout: 20000 });

      await page.getByRole("link", { name: "Meus ingressos" }).first().click();
      await page.getByTestId("ticket").first().waitFor();
      assert.equal(await page.getByTestId("ticket").count(), 2, "two tickets, in one purchase");
      assert.ok(await page.locator("#connection").isHidden(), "no reconnection left showing");
    });
  });

  // Exactly once in the books, and the dead node, back, agrees.
  const sold = async (api) => {
    const { events } = await adminCall(api, "GET", "/api/admin/stats");
    return events.find((e) => e.event === id);
  };
  const figures = await sold(admin);
  assert.equal(figures.orders, 1, JSON.stringify(figures));
  assert.equal(figures.tickets_sold, 2, JSON.stringify(figures));
  assert.equal(figures.holds, 0, JSON.stringify(figures));
  await cluster.restart(leader);
  const direct = new Api(dead.url, admin.token);
  await until("the restarted node's books agree", async () => {
    const theirs = await sold(direct);
    return theirs.orders === 1 && theirs.tickets_sold === 2;
  });
});

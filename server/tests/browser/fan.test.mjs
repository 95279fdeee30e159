// A fan's paths through the pages in a real browser: the whole journey
// (register, two-factor, log out, log in with a code, queue with proof of
// work, admission, cart with countdown, payment, ticket with QR code); a
// declined card (and the language switch); the per-customer limit; a hold
// that expires; a waiting fan told of a pause, the resumption and the sell-out;
// a waiting fan who gives up and leaves the line; a fan who arrives after
// opening, joins with one request and waits for the arrival draw.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { adminApi, apiFanInLine, browser, createEvent, registerWithTwoFactor, startServer, totp, until, withPage, PASSWORD } from "./support.mjs";

let server, admin, chrome;
before(async () => {
  server = await startServer();
  admin = await adminApi(server.url);
  chrome = await browser();
});
after(async () => { await chrome?.close(); await server?.stop(); });

/** From the event list into the waiting room (the proof of work solved). */
async function joinTheLine(page, eventName) {
  await page.getByRole("link", { name: "Eventos" }).click();
  await page.getByRole("link", { name: eventName }).click();
  await page.getByRole("link", { name: "Entrar na fila" }).click();
}

/** From the event list to shopping: the queue, its proof of work, the turn. */
async function queueUp(page, eventName) {
  await joinTheLine(page, eventName);
  await page.getByRole("heading", { name: "Escolha seus ingressos" }).waitFor({ timeout: 30000 });
}

async function hold(page, type, quantity) {
  await page.getByLabel(type).selectOption(String(quantity));
  await page.getByRole("button", { name: "Reservar seleção" }).click();
}

test("a fan registers, turns on two-factor, logs in with a code, queues, buys and sees the ticket", async () => {
  const event = "Festival do Caminho Completo";
  await createEvent(admin, event);
  await withPage(chrome, "whole-path", async (page) => {
    const { secret, codes } = await registerWithTwoFactor(page, server.url, "ana@example.com");
    assert.equal(codes.length, 10);
    await page.getByRole("button", { name: "Sair" }).click();
    await page.getByRole("heading", { name: "Entrar" }).waitFor();
    await page.getByLabel("E-mail").fill("ana@example.com");
    await page.getByLabel("Senha").fill(PASSWORD);
    await page.getByRole("button", { name: "Entrar" }).click();
    // The enrollment used this step's code; the next step's is fresh.
    await page.getByLabel("Código").fill(totp(secret, 1));
    await page.getByRole("button", { name: "Verificar" }).click();
    await page.getByRole("link", { name: "Meus ingressos" }).waitFor();

    await queueUp(page, event);
    await hold(page, "Pista", 2);
    await page.locator("#cart-notice").getByText("Ingressos reservados para você.").waitFor();
    const first = await page.locator("#countdown").textContent();
    assert.match(first, /Reservado por mais [0-9]+:[0-9]{2}/);
    await page.waitForFunction((before) => document.getElementById("countdown").textContent !== before, first, { timeout: 5000 });
    assert.match(await page.getByTestId("total").textContent(), /500,00/);
    await page.getByLabel("Número do cartão").fill("4242 4242 4242 4242");
    await page.getByRole("button", { name: "Pagar" }).click();
    await page.getByTestId("confirmed").waitFor();

    await page.getByRole("link", { name: "Meus ingressos" }).first().click();
    await page.getByRole("heading", { name: "Meus ingressos" }).waitFor();
    const tickets = page.getByTestId("ticket");
    await tickets.first().waitFor();
    assert.equal(await tickets.count(), 2);
    assert.equal(await tickets.first().locator("svg").count(), 1, "a QR code per ticket");
  });
});

test("a fan sent to log in on the way into the line is told why, and is back in it after signing up", async () => {
  const event = "Show da Volta à Fila";
  const id = await createEvent(admin, event);
  await withPage(chrome, "back-to-line", async (page) => {
    await page.goto(server.url + "/#/");
    await page.getByRole("link", { name: event }).click();
    await page.getByRole("link", { name: "Entrar na fila" }).click();
    await page.getByTestId("why-login").getByText("Entre ou crie uma conta para entrar na fila.").waitFor();
    // Signing up (with two-factor, whose reason is given) on the way.
    await page.goto(server.url + "/#/register");
    await page.getByTestId("why-login").waitFor();
    await page.getByLabel("E-mail").fill("eli@example.com");
    await page.getByLabel("Senha").fill(PASSWORD);
    await page.getByRole("button", { name: "Criar conta" }).click();
    await page.getByTestId("why-two-factor").getByText(/ninguém compra em seu nome/).waitFor();
    const secret = (await page.getByTestId("totp-secret").textContent()).trim();
    await page.getByLabel("Código").fill(totp(secret));
    await page.getByRole("button", { name: "Confirmar" }).click();
    await page.getByRole("link", { name: "Já guardei" }).click();
    await page.getByRole("heading", { name: "Escolha seus ingressos" }).waitFor({ timeout: 30000 });
    assert.equal(new URL(page.url()).hash, `#/event/${id}/sale`);
  });
});

test("a code refused right after enrollment says to wait for the next one", async () => {
  await withPage(chrome, "code-wait", async (page) => {
    const { secret } = await registerWithTwoFactor(page, server.url, "hugo@example.com");
    await page.getByRole("button", { name: "Sair" }).click();
    await page.getByLabel("E-mail").fill("hugo@example.com");
    await page.getByLabel("Senha").fill(PASSWORD);
    await page.getByRole("button", { name: "Entrar" }).click();
    // A code already spent: the previous step's is at or before the one the
    // enrollment used (whichever step it is now), so it is always refused.
    await page.getByLabel("Código").fill(totp(secret, -1));
    await page.getByRole("button", { name: "Verificar" }).click();
    await page.locator("#form-error").getByText(/espere o próximo aparecer no aplicativo/).waitFor();
  });
});

test("a declined card sells nothing and keeps the hold", async () => {
  const event = "Show do Cartão Recusado";
  await createEvent(admin, event);
  await withPage(chrome, "declined", async (page) => {
    await registerWithTwoFactor(page, server.url, "bia@example.com");
    await queueUp(page, event);
    await hold(page, "Pista", 1);
    await page.locator("#cart-notice").getByText("Ingressos reservados para você.").waitFor();
    await page.getByLabel("Número do cartão").fill("4000 0000 0000 0002");
    await page.getByRole("button", { name: "Pagar" }).click();
    await page.locator("#pay-result").getByText("Pagamento recusado pelo cartão. Sua reserva continua.").waitFor();
    assert.match(await page.getByTestId("total").textContent(), /250,00/, "the hold is still there");
    assert.equal(await page.getByTestId("confirmed").count(), 0);
    // English on request; Portuguese is the default.
    await page.getByRole("button", { name: "English" }).click();
    await page.getByRole("link", { name: "My tickets" }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), "en");
    await page.getByRole("button", { name: "Português" }).click();
    await page.getByRole("link", { name: "Meus ingressos" }).waitFor();
  });
});

test("the per-customer limit is offered and enforced", async () => {
  const event = "Show do Limite";
  await createEvent(admin, event);
  await withPage(chrome, "limit", async (page) => {
    await registerWithTwoFactor(page, server.url, "caio@example.com");
    await queueUp(page, event);
    // Camarote allows 2 per person: the choice stops there.
    const options = await page.getByLabel("Camarote").locator("option").allTextContents();
    assert.deepEqual(options, ["0", "1", "2"]);
    await hold(page, "Camarote", 2);
    await page.locator("#cart-notice").getByText("Ingressos reservados para você.").waitFor();
    // Four per person: two Camarotes and four Pistas would be six.
    await hold(page, "Pista", 4);
    await page.locator("#cart-notice").getByText("Você atingiu o limite de ingressos por pessoa.").waitFor();
    assert.match(await page.getByTestId("total").textContent(), /1\.800,00/, "the two Camarotes still held");
  });
});

test("a double tap on the hold button holds once, and the boxes show what is held", async () => {
  const event = "Show do Toque Duplo";
  const id = await createEvent(admin, event);
  await withPage(chrome, "double-tap", async (page) => {
    await registerWithTwoFactor(page, server.url, "dani@example.com");
    await queueUp(page, event);
    let answered = 0;
    page.on("response", (r) => { if (r.request().method() !== "GET" && new URL(r.url()).pathname.startsWith(`/api/events/${id}/cart`)) answered++; });
    await page.getByLabel("Pista").selectOption("2");
    // Two submissions before either is answered: a double tap on a slow
    // phone (or a retry after a lost answer).
    await page.evaluate(() => { const form = document.getElementById("add-form"); form.requestSubmit(); form.requestSubmit(); });
    await until("both cart requests answered", async () => answered >= 2, 10000);
    const cart = await page.evaluate(async (event) => (await fetch(`/api/events/${event}/cart`)).json(), id);
    assert.deepEqual(cart.items.map((i) => [i.ticket_type, i.quantity]), [[0, 2]], JSON.stringify(cart));
    await page.getByTestId("total").getByText(/500,00/).waitFor();
    assert.equal(await page.getByLabel("Pista").inputValue(), "2");
  });
});

test("a hold that is not paid expires and the fan is told", { timeout: 150000 }, async () => {
  const event = "Show da Reserva Curta";
  await createEvent(admin, event, { policy: { hold_ttl_ms: 60000 } });
  await withPage(chrome, "expiry", async (page) => {
    await registerWithTwoFactor(page, server.url, "duda@example.com");
    await queueUp(page, event);
    await hold(page, "Pista", 1);
    // A one-minute hold is in its last minute at once.
    const warning = page.locator("#hold-warning");
    await warning.getByText("Sua reserva expira em menos de um minuto.").waitFor({ timeout: 10000 });
    await warning.getByText("Sua reserva expirou e os ingressos voltaram à venda.").waitFor({ timeout: 100000 });
    await page.getByText("Seu carrinho está vazio.").waitFor();
    assert.equal(await page.locator("#countdown").textContent(), "");
  });
});

test("a waiting fan is told when the sale is paused, resumed and sold out", async () => {
  const event = "Show do Último Ingresso";
  // One ticket, one shopper at a time: the first fan in shops, the next waits.
  const id = await createEvent(admin, event, {
    policy: { max_active: 1, pow_difficulty: 8, require_two_factor: false },
    types: [{ name: "Pista", price_cents: 25000, capacity: 1, limit_per_customer: 1 }],
  });
  const { fan: bia, token } = await apiFanInLine(server.url, id, "primeira@example.com");

  await withPage(chrome, "waiting-room-news", async (page) => {
    await registerWithTwoFactor(page, server.url, "edu@example.com");
    await joinTheLine(page, event);
    // Nobody waits ahead, but the one place is taken: no estimate, the fan
    // is told they are next.
    await page.getByTestId("ahead").getByText("Você é o próximo: sua vez começa assim que abrir uma vaga.").waitFor({ timeout: 30000 });
    assert.equal(await page.getByTestId("position").textContent(), "Você é o número 2 da fila");
    assert.equal(await page.getByTestId("eta").count(), 0);

    const paused = page.getByText("Venda pausada pela organização: seu lugar na fila está guardado.");
    await admin.call("POST", `/api/admin/events/${id}/pause`);
    await paused.waitFor({ timeout: 10000 });
    await admin.call("POST", `/api/admin/events/${id}/resume`);
    await paused.waitFor({ state: "detached", timeout: 10000 });

    // The one ticket goes to the fan ahead: the waiting fan is told at once.
    await bia.call("POST", `/api/events/${id}/cart/items`, { items: [{ ticket_type: 0, quantity: 1 }] });
    const paid = await fetch(`${server.url}/api/events/${id}/checkout`, {
      method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Idempotency-Key": "ultimo-1" },
      body: JSON.stringify({ card_number: "4242 4242 4242 4242" }),
    });
    assert.equal(paid.status, 201);
    await page.getByTestId("closed").getByText("Esgotado: todos os ingressos foram vendidos.").waitFor({ timeout: 10000 });
  });
});

test("a waiting fan who gives up leaves the line", async () => {
  const event = "Show da Desistência";
  const id = await createEvent(admin, event, { policy: { max_active: 1, pow_difficulty: 8, require_two_factor: false } });
  const { fan: shopper } = await apiFanInLine(server.url, id, "quem-compra@example.com");

  await withPage(chrome, "leave-the-line", async (page) => {
    await registerWithTwoFactor(page, server.url, "fabi@example.com");
    await joinTheLine(page, event);
    await page.getByTestId("position").waitFor({ timeout: 30000 });
    page.once("dialog", (dialog) => dialog.accept());
    await page.getByRole("button", { name: "Sair da fila" }).click();
    await page.getByTestId("left").getByText("Você saiu da fila.", { exact: false }).waitFor({ timeout: 10000 });
    await page.getByRole("button", { name: "Sair da fila" }).waitFor({ state: "detached" });
  });
  // The shopper finishes; the place is not kept for the fan who left.
  await shopper.call("DELETE", `/api/events/${id}/queue`);
  const { json: stats } = await admin.call("GET", "/api/admin/stats");
  const sale = stats.events.find((e) => e.event === id);
  assert.deepEqual([sale.active, sale.waiting, sale.admitted, sale.left], [0, 0, 1, 1], JSON.stringify(sale));
});

test("a fan arriving after opening joins with one request and is placed by the arrival draw", async () => {
  const event = "Show do Sorteio";
  const id = await createEvent(admin, event, {
    policy: { arrival_window_ms: 10000, pow_difficulty: 8, require_two_factor: false },
  });
  await withPage(chrome, "arrival-draw", async (page) => {
    await registerWithTwoFactor(page, server.url, "gabi@example.com");
    await page.getByRole("link", { name: "Eventos" }).click();
    await page.getByRole("link", { name: event }).click();
    // The event page solves the anti-bot check while the fan reads it.
    await page.waitForFunction((key) => sessionStorage.getItem(key) !== null, `proof:${id}`, { timeout: 20000 });
    const asked = [];
    page.on("request", (request) => {
      const path = new URL(request.url()).pathname;
      if (path.startsWith(`/api/events/${id}/`)) asked.push(`${request.method()} ${path.slice(`/api/events/${id}`.length)}`);
    });
    await page.getByRole("link", { name: "Entrar na fila" }).click();
    await page.getByTestId("drawing").getByText("Você chegou depois da abertura", { exact: false }).waitFor({ timeout: 10000 });
    await page.getByRole("heading", { name: "Escolha seus ingressos" }).waitFor({ timeout: 20000 });
    assert.equal(asked.filter((r) => r === "POST /queue").length, 1, asked.join(", "));
    assert.equal(asked.filter((r) => r.endsWith("/challenge")).length, 0, asked.join(", "));
    assert.equal(asked.filter((r) => r === "GET /queue").length, 0, asked.join(", "));
  });
});

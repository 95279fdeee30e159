// A fan's paths through the pages in a real browser: the whole journey
// (register, two-factor, log out, log in with a code, queue with proof of
// work, admission, cart with countdown, payment, ticket with QR code); Pix
// on a phone (the code in view, the confirmation arriving by itself); a
// named sale (holder's name and CPF, one account per CPF) with meia-entrada; a
// declined card (and the language switch); the per-customer limit; a hold
// that expires; a waiting fan told of a pause, the resumption and the sell-out;
// a waiting fan who gives up and leaves the line; a fan who arrives after
// opening, joins with one request and waits for the arrival draw.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import {
  adminApi, apiFanInLine, browser, createEvent, hold, joinTheLine, queueUp, registerWithTwoFactor, startServer, totp, until, withPage, PASSWORD,
} from "./support.mjs";

let server, admin, chrome;
before(async () => {
  server = await startServer();
  admin = await adminApi(server.url);
  chrome = await browser();
});
after(async () => { await chrome?.close(); await server?.stop(); });

/** Whether the element `selector` is inside the screen as it is scrolled. */
async function inView(page, selector) {
  return page.locator(selector).evaluate((el) => {
    const box = el.getBoundingClientRect();
    return box.height > 0 && box.top >= 0 && box.bottom <= window.innerHeight;
  });
}

/** Counts the live streams' events the page receives (by name, in
 * `window.streamEvents`), to wait for one. */
async function countStreamEvents(page) {
  await page.addInitScript(() => {
    window.streamEvents = [];
    const add = EventSource.prototype.addEventListener;
    EventSource.prototype.addEventListener = function (type, handler, ...rest) {
      return add.call(this, type, function (e) { window.streamEvents.push(type); return handler.call(this, e); }, ...rest);
    };
  });
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
    // Typing the card at the bottom of a phone's screen: the countdown,
    // the total and the last message are still in view (the status bar).
    await page.getByLabel("Cartão de crédito").check();
    const card = page.getByLabel("Número do cartão");
    await card.scrollIntoViewIfNeeded();
    await card.focus();
    for (const id of ["countdown", "bar-total", "cart-notice"]) assert.ok(await inView(page, `#${id}`), `#${id} is in view while paying`);
    assert.match(await page.locator("#bar-total").textContent(), /^R\$\s500,00$/);
    await card.fill("4242 4242 4242 4242");
    await page.getByRole("button", { name: "Pagar" }).click();
    await page.getByTestId("confirmed").waitFor();
    const number = (await page.getByTestId("order-number").textContent()).trim();
    assert.match(number, /^Pedido IJ-\d+-000001$/, "a human order number, counted from 1");
    assert.ok(await inView(page, "#cart-notice"), "the confirmation is where the fan looks");
    assert.match(await page.locator("#cart-notice").textContent(), new RegExp(`Compra confirmada! ${number}`));

    await page.getByRole("link", { name: "Meus ingressos" }).first().click();
    await page.getByRole("heading", { name: "Meus ingressos" }).waitFor();
    const tickets = page.getByTestId("ticket");
    await tickets.first().waitFor();
    assert.equal(await tickets.count(), 2);
    assert.equal(await tickets.first().locator("svg").count(), 1, "a QR code per ticket");
    assert.equal((await page.getByTestId("order-number").textContent()).trim(), number);
    const ticket = await tickets.first().textContent();
    for (const part of [event, "Arena de Teste", "Pista", "250,00", "ana@example.com", number]) assert.ok(ticket.includes(part), `the ticket shows ${part}: ${ticket}`);
    assert.equal(await tickets.first().evaluate((t) => t.scrollWidth <= t.clientWidth), true, "the code stays inside the ticket");
    // The calendar file: the event, where and when, the order.
    const download = page.waitForEvent("download");
    await page.getByTestId("calendar").click();
    const ics = await readFile(await (await download).path(), "utf8");
    assert.match(ics, /^BEGIN:VCALENDAR\r\n/);
    assert.match(ics, new RegExp(`SUMMARY:${event}\r\n`));
    assert.match(ics, /LOCATION:Arena de Teste\r\n/);
    assert.match(ics, /DTSTART:\d{8}T\d{6}Z\r\n/);
    assert.ok(ics.includes(number.replace("Pedido ", "")), "the order number is in the calendar entry");
    // Printed: the tickets, none of the site around them.
    await page.emulateMedia({ media: "print" });
    assert.equal(await page.locator("header.top").isVisible(), false);
    assert.equal(await page.getByRole("button", { name: "Imprimir ou salvar em PDF" }).isVisible(), false);
    assert.equal(await tickets.first().isVisible(), true);
    await page.emulateMedia({ media: "screen" });
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
    await page.getByLabel(/Li e aceito os/).check();
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

test("an account needs the terms accepted; recovery codes are one per line, and can be copied and downloaded", async () => {
  await withPage(chrome, "recovery-codes", async (page) => {
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
    await page.goto(server.url + "/#/register");
    await page.getByLabel("E-mail").fill("ivo@example.com");
    await page.getByLabel("Senha").fill(PASSWORD);
    // No account without the terms accepted (LGPD: consent is explicit).
    await page.getByRole("button", { name: "Criar conta" }).click();
    await page.locator("#form-error").getByText("Para criar a conta, aceite os Termos de uso e o Aviso de privacidade.").waitFor();
    assert.equal(await page.getByTestId("totp-secret").count(), 0);
    await page.getByLabel(/Li e aceito os/).check();
    await page.getByRole("button", { name: "Criar conta" }).click();
    const secret = (await page.getByTestId("totp-secret").textContent()).trim();
    await page.getByLabel("Código").fill(totp(secret));
    await page.getByRole("button", { name: "Confirmar" }).click();
    const items = page.getByTestId("recovery-codes").locator("li");
    await items.first().waitFor();
    const codes = await items.allTextContents();
    assert.equal(codes.length, 10);
    // One line each: as tall as the first, and not wider than the page.
    const heights = await items.evaluateAll((lis) => lis.map((li) => li.getBoundingClientRect().height));
    assert.ok(heights.every((h) => h === heights[0]), `no code breaks across lines: ${heights}`);
    assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), true);
    await page.getByRole("button", { name: "Copiar os códigos" }).click();
    await page.getByText("Códigos copiados.").waitFor();
    assert.deepEqual((await page.evaluate(() => navigator.clipboard.readText())).split("\n"), codes);
    const download = page.waitForEvent("download");
    await page.getByRole("link", { name: "Baixar os códigos (.txt)" }).click();
    const file = await readFile(await (await download).path(), "utf8");
    assert.match(file, /ivo@example\.com/);
    for (const code of codes) assert.ok(file.includes(code), `the file has ${code}`);
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

test("a declined card sells nothing, keeps the hold, says so once, and a language switch keeps the message and the card", async () => {
  const event = "Show do Cartão Recusado";
  await createEvent(admin, event);
  await withPage(chrome, "declined", async (page) => {
    await countStreamEvents(page);
    await registerWithTwoFactor(page, server.url, "bia@example.com");
    await queueUp(page, event);
    await hold(page, "Pista", 1);
    await page.locator("#cart-notice").getByText("Ingressos reservados para você.").waitFor();
    await page.getByLabel("Cartão de crédito").check();
    await page.getByLabel("Número do cartão").fill("4000 0000 0000 0002");
    await page.getByRole("button", { name: "Pagar" }).click();
    const declined = "Pagamento recusado pelo cartão. Sua reserva continua.";
    await page.locator("#cart-notice").getByText(declined).waitFor();
    assert.match(await page.getByTestId("total").textContent(), /250,00/, "the hold is still there");
    assert.equal(await page.getByTestId("confirmed").count(), 0);
    // The refusal comes back on the fan's stream too: still shown once.
    await until("the stream's refusal arrived", () => page.evaluate(() => window.streamEvents.includes("rejected")), 10000);
    assert.equal(await page.getByText(declined).count(), 1, "the declined message is shown once");
    // English on request (Portuguese is the default): the message is
    // translated, not wiped, and the typed card number stays.
    await page.getByRole("button", { name: "English" }).click();
    await page.getByRole("link", { name: "My tickets" }).waitFor();
    assert.equal(await page.evaluate(() => document.documentElement.lang), "en");
    await page.locator("#cart-notice").getByText("The card declined the payment. Your hold is kept.").waitFor();
    await page.getByRole("heading", { name: "Choose your tickets" }).waitFor();
    assert.equal(await page.getByLabel("Card number").inputValue(), "4000 0000 0000 0002");
    await page.getByRole("button", { name: "Português" }).click();
    await page.getByRole("link", { name: "Meus ingressos" }).waitFor();
    await page.locator("#cart-notice").getByText(declined).waitFor();
    assert.equal(await page.getByLabel("Número do cartão").inputValue(), "4000 0000 0000 0002");
  });
});

test("the boxes offer only what the limits leave, and a refusal says how many are left", async () => {
  const event = "Show do Limite";
  const id = await createEvent(admin, event);
  await withPage(chrome, "limit", async (page) => {
    await registerWithTwoFactor(page, server.url, "caio@example.com");
    await queueUp(page, event);
    const offered = async (type) => (await page.getByLabel(type).locator("option").allTextContents()).map(Number);
    // Camarote allows 2 per person, Pista 4, the event 4 in all.
    assert.deepEqual(await offered("Camarote"), [0, 1, 2]);
    assert.deepEqual(await offered("Pista"), [0, 1, 2, 3, 4]);
    await page.getByLabel("Camarote").selectOption("2");
    assert.deepEqual(await offered("Pista"), [0, 1, 2], "two Camarotes chosen leave two of the four");
    await page.getByRole("button", { name: "Reservar seleção" }).click();
    await page.locator("#cart-notice").getByText("Ingressos reservados para você.").waitFor();
    // The fan buys those two from another tab (its own session, without
    // ending the turn): this page is told what they own now.
    await page.evaluate(async (event) => {
      const { csrf_token: csrf } = await (await fetch("/api/me")).json();
      const paid = await fetch(`/api/events/${event}/checkout`, {
        method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Idempotency-Key": "outra-aba" },
        body: JSON.stringify({ card_number: "4242 4242 4242 4242" }),
      });
      if (paid.status !== 201) throw new Error("checkout: " + paid.status);
    }, id);
    await page.locator("#limit-hint").getByText("Você já comprou 2 ingressos deste evento. Você ainda pode levar 2.").waitFor({ timeout: 10000 });
    assert.deepEqual(await offered("Camarote"), [0], "the Camarote limit is used up");
    assert.deepEqual(await offered("Pista"), [0, 1, 2]);
    // A selection over the limit from another tab: this page says why, and
    // how many are left.
    await page.evaluate(async (event) => {
      const { csrf_token: csrf } = await (await fetch("/api/me")).json();
      await fetch(`/api/events/${event}/cart`, {
        method: "PUT", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ items: [{ ticket_type: 0, quantity: 3 }] }),
      });
    }, id);
    await page.locator("#cart-notice")
      .getByText("Você atingiu o limite de ingressos por pessoa. Escolha no máximo 2 no total.").waitFor({ timeout: 10000 });
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

test("a choice made before the fan's stream first answers is kept (a slow phone)", async () => {
  const event = "Show da Conexão Lenta";
  const id = await createEvent(admin, event);
  await withPage(chrome, "slow-stream", async (page) => {
    await countStreamEvents(page);
    await registerWithTwoFactor(page, server.url, "lenta@example.com");
    // The fan's stream is held back until the choice is made: its first
    // status (with the empty cart) used to set the boxes back to 0.
    let release;
    const released = new Promise((resolve) => { release = resolve; });
    await page.route(`**/api/events/${id}/me/stream`, async (route) => { await released; await route.continue(); });
    await queueUp(page, event);
    await page.getByLabel("Pista").selectOption("2");
    release();
    await until("the stream's first status is handled", async () => (await page.evaluate(() => window.streamEvents.includes("status"))), 10000);
    assert.equal(await page.getByLabel("Pista").inputValue(), "2", "the stream's empty cart left the choice alone");
    await page.getByRole("button", { name: "Reservar seleção" }).click();
    await page.locator("#cart-notice").getByText("Ingressos reservados para você.").waitFor();
    await page.getByTestId("total").getByText(/500,00/).waitFor();
    assert.equal(await page.getByLabel("Pista").inputValue(), "2");
  });
});

test("a named sale asks for the holder's name and CPF before the line; meia-entrada needs the declaration; the ticket carries the holder", async () => {
  const event = "Show Nominal com Meia";
  await createEvent(admin, event, {
    policy: { require_holder: true },
    types: [{ name: "Inteira", price_cents: 20000, capacity: 60, limit_per_customer: 4 },
      { name: "Estudante", price_cents: 10000, capacity: 40, limit_per_customer: 4, half_price_of: 0 }],
  });
  await withPage(chrome, "holder", async (page) => {
    await registerWithTwoFactor(page, server.url, "titular@example.com");
    await page.getByRole("link", { name: "Eventos" }).click();
    await page.getByRole("link", { name: event }).click();
    await page.getByText("Ingressos nominais: pediremos o nome e o CPF do titular.").waitFor();
    await page.getByText(/Meia-entrada disponível para quem tem direito/).waitFor();
    await page.getByRole("link", { name: "Entrar na fila" }).click();
    await page.getByRole("heading", { name: "Titular dos ingressos" }).waitFor();
    await page.getByLabel("Nome completo").fill("Rita de Cássia Lopes");
    // A typo in the CPF is told at once, before anything is sent.
    await page.getByLabel("CPF").fill("529.982.247-24");
    await page.getByRole("button", { name: "Salvar e entrar na fila" }).click();
    await page.locator("#holder-error").getByText("Este CPF não é válido: confira os 11 dígitos.").waitFor();
    await page.getByLabel("CPF").fill("529.982.247-25");
    await page.getByRole("button", { name: "Salvar e entrar na fila" }).click();
    await page.getByRole("heading", { name: "Escolha seus ingressos" }).waitFor({ timeout: 30000 });
    // Meia-entrada: marked, and held only with the declaration.
    await page.getByLabel(/^Estudante \(meia-entrada\)/).selectOption("2");
    const declaration = page.getByLabel(/Declaro que tenho direito à meia-entrada/);
    assert.equal(await declaration.isVisible(), true, "the declaration shows with meia-entrada chosen");
    await page.getByRole("button", { name: "Reservar seleção" }).click();
    await page.locator("#cart-notice").getByText("Para levar meia-entrada, confirme que você tem direito a ela.").waitFor();
    await declaration.check();
    await page.getByRole("button", { name: "Reservar seleção" }).click();
    await page.locator("#cart-notice").getByText("Ingressos reservados para você.").waitFor();
    assert.match(await page.getByTestId("total").textContent(), /200,00/);
    await page.getByLabel("Cartão de crédito").check();
    await page.getByLabel("Número do cartão").fill("4242 4242 4242 4242");
    await page.getByRole("button", { name: "Pagar" }).click();
    await page.getByTestId("confirmed").waitFor();
    await page.getByRole("link", { name: "Meus ingressos" }).first().click();
    await page.getByTestId("ticket").first().waitFor();
    assert.equal(await page.getByTestId("holder").first().textContent(), "Titular: Rita de Cássia Lopes · CPF •••.•••.•••-25");
    assert.equal(await page.getByTestId("half-price").count(), 2, "each meia-entrada ticket says to bring the document");
  });
  // The same CPF on another account is refused: one account per CPF.
  await withPage(chrome, "holder-twice", async (page) => {
    await registerWithTwoFactor(page, server.url, "outro-titular@example.com");
    await joinTheLine(page, event);
    await page.getByLabel("Nome completo").fill("Outra Pessoa");
    await page.getByLabel("CPF").fill("52998224725");
    await page.getByRole("button", { name: "Salvar e entrar na fila" }).click();
    await page.locator("#holder-error").getByText("Este CPF já é titular de outra conta. Cada CPF tem uma só conta.").waitFor();
  });
});

/** The fan's bank pays a Pix code (the sandbox's stand-in for a bank
 * app, called from outside the page, as another device would). */
function bankPays(code) {
  return fetch(`${server.url}/api/sandbox/pix`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ code }) });
}

test("a fan buys with Pix on a phone: the code is in view and the confirmation arrives by itself, in view", async () => {
  const event = "Pix no Celular";
  await createEvent(admin, event);
  await withPage(chrome, "pix", async (page) => {
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
    await registerWithTwoFactor(page, server.url, "pix@example.com");
    await queueUp(page, event);
    await hold(page, "Pista", 2);
    await page.locator("#cart-notice").getByText("Ingressos reservados para você.").waitFor();
    assert.equal(await page.getByLabel("Pix", { exact: true }).isChecked(), true, "Pix is the first choice");
    assert.equal(await page.getByLabel("Número do cartão").isVisible(), false, "no card fields for Pix");
    await page.getByRole("button", { name: "Pagar com Pix" }).click();
    const field = page.getByLabel("Pix copia e cola");
    await field.waitFor();
    const code = await field.inputValue();
    assert.match(code, /^000201.*br\.gov\.bcb\.pix.*6304[0-9A-F]{4}$/);
    // What to do next is on screen: the copy button, the waiting line and
    // the time left in the status bar.
    for (const id of ["pix-copy", "cart-notice", "countdown"]) assert.ok(await inView(page, `#${id}`), `#${id} is in view`);
    assert.match(await page.locator("#cart-notice").textContent(), /^Aguardando o pagamento do Pix de R\$\s500,00/);
    assert.equal(await page.getByRole("img", { name: /QR code do Pix de R\$\s500,00/ }).count(), 1);
    await page.getByRole("button", { name: "Copiar código Pix" }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), code);
    // A double tap or a reload shows the same charge, not a second one.
    await page.reload();
    await page.getByLabel("Pix copia e cola").waitFor({ timeout: 30000 });
    assert.equal(await page.getByLabel("Pix copia e cola").inputValue(), code);
    // The fan pays in the bank's app; the page is told, with no tap.
    const before = await page.evaluate(() => window.scrollY);
    const paid = await bankPays(code);
    assert.equal(paid.status, 200);
    await page.getByTestId("confirmed").waitFor();
    const number = (await page.getByTestId("order-number").textContent()).trim();
    assert.match(number, /^Pedido IJ-\d+-000001$/);
    assert.ok(await inView(page, "#cart-notice"), "the confirmation is where the fan looks");
    assert.ok(await inView(page, "[data-testid=confirmed]"));
    assert.equal(await page.locator("#cart-notice").textContent(), `Compra confirmada! ${number}`);
    assert.ok((await page.evaluate(() => window.scrollY)) <= before, "the fan never had to scroll down to it");
    assert.equal((await bankPays(code)).status, 409, "paid once");
    await page.getByRole("link", { name: "Meus ingressos" }).first().click();
    await page.getByTestId("ticket").first().waitFor();
    assert.equal(await page.getByTestId("ticket").count(), 2);
  });
});

test("a hold that is not paid expires and the fan is told", { timeout: 150000 }, async () => {
  const event = "Show da Reserva Curta";
  await createEvent(admin, event, { policy: { hold_ttl_ms: 60000 } });
  await withPage(chrome, "expiry", async (page) => {
    await registerWithTwoFactor(page, server.url, "duda@example.com");
    await queueUp(page, event);
    await hold(page, "Pista", 1);
    // A Pix charge issued and never paid lapses with the hold.
    await page.getByRole("button", { name: "Pagar com Pix" }).click();
    const code = await page.getByLabel("Pix copia e cola").inputValue();
    // A one-minute hold is in its last minute at once.
    const warning = page.locator("#hold-warning");
    await warning.getByText("Sua reserva expira em menos de um minuto.").waitFor({ timeout: 10000 });
    await warning.getByText("Sua reserva expirou e os ingressos voltaram à venda.").waitFor({ timeout: 100000 });
    await page.getByText("Seu carrinho está vazio.").waitFor();
    assert.equal(await page.locator("#countdown").textContent(), "");
    assert.equal(await page.locator("#cart-notice").textContent(), "O prazo do Pix acabou e os ingressos foram liberados. Nada foi cobrado.");
    assert.equal(await page.locator("#pix-box").isHidden(), true, "no code left to pay");
    const late = await bankPays(code);
    assert.equal(late.status, 410, "the bank cannot pay a lapsed charge");
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

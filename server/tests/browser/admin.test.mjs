// An operator in a real browser: logs in, turns on two-factor as admin
// pages require, creates an event with the form, moves its closing date,
// and watches the live dashboard move as a fan joins and buys; the audit
// log shows the actions in words, the sale log (by event name and the
// fan's e-mail) the fan's purchase, its address, the types and amounts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { ADMIN, apiFanInLine, browser, startServer, totp, until, waitForTurn, withPage } from "./support.mjs";

let server, chrome;
before(async () => { server = await startServer(); chrome = await browser(); });
after(async () => { await chrome?.close(); await server?.stop(); });

test("an admin creates an event and watches the dashboard move", async () => {
  await withPage(chrome, "admin", async (page) => {
    await page.goto(server.url + "/#/login");
    await page.getByLabel("E-mail").fill(ADMIN.email);
    await page.getByLabel("Senha").fill(ADMIN.password);
    await page.getByRole("button", { name: "Entrar" }).click();
    await page.getByRole("link", { name: "Administração" }).click();
    await page.getByText("Administradores precisam entrar com verificação em duas etapas.").waitFor();
    await page.getByRole("button", { name: "Ativar agora" }).click();
    const secret = (await page.getByTestId("totp-secret").textContent()).trim();
    await page.getByLabel("Código").fill(totp(secret));
    await page.getByRole("button", { name: "Confirmar" }).click();
    await page.getByRole("link", { name: "Já guardei" }).click();
    await page.getByRole("link", { name: "Administração" }).click();

    await page.getByRole("link", { name: "Eventos" }).nth(1).click();
    await page.getByLabel("Nome").first().fill("Show do Painel");
    await page.getByLabel("Local").fill("Ginásio");
    await page.getByLabel("Dificuldade anti-robô (bits)").last().fill("8");
    await page.getByLabel("Exigir verificação em duas etapas para comprar").last().uncheck();
    await page.getByRole("button", { name: "Criar evento" }).click();
    // The result line, not the screen reader's live region that repeats it.
    const created = await page.locator("#ops-result").getByText(/Evento \d+ criado\./).textContent();
    const id = Number(created.match(/\d+/)[0]);

    // Editing: the sale now closes a day later.
    const card = page.locator("section.card", { hasText: "Show do Painel" });
    await card.getByText("Editar regras").click();
    const closes = card.getByLabel("Fim das vendas");
    const later = new Date(new Date(await closes.inputValue()).getTime() + 86400000 - new Date().getTimezoneOffset() * 60000);
    await closes.fill(later.toISOString().slice(0, 16));
    await card.getByRole("button", { name: "Salvar datas" }).click();
    await card.getByText("Alterações salvas.").waitFor();

    await page.getByRole("link", { name: "Painel ao vivo" }).click();
    await page.getByTestId("funnel-joined").waitFor();
    assert.equal(await page.getByTestId("funnel-joined").textContent(), "0");
    // A fan (through the API) joins and buys; the dashboard follows.
    const { fan: me, token: cookie } = await apiFanInLine(server.url, id, "fan@example.com");
    await page.waitForFunction(() => document.querySelector("[data-testid=funnel-joined]")?.textContent === "1", null, { timeout: 10000 });
    // The event has the default 10-second arrival draw: the turn comes after it.
    await waitForTurn(me, id);
    await me.call("POST", `/api/events/${id}/cart/items`, { items: [{ ticket_type: 0, quantity: 2 }] });
    await page.waitForFunction(() => document.querySelector("[data-testid=funnel-holding]")?.textContent === "1", null, { timeout: 10000 });
    const pay = await fetch(`${server.url}/api/events/${id}/checkout`, {
      method: "POST", headers: { Authorization: `Bearer ${cookie}`, "Content-Type": "application/json", "Idempotency-Key": "painel-1" },
      body: JSON.stringify({ card_number: "4242424242424242" }),
    });
    assert.equal(pay.status, 201);
    await page.waitForFunction(() => document.querySelector("[data-testid=funnel-bought]")?.textContent === "1", null, { timeout: 10000 });

    await page.getByRole("button", { name: "Snapshot" }).click();
    await page.getByText(/Snapshot gravado/).waitFor();
    await page.getByRole("link", { name: "Auditoria" }).click();
    // Actions in words (the stable name beside them), accounts by e-mail.
    await page.getByRole("cell", { name: /Evento criado/ }).first().waitFor();
    assert.ok(await page.getByRole("cell", { name: /Duas etapas ativadas/ }).count() >= 1);
    // The sale log of this event (chosen by name), for the fan by e-mail:
    // the purchase with where it came from, the hold with the type's name
    // and the payment's amount in reais.
    await page.getByLabel("Registro").selectOption("sale");
    await page.getByLabel("Evento").selectOption({ label: "Show do Painel" });
    await page.getByLabel("Conta (número ou e-mail)").fill("fan@example.com");
    await page.getByRole("button", { name: "Filtrar" }).click();
    const bought = page.getByRole("row").filter({ has: page.getByRole("cell", { name: /Compra concluída/ }) });
    await bought.waitFor();
    assert.equal(await bought.getByRole("cell", { name: "127.0.0.1" }).count(), 1);
    assert.equal(await bought.getByRole("cell", { name: "Show do Painel" }).count(), 1);
    const held = page.getByRole("row").filter({ has: page.getByRole("cell", { name: /Ingressos reservados/ }) });
    assert.match(await held.textContent(), /2 × Pista · reservado até/);
    const started = page.getByRole("row").filter({ has: page.getByRole("cell", { name: /Pagamento iniciado/ }) });
    assert.match(await started.textContent(), /valor R\$\s[\d.]+,\d{2}/);
    const rows = await page.locator("#audit-rows tbody tr").count();
    assert.ok(rows >= 4, `the fan's sale actions: ${rows}`);
    // Somebody else's e-mail: none of these.
    await page.getByLabel("Conta (número ou e-mail)").fill("ninguem@example.com");
    await page.getByRole("button", { name: "Filtrar" }).click();
    await until("the filter applied", async () => (await page.locator("#audit-rows tbody tr").count()) === 0, 10000);
  });
});

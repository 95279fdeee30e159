// E-mail end to end: the server sends through a real SMTP exchange (lettre)
// to a local receiver (smtp-server from npm), and the fan acts on what
// arrives: the notice that two-factor was turned on, the receipt of a
// purchase (its order number as the page showed it), and a forgotten
// password reset from the link in the letter (two-factor still asked at
// the next login), the old link then refused.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  PASSWORD, adminApi, browser, createEvent, hold, queueUp, registerWithTwoFactor, startServer, startSmtp, totp, withPage,
} from "./support.mjs";

let smtp, server, admin, chrome;
before(async () => {
  smtp = await startSmtp();
  server = await startServer({ smtpPort: smtp.port });
  admin = await adminApi(server.url);
  chrome = await browser();
});
after(async () => { await chrome?.close(); await server?.stop(); await smtp?.close(); });

test("a fan gets the receipt of a purchase and the notice of two-factor by e-mail", async () => {
  const event = "Show do Recibo";
  await createEvent(admin, event);
  await withPage(chrome, "mail-receipt", async (page) => {
    await registerWithTwoFactor(page, server.url, "rita@example.com");
    const notice = await smtp.waitFor("rita@example.com", /Verificação em duas etapas ativada/);
    assert.match(notice.from, /ingressos@example\.com/);
    await queueUp(page, event);
    await hold(page, "Pista", 2);
    await page.getByTestId("total").waitFor();
    await page.getByLabel("Cartão de crédito").check();
    await page.getByLabel("Número do cartão").fill("4242 4242 4242 4242");
    await page.getByRole("button", { name: "Pagar" }).click();
    const number = (await page.getByTestId("order-number").textContent()).replace("Pedido ", "").trim();
    const receipt = await smtp.waitFor("rita@example.com", new RegExp(`Pedido ${number}`));
    assert.match(receipt.subject, new RegExp(`Seus ingressos: ${event}`));
    for (const part of [`Pedido: ${number}`, "Local: Arena de Teste", "Total: R$ 500,00 (2 ingresso(s))", "- Pista · R$ 250,00 · ", `${server.url}/#/tickets`]) {
      assert.ok(receipt.text.includes(part), `the receipt says ${part}: ${receipt.text}`);
    }
  });
});

test("a fan who forgot the password resets it from the e-mailed link, once", async () => {
  await withPage(chrome, "mail-reset", async (page) => {
    const { secret } = await registerWithTwoFactor(page, server.url, "tiago@example.com");
    await page.getByRole("button", { name: "Sair" }).click();
    await page.getByRole("link", { name: "Esqueci minha senha" }).click();
    await page.getByLabel("E-mail").fill("tiago@example.com");
    await page.getByRole("button", { name: "Enviar o link" }).click();
    await page.getByText("Se houver uma conta com este e-mail, o link chega em instantes.", { exact: false }).waitFor();
    const letter = await smtp.waitFor("tiago@example.com", /Trocar a senha/);
    const link = letter.text.match(/http:\/\/\S+\/#\/reset\/\S+/)?.[0];
    assert.ok(link?.startsWith(server.url), `a link to this server: ${letter.text}`);

    await page.goto(link);
    await page.getByLabel("Nova senha").fill("a senha que eu não esqueço");
    await page.getByRole("button", { name: "Salvar a nova senha" }).click();
    await page.getByTestId("reset-done").waitFor();
    await smtp.waitFor("tiago@example.com", /Sua senha foi trocada/);
    // The new password, and two-factor still.
    await page.getByRole("link", { name: "Entrar" }).last().click();
    await page.getByLabel("E-mail").fill("tiago@example.com");
    await page.getByLabel("Senha").fill("a senha que eu não esqueço");
    await page.getByRole("button", { name: "Entrar" }).click();
    await page.getByLabel("Código").fill(totp(secret, 1));
    await page.getByRole("button", { name: "Verificar" }).click();
    await page.getByRole("link", { name: "Meus ingressos" }).waitFor();

    // The link again: refused, with a way to ask for a new one.
    await page.goto(link);
    await page.getByLabel("Nova senha").fill("mais uma senha comprida");
    await page.getByRole("button", { name: "Salvar a nova senha" }).click();
    await page.getByText("Este link não vale mais (expirou ou já foi usado). Peça um novo.").waitFor();
    await page.getByRole("link", { name: "Pedir um novo link" }).waitFor();
  });
  // The old password no longer logs in.
  const old = await fetch(`${server.url}/api/session`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ email: "tiago@example.com", password: PASSWORD }),
  });
  assert.equal(old.status, 401);
});

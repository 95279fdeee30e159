// Every page, as a fan and as an operator meet it, checked with axe-core
// (WCAG 2.0–2.2 A and AA, and best practices: no serious or critical
// violation) at phone and desktop size, with tap targets of at least 44 px
// and screenshots of each page at 390×844 and 1280×800 written to
// $CARGO_TARGET_DIR/screenshots for a reviewer. Also: the keyboard reaches
// the purchase (skip link, visible focus), and the English pages label
// their landmarks in English.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import {
  ADMIN, PASSWORD, adminApi, apiFanInLine, browser, checkPage, createEvent, smallTargets, startServer, totp, withPage,
} from "./support.mjs";

let server, admin, chrome;
before(async () => {
  server = await startServer();
  admin = await adminApi(server.url);
  chrome = await browser();
});
after(async () => { await chrome?.close(); await server?.stop(); });

/** The page passes axe, has no small tap targets, does not scroll
 * sideways (at phone or desktop size), and is photographed. */
async function check(page, name) {
  await checkPage(page, name, async (size) => {
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(wide <= 0, `${name} scrolls sideways by ${wide} px at ${size.width}×${size.height}`);
  });
  assert.deepEqual(await smallTargets(page), [], `tap targets under 44 px on ${name}`);
}

test("every page a fan meets passes the accessibility check, at phone and desktop size", async () => {
  const event = "Show Acessível";
  // One shopper at a time: a fan from the API shops first, so the page's
  // fan sees the waiting room before their turn.
  const id = await createEvent(admin, event, { policy: { max_active: 1 } });
  const { fan: first } = await apiFanInLine(server.url, id, "primeiro-a11y@example.com");
  await withPage(chrome, "a11y-fan", async (page) => {
    await page.goto(server.url + "/#/");
    await page.getByRole("link", { name: event }).waitFor();
    await check(page, "01-events");
    await page.getByRole("link", { name: event }).click();
    await page.getByRole("link", { name: "Entrar na fila" }).waitFor();
    await check(page, "02-event");
    await page.getByRole("link", { name: "Entrar na fila" }).click();
    await page.getByTestId("why-login").waitFor();
    await check(page, "03-login");
    await page.getByRole("link", { name: "Esqueci minha senha" }).click();
    await page.getByRole("button", { name: "Enviar o link" }).waitFor();
    await check(page, "03-forgot-password");
    await page.goto(server.url + "/#/reset/1.2.3");
    await page.getByLabel("Nova senha").waitFor();
    await check(page, "03-reset-password");
    await page.goto(server.url + "/#/terms");
    await page.getByRole("heading", { name: "Termos de uso" }).waitFor();
    await check(page, "04-terms");
    await page.goto(server.url + "/#/privacy");
    await page.getByRole("heading", { name: "Aviso de privacidade" }).waitFor();
    await check(page, "04-privacy");
    await page.goto(server.url + "/#/register");
    await page.getByLabel("E-mail").waitFor();
    await check(page, "04-register");
    await page.getByLabel("E-mail").fill("acessivel@example.com");
    await page.getByLabel("Senha").fill(PASSWORD);
    await page.getByLabel(/Li e aceito os/).check();
    await page.getByRole("button", { name: "Criar conta" }).click();
    const secret = (await page.getByTestId("totp-secret").textContent()).trim();
    await check(page, "05-two-factor");
    await page.getByLabel("Código").fill(totp(secret));
    await page.getByRole("button", { name: "Confirmar" }).click();
    await page.getByTestId("recovery-codes").waitFor();
    await check(page, "06-recovery-codes");
    await page.getByRole("link", { name: "Já guardei" }).click();
    await page.getByTestId("position").waitFor({ timeout: 30000 });
    await check(page, "07-waiting-room");
    // The first fan is done: this one's turn.
    await first.call("DELETE", `/api/events/${id}/queue`);
    await page.getByRole("heading", { name: "Escolha seus ingressos" }).waitFor({ timeout: 30000 });
    await page.getByLabel("Pista").selectOption("2");
    await page.getByRole("button", { name: "Reservar seleção" }).click();
    await page.getByTestId("total").waitFor();
    await check(page, "08-cart-and-payment");
    await page.getByRole("button", { name: "Pagar com Pix" }).click();
    await page.getByLabel("Pix copia e cola").waitFor();
    await check(page, "08b-pix-charge");
    await page.getByLabel("Cartão de crédito").check();
    await page.getByLabel("Número do cartão").fill("4242 4242 4242 4242");
    await page.getByRole("button", { name: "Pagar" }).click();
    await page.getByTestId("confirmed").waitFor();
    await check(page, "09-confirmation");
    await page.getByRole("link", { name: "Meus ingressos" }).first().click();
    await page.getByTestId("ticket").first().waitFor();
    await check(page, "10-my-tickets");
    await page.getByRole("button", { name: "Sair" }).click();
    await page.getByLabel("E-mail").fill("acessivel@example.com");
    await page.getByLabel("Senha").fill(PASSWORD);
    await page.getByRole("button", { name: "Entrar" }).click();
    await page.getByLabel("Código").waitFor();
    await check(page, "11-login-code");
    // In English, the landmarks are labelled in English.
    await page.getByRole("button", { name: "English" }).click();
    await page.getByRole("navigation", { name: "Main" }).waitFor();
    await check(page, "12-login-code-english");
  });
});

test("the keyboard alone reaches the content and shows where it is", async () => {
  await withPage(chrome, "a11y-keyboard", async (page) => {
    await page.goto(server.url + "/#/");
    await page.getByRole("link", { name: "Show Acessível" }).waitFor();
    // Each page puts the focus on its title, so the next Tab is in the
    // content; back from there are the menu and the skip link.
    assert.equal(await page.evaluate(() => document.activeElement.id), "page-title");
    const focused = async () => page.evaluate(() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return { text: (el.textContent || el.id).trim(), width: parseFloat(style.outlineWidth), style: style.outlineStyle };
    });
    await page.keyboard.press("Tab");
    const first = await focused();
    assert.equal(first.text, "Show Acessível", "the first Tab reaches the content");
    const seen = [first];
    for (let i = 0; i < 10 && seen.at(-1).text !== "Pular para o conteúdo"; i++) {
      await page.keyboard.press("Shift+Tab");
      seen.push(await focused());
    }
    assert.equal(seen.at(-1).text, "Pular para o conteúdo", `the skip link is reached: ${seen.map((s) => s.text).join(" < ")}`);
    assert.ok(await page.getByRole("link", { name: "Pular para o conteúdo" }).isVisible(), "the skip link shows when focused");
    // Every focused control draws a visible outline.
    for (const one of seen) {
      assert.ok(one.style !== "none" && one.width >= 2, `focus is visible on ${one.text}: ${JSON.stringify(one)}`);
    }
    // The skip link goes to the content.
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement.id), "main");
  });
});

test("every page an operator meets passes the accessibility check, at phone and desktop size", async () => {
  await createEvent(admin, "Show do Painel Acessível");
  await withPage(chrome, "a11y-admin", async (page) => {
    await page.goto(server.url + "/#/login");
    await page.getByLabel("E-mail").fill(ADMIN.email);
    await page.getByLabel("Senha").fill(ADMIN.password);
    await page.getByRole("button", { name: "Entrar" }).click();
    // The enrollment (adminApi) used this step's code; the next is fresh.
    await page.getByLabel("Código").fill(totp(admin.secret, 1));
    await page.getByRole("button", { name: "Verificar" }).click();
    await page.getByRole("link", { name: "Administração" }).click();
    await page.getByTestId("funnel-joined").first().waitFor();
    await check(page, "20-admin-dashboard");
    await page.getByRole("link", { name: "Eventos" }).nth(1).click();
    await page.getByRole("button", { name: "Criar evento" }).waitFor();
    await check(page, "21-admin-events");
    await page.getByRole("link", { name: "Auditoria" }).click();
    await page.getByRole("button", { name: "Filtrar" }).waitFor();
    await page.getByRole("row").nth(1).waitFor();
    await check(page, "22-admin-audit");
  });
});

// The pages' texts without a browser: every key exists in both languages,
// and counts of one take the singular where the language has one.
import { test } from "node:test";
import assert from "node:assert/strict";

const store = {};
globalThis.localStorage = { getItem: (k) => store[k] ?? null, setItem: (k, v) => { store[k] = v; } };
const { t, setLang, texts } = await import("../../web/i18n.js");

test("counts of one are singular, others plural, in both languages", () => {
  setLang("pt");
  assert.equal(t("wait.ahead", { n: 1 }), "1 pessoa na sua frente");
  assert.equal(t("wait.ahead", { n: 2 }), "2 pessoas na sua frente");
  assert.equal(t("event.left", { n: 1 }), "1 disponível");
  assert.equal(t("event.left", { n: 0 }), "0 disponíveis");
  setLang("en");
  assert.equal(t("wait.ahead", { n: 1 }), "1 person ahead of you");
  assert.equal(t("wait.ahead", { n: 5 }), "5 people ahead of you");
  assert.equal(t("event.left", { n: 1 }), "1 left", "no singular form: the plural text, not Portuguese");
  setLang("pt");
});

test("every text exists in Portuguese and in English", () => {
  const keys = (language) => Object.keys(texts[language]).filter((k) => !k.endsWith(".one")).sort();
  assert.deepEqual(keys("en"), keys("pt"));
});

test("counts are written the language's way, identifiers as they are", () => {
  setLang("pt");
  assert.equal(t("event.left", { n: 5000 }), "5.000 disponíveis");
  assert.equal(t("wait.position", { n: 12345 }), "Você é o número 12.345 da fila");
  assert.equal(t("admin.created", { id: 1234 }), "Evento 1234 criado.");
  setLang("en");
  assert.equal(t("event.left", { n: 5000 }), "5,000 left");
  setLang("pt");
});

test("the terms' version the pages show is the one the server records", async () => {
  const { readFile } = await import("node:fs/promises");
  const { TERMS_VERSION } = await import("../../web/legal.js");
  const server = await readFile(new URL("../../src/http/account_api.rs", import.meta.url), "utf8");
  assert.equal(server.match(/pub const TERMS_VERSION: &str = "([^"]+)"/)?.[1], TERMS_VERSION);
});

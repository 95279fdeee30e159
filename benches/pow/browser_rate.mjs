// How long the waiting room's Web Worker takes to solve join challenges in
// headless Chromium, at the default difficulty (18 bits) and around it.
// Run (after `make test` built the binary and installed playwright-core):
//   node benches/pow/browser_rate.mjs [ROUNDS]
import { browser, startServer } from "../../server/tests/browser/support.mjs";

const rounds = Number(process.argv[2] ?? 20);
const server = await startServer();
const chrome = await browser();
try {
  const page = await chrome.newPage();
  await page.goto(server.url + "/");
  for (const difficulty of [16, 18, 20]) {
    const times = await page.evaluate(async ({ rounds, difficulty }) => {
      const times = [];
      for (let r = 0; r < rounds; r++) {
        const challenge = `0.${r}.1800000300000.${difficulty}.${crypto.randomUUID().replaceAll("-", "")}.${"ab".repeat(32)}`;
        const worker = new Worker("/pow-worker.js", { type: "module" });
        const start = performance.now();
        await new Promise((done) => { worker.onmessage = ({ data }) => { if (data.solution !== undefined) done(); }; worker.postMessage({ challenge, difficulty }); });
        times.push(performance.now() - start);
        worker.terminate();
      }
      return times;
    }, { rounds, difficulty });
    times.sort((a, b) => a - b);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    console.log(`${difficulty} bits: mean ${(mean / 1000).toFixed(2)} s, median ${(times[times.length >> 1] / 1000).toFixed(2)} s, max ${(times.at(-1) / 1000).toFixed(2)} s over ${rounds}`);
  }
} finally {
  await chrome.close();
  await server.stop();
}

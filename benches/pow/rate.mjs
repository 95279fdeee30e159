// How fast JavaScript (V8, as in Chromium) hashes proof-of-work candidates
// with the synchronous SHA-256 of sha256.mjs, checked against node:crypto.
// Run: node benches/pow/rate.mjs
import { sha256First32 } from "../../server/web/sha256.js";
import { createHash } from "node:crypto";
const challenge = "0.42.1800000300000.17.00112233445566778899aabbccddeeff.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const prefix = new TextEncoder().encode(challenge + ":");
const buf = new Uint8Array(256);
buf.set(prefix);
function put(n) { const s = String(n); for (let i = 0; i < s.length; i++) buf[prefix.length + i] = s.charCodeAt(i); return prefix.length + s.length; }
// correctness
for (const n of [0, 7, 12345]) {
  const len = put(n);
  const mine = sha256First32(buf, len) >>> 0;
  const ref = createHash("sha256").update(challenge + ":" + n).digest().readUInt32BE(0);
  if (mine !== ref) { console.log("MISMATCH", n, mine, ref); process.exit(1); }
}
const start = performance.now();
const N = 2_000_000;
for (let n = 0; n < N; n++) { sha256First32(buf, put(n)); }
const s = (performance.now() - start) / 1000;
console.log(`${(N / s / 1e6).toFixed(2)} M hashes/s; 2^17 in ${(131072/(N/s)).toFixed(3)} s, 2^20 in ${(1048576/(N/s)).toFixed(2)} s, 2^21 in ${(2097152/(N/s)).toFixed(2)} s`);

// The join's proof of work, off the page's thread: finds n such that
// SHA-256(challenge + ":" + n) starts with `difficulty` zero bits, posting
// progress every 20 000 candidates so the page can show it.
import { sha256First32 } from "./sha256.js";

onmessage = ({ data: { challenge, difficulty } }) => {
  const prefix = new TextEncoder().encode(challenge + ":");
  const buffer = new Uint8Array(prefix.length + 20 + 72);
  buffer.set(prefix);
  const shift = 32 - difficulty;
  for (let n = 0; ; n++) {
    const digits = String(n);
    for (let i = 0; i < digits.length; i++) buffer[prefix.length + i] = digits.charCodeAt(i);
    const first = sha256First32(buffer, prefix.length + digits.length) >>> 0;
    if (difficulty === 0 || first >>> shift === 0) {
      postMessage({ solution: digits });
      return;
    }
    if (n % 20000 === 0) postMessage({ tried: n });
  }
};

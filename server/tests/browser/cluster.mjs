// Three nodes behind HAProxy for the browser tests, started the way
// `make cluster` (scripts/cluster.sh) starts them: a cluster file with a
// random secret, `ingressoja serve --cluster` per node trusting HAProxy's
// X-Forwarded-For, `cluster init`, an administrator made through the
// leader (`admin create --cluster`), and Debian's HAProxy configured by
// `ingressoja cluster haproxy-config` with its runtime API on a socket (a
// test drains nodes through it, as an operator would). Ports are free loopback ports below
// the kernel's ephemeral range (a port there can be handed to an outgoing
// connection between our check and the node's bind).
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ADMIN, BIN, until } from "./support.mjs";

export { until };

const DEADLINE_MS = 30000;
const HAPROXY = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].find(existsSync) ?? "haproxy";

/** Whether nobody listens on loopback port `port` now. */
export function isFree(port) {
  return new Promise((done) => {
    const probe = createServer();
    probe.once("error", () => done(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => done(true)));
  });
}

let nextPort = 20000 + ((process.pid * 7919) % 12000);
/** A loopback port nobody listens on now. */
export async function freePort() {
  for (let tries = 0; tries < 12000; tries++) {
    const port = 20000 + (nextPort++ % 12000);
    if (await isFree(port)) return port;
  }
  throw new Error("no free loopback port");
}

/** A base port whose next `count` ports (base + 1 …) are all free. */
export async function freeRange(count) {
  for (let tries = 0; tries < 1200; tries++) {
    const base = 20000 + ((nextPort += 10) % 12000);
    const ports = Array.from({ length: count }, (_, i) => base + 1 + i);
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error(`no ${count} free loopback ports in a row`);
}

/** Starts a process and resolves once it printed "serving on http://". */
function serve(args, log) {
  const child = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, INGRESSOJA_TRUSTED_PROXIES: "127.0.0.1" } });
  child.stderr.on("data", (d) => { log.text += d; });
  return new Promise((ok, fail) => {
    let out = "";
    const timer = setTimeout(() => fail(new Error("a node did not start: " + log.text)), DEADLINE_MS);
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("serving on http://")) { clearTimeout(timer); ok(child); }
    });
    child.once("exit", (code) => { clearTimeout(timer); fail(new Error(`a node exited (${code}): ${log.text}`)); });
  });
}

/** Three nodes and HAProxy; resolves to { balancer, nodes, leader(),
 * kill(i), restart(i), balance(i, state), stop() }. */
export async function startCluster() {
  const dir = mkdtempSync(join(tmpdir(), "ingressoja-cluster-browser-"));
  const file = join(dir, "cluster.toml");
  const nodes = [];
  for (let id = 1; id <= 3; id++) {
    nodes.push({ id, peers: `127.0.0.1:${await freePort()}`, http: `127.0.0.1:${await freePort()}`, data: join(dir, `node${id}`), log: { text: "" }, child: null });
  }
  writeFileSync(file, `secret = "${randomBytes(32).toString("hex")}"\n`
    + nodes.map((n) => `[[nodes]]\nid = ${n.id}\npeers = "${n.peers}"\nhttp = "${n.http}"\n`).join(""), { mode: 0o600 });
  for (const node of nodes) node.url = `http://${node.http}`;

  const start = async (node) => {
    node.child = await serve(["serve", "--cluster", file, "--node", String(node.id), "--data", node.data], node.log);
  };
  let haproxy = null;
  const cluster = {
    dir, file, nodes,
    /** Index of the node that says it leads (after an election, once one
     * has won). */
    async leader() {
      return until("a leader", async () => {
        for (const [index, node] of nodes.entries()) {
          if (!node.child) continue;
          const ready = await fetch(node.url + "/readyz").then((r) => r.json()).catch(() => null);
          if (ready?.role === "leader") return String(index);
        }
        return null;
      }).then(Number);
    },
    /** SIGKILL: no drain, no flush, the machine gone. */
    async kill(index) {
      const child = nodes[index].child;
      nodes[index].child = null;
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGKILL");
      await exited;
    },
    async restart(index) { await start(nodes[index]); },
    logs() { return nodes.map((n) => `node ${n.id}:\n${n.log.text}`).join("\n") + (haproxy ? `\nhaproxy:\n${haproxy.log}` : ""); },
    async stop() {
      const children = [...nodes.map((n) => n.child), haproxy?.child].filter(Boolean);
      await Promise.all(children.map((child) => new Promise((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once("exit", done);
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 10000).unref();
      })));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(nodes.map(start));
    await until("the group founded", async () => {
      const init = spawnSync(BIN, ["cluster", "init", "--cluster", file], { encoding: "utf8" });
      return init.status === 0 || /already/.test(init.stdout + init.stderr);
    });
    await until("an administrator made through the leader", async () =>
      spawnSync(BIN, ["admin", "create", ADMIN.email, "--cluster", file, "--password-stdin"], { input: ADMIN.password + "\n" }).status === 0);

    const listen = `127.0.0.1:${await freePort()}`;
    const socket = join(dir, "haproxy.sock");
    const config = spawnSync(BIN, ["cluster", "haproxy-config", "--cluster", file, "--listen", listen, "--admin-socket", socket], { encoding: "utf8" });
    if (config.status !== 0) throw new Error("haproxy-config: " + config.stderr);
    writeFileSync(join(dir, "haproxy.cfg"), config.stdout);
    const child = spawn(HAPROXY, ["-W", "-db", "-f", join(dir, "haproxy.cfg")], { stdio: ["ignore", "pipe", "pipe"] });
    haproxy = { child, log: "" };
    child.stdout.on("data", (d) => { haproxy.log += d; });
    child.stderr.on("data", (d) => { haproxy.log += d; });
    cluster.balancer = `http://${listen}`;
    /** A command to HAProxy's runtime API; resolves to its answer. */
    cluster.haproxy = (command) => new Promise((ok, fail) => {
      let answer = "";
      const connection = createConnection(socket, () => connection.end(command + "\n"));
      connection.on("data", (d) => { answer += d; });
      connection.on("end", () => ok(answer.trim()));
      connection.on("error", fail);
    });
    /** Takes node `index` out of the balancer gently (`drain`: no new
     * requests or streams) or puts it back (`ready`). */
    cluster.balance = async (index, state) => {
      const answer = await cluster.haproxy(`set server nodes/node${nodes[index].id} state ${state}`);
      if (answer !== "") throw new Error(`HAProxy refused to set node ${nodes[index].id} ${state}: ${answer}`);
    };
    // Ready once HAProxy answers for the nodes (it starts with every
    // server up; its checks then mark down what does not answer).
    await until("HAProxy in front of the nodes", async () =>
      child.exitCode === null && (await fetch(cluster.balancer + "/readyz")).ok);
    return cluster;
  } catch (error) {
    error.message += "\n" + cluster.logs();
    await cluster.stop();
    throw error;
  }
}

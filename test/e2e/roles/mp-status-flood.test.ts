/**
 * One device must not fill the site database. Real processes: a site made with the CLI,
 * `opencmg mp serve`, `opencmg client run` as the well-behaved client; the attacker is this test
 * with a valid client certificate, uploading 82,000 status messages (the issue's flood) as fast as
 * the management point answers. The flood is refused with 429 and Retry-After and counted (per
 * client in `site clients`, in the MP's metrics, one log line per crossing); the database keeps at
 * most the client's limit of rows; a well-behaved client that is itself throttled keeps its
 * messages queued, retries after Retry-After, and every one of them arrives.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { Agent, request } from "undici";
import { runCli } from "../../helpers/cli.ts";
import { freePort } from "../../helpers/ports.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { until } from "../../helpers/until.ts";
import { sampleValue } from "../../helpers/prometheus.ts";
import { issueCert, type IssuedCert } from "../../../src/pki/issue.ts";
import { clientStatus } from "../../../src/client/folder.ts";
import { MP_PATHS } from "../../../src/wire/mp.ts";

const MP = "mp01.contoso.test";
const children = new Set<ChildProcess>();
const dirs: string[] = [];
after(() => {
  for (const c of children) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function start(args: string[]): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [OPENCMG_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OPENCMG_DATA: "", OPENCMG_CLIENT_DIR: "" } });
  children.add(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  child.stdout!.resume();
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => (children.delete(child), r(code))));
  return { child, stderr: () => err, exit };
}

interface Site {
  root: string;
  data: string;
  pki: TestPki;
  cli(args: string[]): ReturnType<typeof runCli>;
  file(name: string, text: string): string;
  port: number;
}

async function makeSite(): Promise<Site> {
  const root = mkdtempSync(join(tmpdir(), "opencmg-flood-"));
  dirs.push(root);
  const data = join(root, "data");
  const pki = await makeTestPki();
  const port = await freePort();
  const s: Site = {
    root,
    data,
    pki,
    port,
    cli: (args) => runCli(["--data", data, ...args]),
    file: (name, text) => (writeFileSync(join(root, name), text), join(root, name)),
  };
  assert.equal((await s.cli(["site", "init"])).code, 0);
  assert.equal((await s.cli(["server", "add", MP])).code, 0);
  const role = await s.cli(["role", "add", MP, "management-point", "--internal-url", `https://127.0.0.1:${port}`]);
  assert.equal(role.code, 0, role.stderr);
  return s;
}

function serveMp(s: Site, metricsPort: number) {
  const mp = start(["--data", s.data, "mp", "serve", "--server", MP, "--listen", `127.0.0.1:${s.port}`, "--metrics", `127.0.0.1:${metricsPort}`, "--trusted-root", s.file("root.pem", s.pki.root.certPem), "--trusted-root", s.file("sub.pem", s.pki.intermediate.certPem)]);
  return mp;
}

/** One request to the MP with a client certificate: status, Retry-After, body. */
async function mpCall(s: Site, agent: Agent, path: string, body: unknown): Promise<{ status: number; retryAfter: string | undefined; json: any }> {
  const r = await request(`https://127.0.0.1:${s.port}${path}`, { dispatcher: agent, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await r.body.text();
  return { status: r.statusCode, retryAfter: r.headers["retry-after"] as string | undefined, json: text ? JSON.parse(text) : undefined };
}

const dbBytes = (data: string): number => ["site.db", "site.db-wal"].reduce((n, f) => n + (existsSync(join(data, f)) ? statSync(join(data, f)).size : 0), 0);
const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;

it("a flood of 82,000 status messages from one device is refused with 429 and counted; the database keeps at most its limit", async (t) => {
  const s = await makeSite();
  const attacker: IssuedCert = await issueCert({ issuer: s.pki.intermediate, commonName: "FLOOD-PC", usage: "client" });
  const metricsPort = await freePort();
  const mp = serveMp(s, metricsPort);
  await until("the MP to serve", () => /serving https:\/\/127.0.0.1:\d+/.test(mp.stderr()) || mp.child.exitCode !== null);
  const agent = new Agent({ connect: { ca: [readFileSync(join(s.data, "pki", "site-ca.pem"), "utf8")], cert: attacker.certPem, key: attacker.keyPem }, connections: 4 });
  try {
    const reg = await mpCall(s, agent, MP_PATHS.register, { name: "FLOOD-PC" });
    assert.equal(reg.status, 200, JSON.stringify(reg.json));
    const clientId = reg.json.clientId as string;
    const before = dbBytes(s.data);

    // 164 uploads of 500 messages (the most one upload may hold, under the 1 MiB body limit), four at a time.
    const text = "x".repeat(1500);
    const results: { status: number; retryAfter: string | undefined }[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 164) {
        const batch = next++;
        const messages = Array.from({ length: 500 }, (_, i) => ({ type: "status", id: `f-${batch}-${i}`, messageId: 10002, severity: "informational", component: "CcmExec", text, time: new Date().toISOString() }));
        const r = await mpCall(s, agent, MP_PATHS.status, { messages });
        results.push({ status: r.status, retryAfter: r.retryAfter });
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    const after = dbBytes(s.data);

    const refused = results.filter((r) => r.status === 429);
    const accepted = results.filter((r) => r.status === 200);
    assert.ok(refused.length >= 150, `the flood gets 429s: ${refused.length} of ${results.length} refused, ${accepted.length} accepted (statuses ${[...new Set(results.map((r) => r.status))].join(", ")})`);
    assert.ok(refused.every((r) => /^\d+$/.test(r.retryAfter ?? "")), "every 429 says when to retry");
    // The default burst (1000) plus the default rate (60 a minute) for the flood's few seconds: 2 or 3 uploads.
    assert.ok(accepted.length <= 4, `${accepted.length} uploads stored`);

    const listed = (await s.cli(["status", "messages", "--json", "--limit", "100000", "--client", clientId])).json() as unknown[];
    assert.equal(listed.length, accepted.length * 500, "rows stored: exactly the accepted uploads");
    assert.ok(listed.length <= 2000);
    t.diagnostic(`flood: ${results.length} uploads of 500, ${accepted.length} accepted, ${refused.length} refused (429); ${listed.length} rows stored; database before ${mib(before)}, after ${mib(after)} (+${mib(after - before)})`);

    // Counted: per client (site clients), in the metrics; logged once per crossing, not per message.
    await until("the refusals to be counted", async () => ((await s.cli(["site", "clients", "--json"])).json() as { statusRefused: number }[])[0]!.statusRefused === refused.length * 500);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.equal(sampleValue(metrics, "opencmg_mp_status_messages_total", { result: "refused_rate", mp: MP }), refused.length * 500);
    assert.equal(sampleValue(metrics, "opencmg_mp_status_messages_total", { result: "stored", mp: MP }), accepted.length * 500);
    const log = readFileSync(join(s.data, "logs", "MP_Status.log"), "utf8");
    assert.equal(log.match(/crossed its limit/g)?.length, 1, "one line for the crossing");
    assert.match(log, new RegExp(`Client ${clientId} \\(FLOOD-PC\\) crossed its limit of 60 status messages a minute \\(burst 1000`));
  } finally {
    await agent.close();
    mp.child.kill("SIGTERM");
    assert.equal(await mp.exit, 0, mp.stderr());
  }
});

it("a well-behaved client that is throttled keeps its messages, retries after Retry-After, and every one arrives", async () => {
  const s = await makeSite();
  // Limits a test can meet in seconds: 50 messages a second after a burst of 500.
  for (const [k, v] of [["client-status-rate", "3000"], ["client-status-burst", "500"], ["client-status-per-day", "5000"]]) {
    const r = await s.cli(["settings", "set", k!, v!]);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal((await s.cli(["settings", "set", "client-status-burst", "499"])).code, 2, "a burst below one full upload is refused");
  const mp = serveMp(s, await freePort());
  await until("the MP to serve", () => /serving https:\/\/127.0.0.1:\d+/.test(mp.stderr()) || mp.child.exitCode !== null);
  const agentDir = join(s.root, "agent");
  const inst = await runCli(["client", "install", "--mp", `https://127.0.0.1:${s.port}`, "--cert", s.file("pc.pem", s.pki.client.certPem), "--key", s.file("pc.key", s.pki.client.keyPem), "--ca", join(s.data, "pki", "site-ca.pem"), "--name", "PC-001", "--client-dir", agentDir, "--json"]);
  assert.equal(inst.code, 0, inst.stderr);
  const clientId = inst.json().clientId as string;
  // 900 messages in uploads of 100: the burst takes 500, the rest meets 429 and waits.
  assert.equal((await runCli(["client", "send-status", "--id", "10002", "--text", "well-behaved", "--count", "900", "--client-dir", agentDir])).code, 0);
  const agent = start(["client", "run", "--client-dir", agentDir, "--check-interval", "1s"]);
  try {
    await until("the queue to drain", () => clientStatus(agentDir).queuedUploads === 0, 120_000);
  } finally {
    agent.child.kill("SIGTERM");
    await agent.exit;
  }
  const messaging = readFileSync(join(agentDir, "logs", "CcmMessaging.log"), "utf8");
  assert.match(messaging, /stay queued for retry in \d+ s or later \(Retry-After\): .*429 too_many_status_messages/, "the client was throttled and kept them");
  const stored = (await s.cli(["status", "messages", "--json", "--limit", "100000", "--client", clientId])).json() as { text: string; source: string; clientId: string }[];
  assert.equal(stored.length, 900, "every message arrived");
  assert.ok(stored.every((m) => m.text === "well-behaved" && m.source === "client" && m.clientId === clientId));
  const clients = (await s.cli(["site", "clients", "--json"])).json() as { id: string; statusRefused: number }[];
  assert.ok(clients.find((c) => c.id === clientId)!.statusRefused > 0, "its refusals were counted");
  mp.child.kill("SIGTERM");
  assert.equal(await mp.exit, 0, mp.stderr());
});

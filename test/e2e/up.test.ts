/**
 * The README's path with real processes: `opencmg up` in a temp folder, then the printed client
 * command. The client (always on internet) registers, locates (the CMG listed as Internet),
 * fetches policy and uploads status through the gateway; the site records the client and its
 * messages. Ctrl-C stops everything.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, it } from "node:test";
import { tempDir } from "../helpers/databases.ts";
import { freePort, freePortRange } from "../helpers/ports.ts";
import { OPENCMG_BIN } from "../helpers/bin.ts";
import { until } from "../helpers/until.ts";

const BIN = OPENCMG_BIN;
let upProc: ChildProcess | undefined;
after(() => {
  if (upProc && upProc.exitCode === null) upProc.kill("SIGKILL");
});

const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 60_000 });

it("opencmg up, then the printed client command: a device managed through the gateway", async () => {
  const dir = tempDir("opencmg-up-");
  let data = join(dir, "data");
  // Ports that were free a moment ago can be taken by another test file before `up` checks or
  // binds them (CI runs files in parallel): such a start is tried again on other ports, in a new
  // data folder (a CMG keeps the ports it was created with).
  let out = "";
  for (let attempt = 1; ; attempt++) {
    data = join(dir, `data${attempt}`);
    // The software update point listens on the management point's port + 1: a free pair.
    const ports = ["--api-port", String(await freePort()), "--mp-port", String(await freePortRange(2)), "--client-port", String(await freePortRange(1)), "--tunnel-port", String(await freePortRange(1))];
    const proc = spawn(process.execPath, [BIN, "--data", data, "up", ...ports], { stdio: ["ignore", "pipe", "pipe"] });
    upProc = proc;
    out = "";
    proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    await until("opencmg up to write up.json or exit", () => existsSync(join(data, "up.json")) || proc.exitCode !== null);
    if (existsSync(join(data, "up.json"))) break;
    if (!/EADDRINUSE|is in use: choose another/.test(out) || attempt === 5) assert.fail(`opencmg up exited: ${out}`);
  }
  // up.json is written just before the summary is printed: on a busy machine the printed lines
  // can arrive a moment after the file exists.
  await until("opencmg up to print its summary", () => /Install a client that reaches the site through the gateway/.test(out) || upProc!.exitCode !== null);
  const facts = JSON.parse(readFileSync(join(data, "up.json"), "utf8")) as { clientInstall: string[]; adminToken: string; siteUrl: string; cmgUrl: string };
  assert.match(out, /Install a client that reaches the site through the gateway/);
  assert.deepEqual(facts.clientInstall.slice(0, 4), ["npx", "opencmg", "client", "install"]);
  assert.ok(facts.clientInstall.includes("--always-internet"));

  const clientDir = join(dir, "client");
  const install = cli([...facts.clientInstall.slice(2), "--client-dir", clientDir]);
  assert.equal(install.status, 0, install.stderr);
  const queued = cli(["client", "send-status", "--client-dir", clientDir, "--id", "10800", "--text", "through the gateway", "--count", "3"]);
  assert.equal(queued.status, 0, queued.stderr);
  const run = cli(["client", "run", "--once", "--client-dir", clientDir, "--json"]);
  assert.equal(run.status, 0, run.stderr);
  const status = cli(["client", "status", "--client-dir", clientDir, "--json"]);
  const st = JSON.parse(status.stdout) as { connectionType: string; queuedUploads: number };
  assert.equal(st.connectionType, "internet");
  assert.equal(st.queuedUploads, 0);
  const locate = cli(["client", "locate", "--client-dir", clientDir, "--json"]);
  const candidates = JSON.parse(locate.stdout) as { type: string; url: string }[];
  assert.ok(candidates.some((c) => c.type === "Internet" && c.url.startsWith(facts.cmgUrl)), locate.stdout);

  // The site saw the client come in through the gateway, and its messages, once each.
  const res = await fetch(`${facts.siteUrl}/api/v1/status/messages?limit=1000`, { headers: { authorization: `Bearer ${facts.adminToken}` } });
  const msgs = ((await res.json()) as { items: { messageId: number; text: string; source: string }[] }).items;
  assert.equal(msgs.filter((m) => m.messageId === 10800 && m.text === "through the gateway").length, 3);
  const clients = cli(["--data", data, "site", "clients", "--json"]);
  const list = JSON.parse(clients.stdout) as { connectionType: string }[];
  assert.equal(list.length, 1);
  assert.equal(list[0]!.connectionType, "internet");
  const gatewayLog = readFileSync(join(data, "logs", "CMGHttpHandler.log"), "utf8");
  assert.ok(gatewayLog.length > 0);

  upProc.kill("SIGINT");
  const code = await new Promise<number | null>((r) => upProc!.once("exit", (c) => r(c)));
  assert.equal(code, 0, out);
});

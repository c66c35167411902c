/**
 * `opencmg mp serve` and `opencmg client run` as real processes (bin/opencmg.mjs), on a site
 * created with the CLI: the MP's server certificate comes from the site CA, the client trusts it
 * through `--ca`, the long-running agent uploads and stops cleanly on SIGTERM.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { runCli } from "../../helpers/cli.ts";
import { freePort } from "../../helpers/ports.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";
import { clientStatus } from "../../../src/client/folder.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { until } from "../../helpers/until.ts";

const BIN = OPENCMG_BIN;
const children = new Set<ChildProcess>();
const dirs: string[] = [];
after(() => {
  for (const c of children) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function start(args: string[]): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OPENCMG_DATA: "", OPENCMG_CLIENT_DIR: "" } });
  children.add(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  child.stdout!.resume();
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => (children.delete(child), r(code))));
  return { child, stderr: () => err, exit };
}

it("mp serve and client run as processes: install, upload, stop on SIGTERM", async () => {
  const root = mkdtempSync(join(tmpdir(), "opencmg-proc-"));
  dirs.push(root);
  const data = join(root, "data");
  const agentDir = join(root, "agent");
  const pki = await makeTestPki();
  const f = (name: string, text: string) => (writeFileSync(join(root, name), text), join(root, name));
  const cert = f("pc.pem", pki.client.certPem);
  const key = f("pc.key", pki.client.keyPem);
  const rootCa = f("root.pem", pki.root.certPem);
  const subCa = f("sub.pem", pki.intermediate.certPem);
  const port = await freePort();
  const site = (args: string[]) => runCli(["--data", data, ...args]);
  assert.equal((await site(["site", "init"])).code, 0);
  assert.equal((await site(["server", "add", "mp01.contoso.test"])).code, 0);
  const role = await site(["role", "add", "mp01.contoso.test", "management-point", "--allow-cmg-traffic", "--internal-url", `https://127.0.0.1:${port}`]);
  assert.equal(role.code, 0, role.stderr);

  const mp = start(["--data", data, "mp", "serve", "--server", "mp01.contoso.test", "--listen", `127.0.0.1:${port}`, "--trusted-root", rootCa, "--trusted-root", subCa]);
  await until("the MP to serve", () => /serving https:\/\/127.0.0.1:\d+/.test(mp.stderr()) || mp.child.exitCode !== null);
  assert.match(mp.stderr(), /OpenCMG management point mp01.contoso.test \(role \d+\) serving https:\/\/127.0.0.1:\d+; Ctrl-C stops it/);

  const inst = await runCli(["client", "install", "--mp", `https://127.0.0.1:${port}`, "--cert", cert, "--key", key, "--ca", join(data, "pki", "site-ca.pem"), "--name", "PC-001", "--client-dir", agentDir, "--json"]);
  assert.equal(inst.code, 0, inst.stderr);
  assert.equal((await runCli(["client", "send-status", "--id", "10002", "--text", "from a process", "--count", "20", "--client-dir", agentDir])).code, 0);

  const agent = start(["client", "run", "--client-dir", agentDir, "--check-interval", "1s"]);
  await until("the queue to drain", () => clientStatus(agentDir).queuedUploads === 0 && clientStatus(agentDir).lastPolicyAt !== null);
  agent.child.kill("SIGTERM");
  assert.equal(await agent.exit, 0, agent.stderr());
  assert.match(readFileSync(join(agentDir, "logs", "CcmExec.log"), "utf8"), /Client agent stopped/);

  mp.child.kill("SIGTERM");
  assert.equal(await mp.exit, 0, mp.stderr());
  const msgs = (await site(["status", "messages", "--json", "--limit", "1000"])).json() as { clientId: string | null; text: string }[];
  assert.equal(msgs.filter((m) => m.clientId === inst.json().clientId && m.text === "from a process").length, 20);
  const clients = (await site(["site", "clients", "--json"])).json();
  assert.equal(clients[0].connectionType, "intranet");
  assert.match(readFileSync(join(data, "logs", "mpcontrol.log"), "utf8"), /stopped serving/);
});

/**
 * `opencmg up` checks every port it will listen on before it writes anything: a busy one ends it
 * with exit code 2, a message naming the option that changes that port, and the data folder
 * absent (a first run) or exactly as it was (a later run).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { tempDir } from "../helpers/databases.ts";
import { freePort, freePortRange } from "../helpers/ports.ts";
import { OPENCMG_BIN } from "../helpers/bin.ts";

const cli = (args: string[]) => spawnSync(process.execPath, [OPENCMG_BIN, ...args], { encoding: "utf8", timeout: 60_000 });

/** A listener on 127.0.0.1 holding a port, as another program would. */
async function hold(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return { port: (server.address() as { port: number }).port, server };
}

/** Every file and folder under `dir` with its size, mode and modification time. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const st = statSync(p);
      out.push(`${p} ${e.isDirectory() ? "dir" : st.size} ${st.mode.toString(8)} ${st.mtimeMs}`);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

describe("opencmg up with a busy port", () => {
  let busy: { port: number; server: Server };
  before(async () => {
    busy = await hold();
  });
  after(() => busy.server.close());

  /** Ports for every option, free a moment ago; `over` puts the busy port where a test wants it. */
  async function ports(over: Record<string, number>): Promise<string[]> {
    const p: Record<string, number> = { "--api-port": await freePort(), "--mp-port": await freePortRange(2), "--client-port": await freePort(), "--tunnel-port": await freePort(), ...over };
    return Object.entries(p).flatMap(([k, v]) => [k, String(v)]);
  }

  const cases: { flag: string; what: string; over: (busy: number) => Record<string, number>; how: string }[] = [
    { flag: "--api-port", what: "admin API", over: (b) => ({ "--api-port": b }), how: "--api-port" },
    { flag: "--mp-port", what: "management point", over: (b) => ({ "--mp-port": b }), how: "--mp-port" },
    { flag: "--mp-port", what: "software update point", over: (b) => ({ "--mp-port": b - 1 }), how: "--mp-port (it is --mp-port + 1)" },
    { flag: "--client-port", what: "CMG instance 0, clients", over: (b) => ({ "--client-port": b }), how: "--client-port" },
    { flag: "--tunnel-port", what: "CMG instance 0, connection points", over: (b) => ({ "--tunnel-port": b }), how: "--tunnel-port" },
  ];
  for (const c of cases) {
    it(`exits 2 naming ${c.flag} when the ${c.what} port is taken, and creates no data folder`, async () => {
      const data = join(tempDir("opencmg-up-busy-"), "data");
      const r = cli(["--data", data, "up", ...(await ports(c.over(busy.port)))]);
      assert.equal(r.status, 2, r.stderr);
      // Other ports may be taken by other test files meanwhile: each busy port has its own line.
      assert.ok(r.stderr.includes(`port ${busy.port} on 127.0.0.1 (${c.what}) is in use: choose another with ${c.how}`), r.stderr);
      assert.equal(existsSync(data), false, "no data folder");
    });
  }

  it("leaves an existing data folder exactly as it was", async () => {
    const data = join(tempDir("opencmg-up-busy-"), "data");
    const init = cli(["--data", data, "site", "init"]);
    assert.equal(init.status, 0, init.stderr);
    const before = snapshot(data);
    assert.ok(before.some((l) => l.includes("site.db")));
    const r = cli(["--data", data, "up", ...(await ports({ "--tunnel-port": busy.port }))]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /choose another with --tunnel-port/);
    assert.deepEqual(snapshot(data), before);
  });

  it("refuses the same port for two listeners before binding either", async () => {
    const data = join(tempDir("opencmg-up-busy-"), "data");
    const api = await freePort();
    const r = cli(["--data", data, "up", ...(await ports({ "--api-port": api, "--tunnel-port": api }))]);
    assert.equal(r.status, 2, r.stderr);
    assert.ok(r.stderr.includes(`port ${api} is asked for twice: admin API (--api-port) and CMG instance 0, connection points (--tunnel-port)`), r.stderr);
    assert.equal(existsSync(data), false);
  });
});

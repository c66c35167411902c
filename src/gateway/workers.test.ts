import assert from "node:assert/strict";
import { fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";

const WORKERS = join(import.meta.dirname, "workers.ts");

it("a worker whose primary goes away while it reports its status stops cleanly instead of dying on the broken channel", async () => {
  const dir = mkdtempSync(join(tmpdir(), "opencmg-worker-link-"));
  const gone = join(dir, "primary-gone");
  // The worker's half of the link, as `gateway serve` runs it. Once it has its start-up values it
  // stops its event loop (a busy worker) until the primary has closed the channel, then reports
  // its status: the write meets the closed channel before the worker has seen the disconnect.
  const script = join(dir, "worker.mjs");
  writeFileSync(
    script,
    `
    import { existsSync } from "node:fs";
    import { connectWorker } from ${JSON.stringify(WORKERS)};
    const link = await connectWorker(0, 1);
    link.onStop(() => { process.stdout.write("stopped"); process.exit(0); });
    const until = Date.now() + 60_000;
    while (!existsSync(${JSON.stringify(gone)}) && Date.now() < until) { /* busy */ }
    link.reportStatus({ ready: true });
    `,
  );
  try {
    const child = fork(script, [], { execArgv: process.execArgv, stdio: ["ignore", "pipe", "pipe", "ipc"] });
    let out = "";
    let err = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.once("message", () => {
      // The worker said hello: give it its start-up values, then go away as a killed primary does.
      child.send({ t: "init", clientPort: 1, tunnelPort: 2, reusePort: false, settings: null, nonceSecret: "" }, () => {
        // "disconnect" comes once this end of the channel is closed: only then may the worker write.
        child.once("disconnect", () => writeFileSync(gone, ""));
        child.disconnect();
      });
    });
    assert.equal(await exited, 0, err);
    assert.equal(out, "stopped");
    assert.doesNotMatch(err, /EPIPE/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Row D as an operator runs it: a real `opencmg gateway serve --workers N` process (its primary
 * and N workers) from a start-up file, with the bench's connection point part dialling every
 * worker. bench/gateway.ts `--workers 1,2` runs D once per count, so one run compares them; the
 * CPU of every process of the instance is read apart (primary, each worker).
 * Runs `bin/opencmg.mjs`, so `npm run build` first.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OPENCMG_BIN } from "../../test/helpers/bin.ts";
import { freePort } from "../../test/helpers/ports.ts";
import { waitUntil } from "../lib/child.ts";
import type { Setup } from "./parts.ts";

export interface ServedGateway {
  clientPort: number;
  tunnelPort: number;
  /** A setup whose gateway ports are this instance's (for the connection point part). */
  setupFile: string;
  primaryPid: number;
  /** Worker pids by index, as the primary printed them (none with one worker: the primary is the instance). */
  workerPids(): number[];
  /** Ready tunnel sessions per worker (its metrics). */
  tunnelsPerWorker(): Promise<number[]>;
  stop(): Promise<void>;
}

export async function startServedGateway(setup: Setup, workers: number): Promise<ServedGateway> {
  const dir = join(setup.dir, `served-w${workers}`);
  mkdirSync(dir, { recursive: true });
  const f = (name: string, text: string): string => (writeFileSync(join(dir, name), text, { mode: 0o600 }), name);
  const [clientPort, tunnelPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const startup = {
    version: 1,
    name: "cmg1",
    index: 0,
    serverCertFile: f("server.pem", setup.pki.server.certPem),
    serverKeyFile: f("server.key", setup.pki.server.keyPem),
    tunnelCertFile: f("tunnel.pem", setup.pki.tunnelServer.certPem),
    tunnelKeyFile: f("tunnel.key", setup.pki.tunnelServer.keyPem),
    siteCaFile: f("site-ca.pem", setup.pki.siteCa.certPem),
    client: { host: "127.0.0.1", port: clientPort },
    // Workers 1.. take the tunnel port + 16·w: free a moment ago, as the other ports.
    tunnel: { host: "127.0.0.1", port: tunnelPort },
    metrics: { host: "127.0.0.1", port: metricsPort },
    trust: setup.trust,
  };
  const config = join(dir, "instance-0.json");
  writeFileSync(config, JSON.stringify(startup), { mode: 0o600 });
  const setupFile = join(dir, "setup.json");
  writeFileSync(setupFile, JSON.stringify({ ...setup, gateway: { ...setup.gateway, clientPort, tunnelPort } }), { mode: 0o600 });

  // The default log level, as an operator runs it: a CMGHttpHandler.log line (and a JSON copy on
  // stdout) per request is part of what a request costs.
  const child: ChildProcess = spawn(process.execPath, [OPENCMG_BIN, "--data", join(dir, "data"), "gateway", "serve", "--config", config, "--workers", String(workers)], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, OPENCMG_DATA: "" },
  });
  let out = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (out += d));
  await waitUntil(`gateway serve --workers ${workers} to listen`, async () => {
    if (child.exitCode !== null) throw new Error(`gateway serve exited ${child.exitCode}: ${out}`);
    return /cmg1-0 listening/.test(out);
  });
  const workerPids = (): number[] => {
    const pids: number[] = [];
    for (const m of out.matchAll(/worker (\d+) \(pid (\d+)\) up/g)) pids[Number(m[1])] = Number(m[2]);
    return pids;
  };
  return {
    clientPort,
    tunnelPort,
    setupFile,
    primaryPid: child.pid!,
    workerPids,
    async tunnelsPerWorker() {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return Array.from({ length: workers }, (_, w) =>
        text
          .split("\n")
          // One worker is the single-process instance: its series carry no worker label.
          .filter((l) => l.startsWith("opencmg_gateway_tunnel_sessions{") && (workers === 1 || l.includes(`worker="${w}"`)))
          .reduce((a, l) => a + Number(l.split(" ").at(-1)), 0),
      );
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

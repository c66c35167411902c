/**
 * The product's parts for bench/gateway.ts, each run in its own process as in production (started
 * by `bench/gateway/child.ts MODE SETUP_FILE`): the backend, the gateway instance, the connection
 * point (direct or through Squid) and the floor relay's two ends. The parent speaks to them over
 * IPC: "status" (can requests flow), "rss" (after GC) and "stop".
 */
import type { Socket } from "node:net";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { startBackend } from "../../test/helpers/cmg-harness.ts";
import type { IssuedCert } from "../../src/pki/issue.ts";
import { Egress } from "../../src/egress/egress.ts";
import { LogSet } from "../../src/logs/cmtrace.ts";
import { gatewayLogs, startGatewayInstance, type GatewayInstance } from "../../src/gateway/instance.ts";
import { connectionPointLogs, startConnectionPoint } from "../../src/connection-point/connection-point.ts";
import type { SignedSettings } from "../../src/wire/tunnel/signed-settings.ts";
import type { StartupTrust } from "../../src/gateway/settings-store.ts";
import type { GatewayLimitsInput } from "../../src/gateway/config.ts";
import { startFloorConnectionPoint, startFloorGateway, startFloorH1ConnectionPoint, startFloorH1Gateway, type FloorSetup } from "../floor-relay.ts";

/** Everything the gateway and connection point children need, written once by the parent. */
export interface Setup {
  dir: string;
  pki: { server: IssuedCert; siteCa: IssuedCert; tunnelServer: IssuedCert; tunnelClient: IssuedCert };
  /** Signed as the site signs them; `trust` is what the instance's start-up bundle would say. */
  settings: SignedSettings;
  trust: StartupTrust;
  backends: Record<string, string>;
  /** `limits`: more of the instance's limits (bench/edge.ts sets the body limit); the product's defaults otherwise. */
  gateway: { clientPort: number; tunnelPort: number; idleTimeoutMs: number; limits?: GatewayLimitsInput };
  floor: FloorSetup;
}

export type PartMessage = { type: "ready"; port?: number } | { type: "rss"; rssMiB: number } | { type: "status"; ready: boolean };

const gcNow: () => void = (() => {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

function rssMiB(): number {
  gcNow();
  gcNow();
  return process.memoryUsage().rss / 1024 / 1024;
}

/** Answers the parent's IPC questions; `status` says whether requests can flow. */
function serveIpc(status: () => boolean, stop: () => Promise<void>): void {
  process.on("message", (m: { type: string }) => {
    if (m.type === "rss") process.send!({ type: "rss", rssMiB: rssMiB() } satisfies PartMessage);
    else if (m.type === "status") process.send!({ type: "status", ready: status() } satisfies PartMessage);
    else if (m.type === "stop") void stop().then(() => process.exit(0));
  });
  process.on("disconnect", () => void stop().then(() => process.exit(0)));
}

const ready = (port?: number): void => void process.send!({ type: "ready", ...(port ? { port } : {}) } satisfies PartMessage);

export async function runBackend(): Promise<void> {
  const b = await startBackend();
  // The backend keeps no record of the requests: a long run must not grow its memory.
  b.requests.push = () => 0;
  serveIpc(() => true, () => b.close());
  ready(b.port);
}

export async function runGateway(setup: Setup): Promise<void> {
  const logs = new LogSet({ dir: join(setup.dir, "gw") });
  const inst: GatewayInstance = await startGatewayInstance(
    {
      name: "cmg1",
      index: 0,
      serverCert: setup.pki.server,
      client: { host: "127.0.0.1", port: setup.gateway.clientPort },
      tunnel: { host: "127.0.0.1", port: setup.gateway.tunnelPort, siteCaPem: setup.pki.siteCa.certPem, cert: setup.pki.tunnelServer },
      metrics: null,
      trust: setup.trust,
      limits: { ...setup.gateway.limits, idleTimeoutMs: setup.gateway.idleTimeoutMs },
    },
    { log: gatewayLogs(logs) },
  );
  serveIpc(() => inst.status().ready, async () => {
    await inst.stop({ graceMs: 0 });
    logs.close();
  });
  ready();
}

/** `h1`: the F1 floor (a pool of reverse HTTP/1.1 connections) instead of F's reverse HTTP/2. */
export async function runFloorGateway(setup: Setup, h1 = false): Promise<void> {
  const f = await (h1 ? startFloorH1Gateway : startFloorGateway)(setup.floor);
  serveIpc(() => f.ready(), async () => {});
  ready();
}

export function runFloorConnectionPoint(setup: Setup, h1 = false): void {
  (h1 ? startFloorH1ConnectionPoint : startFloorConnectionPoint)(setup.floor);
  serveIpc(() => true, async () => {});
  ready();
}

export async function runConnectionPoint(setup: Setup, squidPort: number | null): Promise<void> {
  const logs = new LogSet({ dir: join(setup.dir, "cp") });
  const egress = squidPort ? new Egress({ mode: "proxy", host: "127.0.0.1", port: squidPort }, { connectTimeoutMs: 5000 }) : null;
  const cp = await startConnectionPoint({
    name: "cp1.opencmg.test",
    instances: [{ host: "127.0.0.1", port: setup.gateway.tunnelPort }],
    ...(egress ? { dial: (host: string, port: number): Promise<Socket> => egress.connect(host, port) } : {}),
    tls: { certPem: setup.pki.tunnelClient.certPem, keyPem: setup.pki.tunnelClient.keyPem, siteCaPem: setup.pki.siteCa.certPem },
    settings: setup.settings,
    backends: setup.backends,
    log: connectionPointLogs(logs),
    metrics: null,
  });
  serveIpc(() => true, async () => {
    await cp.stop({ drainMs: 0 });
    await egress?.close();
    logs.close();
  });
  ready();
}

/**
 * One gateway instance on every core: `gateway serve --workers N` runs N worker processes (the
 * `cluster` module) under a primary that binds nothing but the metrics port.
 *
 * - Client port: shared. Node 22.12+ binds it in every worker with `reusePort` (the kernel spreads
 *   connections); Node 20 has no reusePort, so the cluster primary creates the listening socket
 *   and every worker accepts from it (SCHED_NONE). Either way a connection that no worker has
 *   taken yet waits in the kernel's bounded backlog: with the cluster's default round robin the
 *   primary would accept it and hold it until a worker asks, an unbounded queue a stranger could
 *   fill up to the primary's open-file limit.
 * - Tunnel ports: one per worker. Worker 0 listens on the instance's tunnel port (10140 + index),
 *   worker w on that port + 16·w (instances take 16 ports from the base). Every worker tells the
 *   connection points the tunnel ports of all workers (the `workers` control message,
 *   docs/protocol.md), and a connection point of this version dials each: a worker relays only over
 *   its own tunnels.
 * - Settings: a worker that applies a site-signed document hands it to the primary, which gives it
 *   to every other worker (each verifies it as if a connection point had brought it) and to a
 *   restarted worker before it listens: no worker serves with older trust than another.
 * - A worker that dies is restarted with backoff on the same ports; only its clients and tunnels
 *   reconnect.
 * - Metrics: the primary serves every worker's series (prom-client's AggregatorRegistry), each with
 *   a `worker` label.
 * - Logs: every worker writes the instance's CMTrace files (one line per append, so lines of two
 *   workers never mix); its lines say which worker it is.
 */
import cluster, { type Worker } from "node:cluster";
import { randomBytes } from "node:crypto";
import { ProofReplayCache, type ReplayVerdict } from "./auth/dpop-nonce.ts";
import { AggregatorRegistry } from "prom-client";
import type { ComponentLog } from "../logs/cmtrace.ts";
import { serveMetrics, type MetricsServer } from "../observe/prometheus.ts";
import type { ResolvedGatewayConfig } from "./config.ts";
import type { GatewayStatus } from "./instance.ts";

/** Environment variable that makes a `gateway serve` process a worker: its index. */
export const WORKER_ENV = "OPENCMG_GATEWAY_WORKER";
/** Instances of a CMG take 16 tunnel ports from the base: worker w of an instance listens 16·w above worker 0. */
export const WORKER_TUNNEL_PORT_STRIDE = 16;
/** Workers at most (the `workers` message and the tunnel port range bound it). */
export const MAX_WORKERS = 64;

/** Node 22.12+ and 23.1+ have `reusePort` on net listeners. */
export function hasReusePort(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/** The tunnel port of worker `w` when worker 0 listens on `base` (0: any free port). */
export function workerTunnelPort(base: number, w: number): number {
  return base === 0 ? 0 : base + WORKER_TUNNEL_PORT_STRIDE * w;
}

/** Messages from the primary to a worker. */
type ToWorker =
  | { t: "init"; clientPort: number; tunnelPort: number; reusePort: boolean; settings: unknown; nonceSecret: string }
  | { t: "proof-verdict"; id: number; verdict: ReplayVerdict }
  | { t: "ports"; tunnelPorts: number[] }
  | { t: "settings"; document: unknown }
  | { t: "stop" };

/** Messages from a worker to the primary. */
type FromWorker =
  | { t: "hello" }
  | { t: "listening"; clientPort: number; tunnelPort: number }
  | { t: "settings"; revision: number; document: unknown }
  | { t: "status"; status: GatewayStatus }
  | { t: "proof"; id: number; window: number; current: number; client: string; proof: string };

/** What a worker knows of the others, through the primary (instance.ts uses it). */
export interface WorkerLink {
  index: number;
  count: number;
  reusePort: boolean;
  clientPort: number;
  tunnelPort: number;
  /** The newest settings document a worker applied, or null. */
  settings: unknown;
  /** Tunnel ports of every worker by index (0 while one is not known yet). */
  tunnelPorts(): number[];
  onTunnelPorts(cb: () => void): void;
  onSettings(cb: (document: unknown) => void): void;
  onStop(cb: () => void): void;
  /** Tells the primary (then every other worker) about an applied document. */
  applied(revision: number, document: unknown): void;
  listening(clientPort: number, tunnelPort: number): void;
  /** Reports this worker's status to the primary, which answers /healthz for the whole instance. */
  reportStatus(status: GatewayStatus): void;
  /** The instance's DPoP nonce secret, the same in every worker. */
  nonceSecret: Buffer;
  /** Records a DPoP proof in the instance's one replay cache (the primary's): accepted once, whichever worker sees it. */
  useProof(window: number, current: number, client: string, id: string): Promise<ReplayVerdict>;
}

/**
 * In a worker: asks the primary for its start-up values and resolves with the link.
 *
 * @example
 * const link = await connectWorker(Number(process.env[WORKER_ENV]), count);
 */
export function connectWorker(index: number, count: number): Promise<WorkerLink> {
  return new Promise((resolve) => {
    let ports: number[] = [];
    const portListeners: (() => void)[] = [];
    const settingsListeners: ((d: unknown) => void)[] = [];
    const stopListeners: (() => void)[] = [];
    const verdicts = new Map<number, (v: ReplayVerdict) => void>();
    let nextProof = 1;
    // With a callback, a write to a channel the primary has just closed fails into it (EPIPE)
    // instead of as an "error" event nobody handles, which would end the worker as a defect;
    // "disconnect" below stops the worker then.
    const send = (m: FromWorker): void => {
      if (process.connected) process.send!(m, () => {});
    };
    process.on("message", (raw: unknown) => {
      const m = raw as ToWorker;
      if (m?.t === "init") {
        resolve({
          index,
          count,
          reusePort: m.reusePort,
          clientPort: m.clientPort,
          tunnelPort: m.tunnelPort,
          settings: m.settings,
          tunnelPorts: () => ports,
          onTunnelPorts: (cb) => portListeners.push(cb),
          onSettings: (cb) => settingsListeners.push(cb),
          onStop: (cb) => stopListeners.push(cb),
          applied: (revision, document) => send({ t: "settings", revision, document }),
          listening: (clientPort, tunnelPort) => send({ t: "listening", clientPort, tunnelPort }),
          reportStatus: (status) => send({ t: "status", status }),
          nonceSecret: Buffer.from(m.nonceSecret, "base64"),
          useProof: (window, current, client, proof) =>
            new Promise((resolveVerdict) => {
              // Fail closed: without the primary no proof can be remembered.
              if (!process.connected) return resolveVerdict({ ok: false, why: "full", detail: "the instance's replay record is unreachable (its primary process is gone)" });
              const id = nextProof++;
              verdicts.set(id, resolveVerdict);
              send({ t: "proof", id, window, current, client, proof });
            }),
        });
      } else if (m?.t === "proof-verdict") {
        verdicts.get(m.id)?.(m.verdict);
        verdicts.delete(m.id);
      } else if (m?.t === "ports") {
        ports = m.tunnelPorts;
        for (const cb of portListeners) cb();
      } else if (m?.t === "settings") {
        for (const cb of settingsListeners) cb(m.document);
      } else if (m?.t === "stop") {
        for (const cb of stopListeners) cb();
      }
    });
    // The primary is gone (even SIGKILL closes the channel): a worker never outlives it.
    process.on("disconnect", () => {
      for (const cb of stopListeners) cb();
    });
    send({ t: "hello" });
  });
}

export interface WorkerSupervisor {
  readonly clientPort: number;
  readonly tunnelPorts: number[];
  readonly metricsPort: number | null;
  /** Process IDs by worker index. */
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * In the primary: starts `count` workers (the same command line, WORKER_ENV set), worker 0 first
 * so ports chosen by the system (port 0) are known before the others bind; restarts a worker that
 * exits (backoff 0.5 s doubling to 30 s; the count starts over after a minute up). Resolves once
 * every worker listens.
 */
export async function superviseWorkers(cfg: ResolvedGatewayConfig, count: number, log: ComponentLog, onLine: (line: string) => void = () => {}): Promise<WorkerSupervisor> {
  const reusePort = hasReusePort();
  // Read by the cluster module at the first fork; see the header for why not round robin. Node's
  // own NODE_CLUSTER_SCHED_POLICY (rr, none), when set, is the administrator's choice and stands.
  if (!reusePort && process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
  const workers: (Worker | null)[] = Array.from({ length: count }, () => null);
  const tunnelPorts: number[] = Array.from({ length: count }, (_, w) => workerTunnelPort(cfg.tunnel.port, w));
  const attempts = Array.from({ length: count }, () => 0);
  const timers = new Set<NodeJS.Timeout>();
  let clientPort = cfg.client.port;
  let settings: { revision: number; document: unknown } | null = null;
  // Each worker's last reported status (instance.ts reports on every change of its tunnels, and each second).
  const statuses: (GatewayStatus | null)[] = Array.from({ length: count }, () => null);
  // DPoP (auth/dpop-nonce.ts): one nonce secret and one record of accepted proofs for the whole instance.
  const nonceSecret = randomBytes(32).toString("base64");
  const proofs = new ProofReplayCache();
  let stopping = false;

  // A worker may die between the check and the write: with a callback the write fails into it
  // (EPIPE) rather than as an "error" event on the worker, which nobody handles and which would
  // end the primary, and every worker with it. The worker's "exit" restarts it.
  const tell = (w: Worker, m: ToWorker): void => {
    if (w.isConnected()) w.send(m, () => {});
  };
  const broadcast = (m: ToWorker, except?: Worker): void => {
    for (const w of workers) if (w && w !== except) tell(w, m);
  };

  const start = (index: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const started = Date.now();
      const worker = cluster.fork({ [WORKER_ENV]: String(index), OPENCMG_EXIT_WITH_PARENT: "" });
      workers[index] = worker;
      let listening = false;
      worker.on("message", (raw: unknown) => {
        const m = raw as FromWorker;
        if (m?.t === "hello") {
          // Node 20: every worker listens on the configured client port through the primary (port 0 included: the primary keeps one).
          tell(worker, { t: "init", clientPort: reusePort ? clientPort : cfg.client.port, tunnelPort: tunnelPorts[index]!, reusePort, settings: settings?.document ?? null, nonceSecret });
        } else if (m?.t === "proof") {
          tell(worker, { t: "proof-verdict", id: m.id, verdict: proofs.use(m.window, m.current, m.client, m.proof) });
        } else if (m?.t === "listening") {
          listening = true;
          clientPort = m.clientPort;
          tunnelPorts[index] = m.tunnelPort;
          onLine(`worker ${index} (pid ${worker.process.pid}) up: clients on ${cfg.client.host}:${m.clientPort}, tunnels on ${cfg.tunnel.host}:${m.tunnelPort}`);
          broadcast({ t: "ports", tunnelPorts: [...tunnelPorts] });
          resolve();
        } else if (m?.t === "status") {
          if (workers[index] === worker) statuses[index] = m.status;
        } else if (m?.t === "settings") {
          // Each worker verifies the document itself; the primary only keeps the newest and passes it on.
          if (!settings || m.revision > settings.revision) {
            settings = { revision: m.revision, document: m.document };
            broadcast({ t: "settings", document: m.document }, worker);
          }
        }
      });
      worker.on("exit", (code, signal) => {
        if (workers[index] === worker) {
          workers[index] = null;
          statuses[index] = null;
        }
        if (!listening) reject(new Error(`gateway worker ${index} exited before it listened (${signal ?? code})`));
        if (stopping) return;
        if (Date.now() - started > 60_000) attempts[index] = 0;
        const delay = Math.min(30_000, 500 * 2 ** Math.min(attempts[index]!, 6));
        attempts[index]!++;
        log.warn(`Gateway worker ${index} (pid ${worker.process.pid}) exited (${signal ?? code}); restarting it in ${delay} ms on the same ports. The other workers' clients and tunnels are not affected.`);
        onLine(`worker ${index} (pid ${worker.process.pid}) exited (${signal ?? code}); restarting in ${delay} ms`);
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (stopping) return;
          start(index).then(
            () => log.info(`Gateway worker ${index} restarted (pid ${workers[index]?.process.pid})`),
            (e: Error) => log.error(e.message),
          );
        }, delay);
        timers.add(timer);
      });
    });

  try {
    await start(0);
    await Promise.all(Array.from({ length: count - 1 }, (_, i) => start(i + 1)));
  } catch (e) {
    stopping = true;
    for (const w of workers) w?.kill("SIGKILL");
    throw e;
  }

  let metricsServer: MetricsServer | null = null;
  if (cfg.metrics) {
    const aggregator = new AggregatorRegistry();
    metricsServer = await serveMetrics({ metrics: () => aggregator.clusterMetrics(), contentType: aggregator.contentType }, cfg.metrics, () => {
      const s = instanceStatus(cfg.instanceName, statuses);
      return {
        // Ready only when every worker can relay: the client port hands a connection to any of them.
        ok: workers.every((w) => w !== null) && s.ready,
        ...s,
        workers: workers.map((w, i) => ({ worker: i, pid: w?.process.pid ?? null, tunnelPort: tunnelPorts[i], ready: statuses[i]?.ready ?? false })),
      };
    });
  }
  log.info(`Gateway instance ${cfg.instanceName}: ${count} worker processes (${reusePort ? "reusePort" : "cluster"} client port ${clientPort}; tunnel ports ${tunnelPorts.join(", ")})`);

  return {
    clientPort,
    tunnelPorts,
    metricsPort: metricsServer?.port ?? null,
    pids: () => workers.map((w) => w?.process.pid ?? 0),
    async stop() {
      stopping = true;
      for (const t of timers) clearTimeout(t);
      await Promise.all(
        workers.map(
          (w) =>
            w &&
            new Promise<void>((resolve) => {
              if (w.isDead()) return resolve();
              const kill = setTimeout(() => w.kill("SIGKILL"), 15_000);
              w.once("exit", () => {
                clearTimeout(kill);
                resolve();
              });
              if (w.isConnected()) tell(w, { t: "stop" });
              else w.kill("SIGTERM");
            }),
        ),
      );
      await metricsServer?.close();
    },
  };
}

/**
 * One instance's status from its workers' (the shape a single-process instance reports): ready when
 * every worker has a tunnel, tunnels and handshakes of all of them, ready tunnels per connection
 * point added up, and the lowest settings revision in force (what every worker enforces at least).
 */
export function instanceStatus(instance: string, statuses: readonly (GatewayStatus | null)[]): GatewayStatus {
  const known = statuses.filter((s): s is GatewayStatus => s !== null);
  const connectionPoints: Record<string, number> = {};
  for (const s of known) for (const [cp, n] of Object.entries(s.connectionPoints)) connectionPoints[cp] = (connectionPoints[cp] ?? 0) + n;
  const revisions = known.map((s) => s.settingsRevision);
  const sum = (pick: (s: GatewayStatus) => { pending: number; waiting: number; limit: number }) => ({
    pending: known.reduce((a, s) => a + pick(s).pending, 0),
    waiting: known.reduce((a, s) => a + pick(s).waiting, 0),
    limit: known.reduce((a, s) => a + pick(s).limit, 0),
  });
  return {
    instance,
    ready: known.length === statuses.length && known.every((s) => s.ready),
    settingsRevision: revisions.length === statuses.length && revisions.every((r) => r !== null) ? Math.min(...(revisions as number[])) : null,
    tunnels: known.flatMap((s) => s.tunnels),
    connectionPoints,
    handshakes: { client: sum((s) => s.handshakes.client), tunnel: sum((s) => s.handshakes.tunnel) },
  };
}

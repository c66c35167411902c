/** A CMG's instances as the site shows them, with what the connection points last reported, and the CMG's status. */
import type { X509Certificate } from "node:crypto";
import type { CmgDeploySettings, CmgInstanceView, CmgRunState, CmgStatus } from "./cmg-model.ts";

/** A tunnel report older than this counts as not connected. */
export const STALE_MS = 3 * 60_000;

export interface TunnelRow {
  instance: number;
  connection_point: string;
  connected: number;
  detail: string;
  reported_at: string;
}

export interface RestartRow {
  instance: number;
  restarts: number;
  last_restart_at: string;
  last_exit: string;
}

/** Instance i's ports and URLs, the tunnels of the connection points bound to the CMG, and its restarts. */
export function instanceViews(count: number, deploy: CmgDeploySettings, tunnels: readonly TunnelRow[], connectionPoints: readonly string[], nowMs: number, restarts: readonly RestartRow[] = []): CmgInstanceView[] {
  return Array.from({ length: count }, (_, i) => {
    // On its own address, an instance takes the ports themselves: every instance is on 443 behind one name.
    const own = deploy.instanceAddresses?.[i];
    const clientPort = deploy.clientPortBase + (own ? 0 : i);
    const r = restarts.find((x) => x.instance === i);
    return {
      index: i,
      clientUrl: `https://${deploy.publicHost}${clientPort === 443 ? "" : `:${clientPort}`}`,
      clientPort,
      listenHost: own ?? deploy.listenHost,
      tunnelHost: own ?? deploy.instanceHost,
      tunnelPort: deploy.tunnelPortBase + (own ? 0 : i),
      metricsPort: deploy.metricsPortBase ? deploy.metricsPortBase + i : null,
      connectionPoints: tunnels
        .filter((t) => t.instance === i && connectionPoints.includes(t.connection_point))
        .map((t) => ({ server: t.connection_point, connected: t.connected === 1 && nowMs - Date.parse(t.reported_at) < STALE_MS, detail: t.detail, reportedAt: t.reported_at })),
      restarts: r ? Number(r.restarts) : 0,
      lastRestartAt: r?.last_restart_at ?? null,
      lastExit: r?.last_exit ?? null,
    };
  });
}

/** How long after `cmg start` missing tunnels count as Starting rather than Degraded or Error. */
export const STARTING_MS = STALE_MS;

/** The administrator's last start, stop or delete: what and when (null: never, the CMG runs since its creation). */
export interface RunState {
  state: CmgRunState;
  at: string | null;
  reason: string | null;
  /** The CMG's name, for the command in a reason. */
  name?: string;
  /**
   * Local provider: whether a process on this machine runs the instances (its pid file names a live
   * process); undefined when not known here (another provider, or no data folder).
   */
  supervised?: boolean | undefined;
  /** When the CMG was created: a CMG just created is given a moment before "nothing runs it" is an error. */
  createdAt?: string | undefined;
  /**
   * Kubernetes provider: what it last saw of the StatefulSet (null: not applied to the cluster
   * yet); undefined for the other providers.
   */
  cluster?: ClusterState | null | undefined;
}

/** What the kubernetes provider last saw of a CMG in its cluster. */
export interface ClusterState {
  /** The CMG's revision the objects were applied at. */
  appliedRevision: number;
  replicas: number;
  readyReplicas: number;
  /** The CMG's objects exist in the cluster. */
  objects: boolean;
  /** The last failure to apply or read ("" after a success). */
  error: string;
  observedAt: string;
}

/** What an administrator does when the kubernetes provider has not applied a CMG yet. */
const NOT_APPLIED = "not applied to the cluster yet: the OpenCMG site service (opencmg-site) applies it; a change made at the command line applies it too";

/**
 * What an administrator does when nothing runs a local CMG's instances. Reasons are read in the
 * console as much as at the command line: they name what to click or which service to start,
 * never a shell command line.
 */
export function unsupervisedReason(name: string): string {
  return `no process runs the instances of ${name}: start the OpenCMG site service (opencmg-site) on the site server; it runs the instances of the CMGs with the local provider`;
}

/**
 * The CMG's status with the reason an administrator can act on: the run state first (Deleting,
 * Stopping until no tunnel is reported connected any more, Stopped; Starting for a while after a
 * start), then what the connection points report.
 */
export function cmgStatus(cert: X509Certificate, cps: readonly string[], inst: readonly CmgInstanceView[], nowMs: number, run: RunState = { state: "running", at: null, reason: null }): { status: CmgStatus; reason: string } {
  const anyConnected = inst.some((i) => i.connectionPoints.some((c) => c.connected));
  const since = run.at ? ` since ${run.at}` : "";
  if (run.state === "deleting") return { status: "Deleting", reason: `being deleted${since}: its instances stop and the connection points end their tunnels` };
  if (run.state === "stopped") {
    const why = run.reason ? ` (${run.reason})` : "";
    if (run.cluster && run.cluster.readyReplicas > 0)
      return { status: "Stopping", reason: `stopped by an administrator${since}${why}: ${run.cluster.readyReplicas} pod(s) of the StatefulSet still ready, scaling to 0` };
    if (anyConnected) return { status: "Stopping", reason: `stopped by an administrator${since}${why}: waiting for the instances to stop and the connection points to drain their tunnels` };
    return { status: "Stopped", reason: `stopped by an administrator${since}${why}; clients cannot use it until it is started (select it in Cloud Management Gateway and choose Start)` };
  }
  const starting = run.at !== null && nowMs - Date.parse(run.at) < STARTING_MS;
  const s = run.cluster === undefined ? connectionStatus(cert, cps, inst, nowMs) : withPods(connectionStatus(cert, cps, inst, nowMs), run.cluster, inst.length);
  if (run.supervised === false && s.status !== "Ready") {
    // Tunnels never come up without instances: say so rather than wait (Provisioning, then Error) forever.
    const created = run.createdAt !== undefined && nowMs - Date.parse(run.createdAt) < STARTING_MS;
    // A connection point missing is a second thing to fix: say it too.
    const also = cps.length === 0 ? `; also, ${s.reason}` : "";
    return { status: starting ? "Starting" : created ? "Provisioning" : "Error", reason: unsupervisedReason(run.name ?? "NAME") + also };
  }
  if (starting && s.status !== "Ready" && s.status !== "Error") return { status: "Starting", reason: `started${since}: ${s.reason}` };
  if (starting && s.status === "Error" && !s.reason.startsWith("the server authentication certificate")) return { status: "Starting", reason: `started${since}: ${s.reason}` };
  return s;
}

/**
 * A kubernetes CMG's status from its tunnels and its StatefulSet: Ready only with every pod ready
 * too (a pod is ready once a connection point holds a tunnel to it), an apply or read that failed
 * named, a CMG not applied yet said so.
 */
function withPods(s: { status: CmgStatus; reason: string }, cluster: ClusterState | null, count: number): { status: CmgStatus; reason: string } {
  if (cluster === null) return { status: "Provisioning", reason: NOT_APPLIED };
  if (cluster.error) return { status: "Error", reason: `the cluster: ${cluster.error}` };
  const pods = `${cluster.readyReplicas} of ${count} pod(s) ready (StatefulSet replicas ${cluster.replicas}, seen ${cluster.observedAt})`;
  if (s.status === "Ready" && cluster.readyReplicas < count) return { status: "Degraded", reason: `${pods}; all tunnels up` };
  if (s.status === "Ready") return { status: "Ready", reason: `${s.reason}; ${pods}` };
  if (s.status === "Error" && s.reason.startsWith("the server authentication certificate")) return s;
  return { status: s.status, reason: `${s.reason}; ${pods}` };
}

/** Ready, Degraded, Error or Provisioning from the certificate and the connection points' reports. */
function connectionStatus(cert: X509Certificate, cps: readonly string[], inst: readonly CmgInstanceView[], nowMs: number): { status: CmgStatus; reason: string } {
  if (new Date(cert.validTo).getTime() < nowMs) return { status: "Error", reason: `the server authentication certificate expired on ${cert.validTo}: renew it (select the CMG, choose Properties, then Renew the server authentication certificate)` };
  if (cps.length === 0) return { status: "Provisioning", reason: "no CMG connection point is bound to it: add the CMG connection point role for it to a server (Servers and Site System Roles, the server's Properties, Site System Roles tab)" };
  const reported = inst.some((i) => i.connectionPoints.length > 0);
  if (!reported) return { status: "Provisioning", reason: `waiting for the connection point (${cps.join(", ")}) to reach the instances` };
  const down = inst.filter((i) => !i.connectionPoints.some((c) => c.connected));
  if (down.length === 0) return { status: "Ready", reason: `all ${inst.length} instance(s) connected to a connection point` };
  if (down.length === inst.length) return { status: "Error", reason: `no instance is connected to a connection point: ${down[0]!.connectionPoints[0]?.detail ?? "no report"}` };
  return { status: "Degraded", reason: `instance(s) ${down.map((i) => i.index).join(", ")} not connected to any connection point` };
}

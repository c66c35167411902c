/**
 * What one gateway instance writes about itself, as subscribers of the observe channels: its
 * Prometheus metrics, the request and tunnel lines of CMGHttpHandler.log and CMGService.log.
 * Subscribed for the instance's own source; the returned function unsubscribes on stop.
 */
import type { ComponentLog } from "../logs/cmtrace.ts";
import { Subscriptions, topics, type GatewayAbuseMessage, type GatewayFairShareMessage, type GatewayRequestMessage, type GatewayRequestResult, type Source } from "../observe/channels.ts";
import type { GatewayMetrics } from "./metrics.ts";
import type { TunnelPool } from "./tunnels/tunnel-pool.ts";
import { worthLogging } from "./admission.ts";

export interface GatewayObserverDeps {
  source: Source;
  metrics: GatewayMetrics;
  pool: TunnelPool;
  /** CMGHttpHandler.log */
  http: ComponentLog;
  /** CMGService.log */
  service: ComponentLog;
}

/**
 * Subscribes the instance's metrics and log lines; returns the unsubscribe function.
 *
 * @example
 * const unobserve = observeGateway({ source, metrics, pool, http, service });
 * // ... once stopped:
 * unobserve();
 */
export function observeGateway(d: GatewayObserverDeps): () => void {
  return new Subscriptions().add(gatewayMetricsObserver(d), gatewayLogObserver(d)).closer();
}

/** Prometheus metrics from requests (counts, durations, bytes), refusals, tunnel states and settings. */
export function gatewayMetricsObserver({ source, metrics, pool }: Pick<GatewayObserverDeps, "source" | "metrics" | "pool">): () => void {
  // Label children resolved once: these counters move on every request.
  const bytesIn = metrics.bytes.labels({ direction: "in" });
  const bytesOut = metrics.bytes.labels({ direction: "out" });
  const results = new Map<GatewayRequestResult, { inc(): void }>();
  const count = (result: GatewayRequestResult): void => {
    let child = results.get(result);
    if (!child) results.set(result, (child = metrics.requests.labels({ result })));
    child.inc();
  };
  const durations = new Map<string, { observe(seconds: number): void }>();
  const observeDuration = (m: GatewayRequestMessage): void => {
    const key = `${m.roleKind} ${m.result}`;
    let child = durations.get(key);
    if (!child) durations.set(key, (child = metrics.requestDuration.labels({ role_kind: m.roleKind, result: m.result })));
    child.observe(m.durationMs / 1000);
  };
  return new Subscriptions()
    .add(
      topics.gatewayRequest.subscribe((m) => {
        count(m.result);
        observeDuration(m);
        if (m.bytesIn) bytesIn.inc(m.bytesIn);
        if (m.bytesOut) bytesOut.inc(m.bytesOut);
        if (m.failovers) metrics.failovers.inc(m.failovers);
      }, source),
      topics.gatewayRefusal.subscribe((m) => {
        count(m.result);
        if (m.result === "refused") metrics.refusals.inc({ reason: m.reason });
      }, source),
      topics.tunnelState.subscribe((m) => {
        if (m.side !== "gateway") return;
        if (m.previous === null) metrics.tunnelSessionsTotal.inc();
        metrics.tunnelSessions.reset();
        for (const [cp, n] of pool.byConnectionPoint()) metrics.tunnelSessions.set({ connection_point: cp }, n);
      }, source),
      topics.settingsApplied.subscribe((m) => metrics.settingsRevision.set(m.revision), source),
      topics.gatewayAbuse.subscribe((m) => metrics.abuse.inc({ rule: m.rule, scope: m.scope }), source),
      topics.gatewayFairShare.subscribe((m) => metrics.fairShare.inc({ kind: m.kind, scope: m.scope }), source),
    )
    .closer();
}

/** One CMGHttpHandler.log line per relayed request; tunnel and settings lines in CMGService.log. */
export function gatewayLogObserver({ source, http, service }: Pick<GatewayObserverDeps, "source" | "http" | "service">): () => void {
  // Fair share events come by the thousand from a misbehaving client: lines at the 1st, 10th, 100th...
  const fairCounts = { busy: 0, upload_paused: 0 };
  return new Subscriptions()
    .add(
      topics.gatewayRequest.subscribe((m) => {
        if (m.result === "ok") http.info(requestLine(m));
      }, source),
      topics.gatewayAbuse.subscribe((m) => http.warn(abuseLine(m)), source),
      topics.gatewayFairShare.subscribe((m) => {
        const n = ++fairCounts[m.kind];
        if (worthLogging(n)) http.warn(fairShareLine(m, n));
      }, source),
      topics.tunnelState.subscribe((m) => {
        if (m.side !== "gateway") return;
        if (m.previous === null) service.info(`Connection point ${m.connectionPoint} opened ${m.tunnel}`);
        else if (m.state === "ready") service.info(`${m.tunnel} is ready`);
        else if (m.state === "closed") service.info(`${m.tunnel} closed after ${m.served} request(s)`);
      }, source),
      topics.settingsApplied.subscribe((m) => {
        service.info(
          `Settings revision ${m.revision} applied from ${m.from}: ${m.trustedRoots} trusted root(s), ` +
            `${m.intermediates} intermediate(s), CRL check ${m.crlCheck ? "on" : "off"}, ${m.roles} role(s) in the URL map`,
        );
      }, source),
    )
    .closer();
}

/**
 * `GET /CCM_Proxy_MutualAuth/7205.../SMS_MP/.sms_aut role 72057594037927941 (mp): 200, in 0 bytes,
 * out 512 bytes, 12 ms, client CN=PC-001 thumbprint 9E58... from 10.0.0.5 via cp1.contoso.com (request 1a2b...)`;
 * the query follows the path only when the instance traces queries.
 */
export function requestLine(m: GatewayRequestMessage): string {
  const who = m.client.subject ? `${m.client.subject} thumbprint ${m.client.thumbprint}` : `thumbprint ${m.client.thumbprint}`;
  return (
    `${m.method} ${m.path}${m.query ?? ""} role ${m.roleId} (${m.roleKind}): ${m.status}, in ${m.bytesIn} bytes, out ${m.bytesOut} bytes, ${m.durationMs} ms, ` +
    `client ${who} from ${m.clientAddress ?? "?"} via ${m.connectionPoint ?? "?"} (request ${m.requestId})`
  );
}

/** `Client thumbprint 9E58... from 10.0.0.5: upload paused 250 ms, over the client identity's upload share (100 such pauses so far)` */
export function fairShareLine(m: GatewayFairShareMessage, n: number): string {
  const whose = m.scope === "client" ? "client identity's" : "source address's";
  const what = m.kind === "busy" ? `request answered 429, over the ${whose} share of requests in progress` : `upload paused ${m.waitMs ?? 0} ms, over the ${whose} upload share`;
  return `Client thumbprint ${m.thumbprint || "?"} from ${m.clientAddress ?? "?"}: ${what} (${n} such ${m.kind === "busy" ? "refusals" : "pauses"} so far)`;
}

/** `Client CN=PC-001 thumbprint 9E58... from 10.0.0.5: 101 streams cancelled before an answer within 10000 ms on one connection (limit 100): ...` */
export function abuseLine(m: GatewayAbuseMessage): string {
  const who = m.thumbprint ? `${m.subject ? `${m.subject} ` : ""}thumbprint ${m.thumbprint}` : "without a certificate";
  const what = m.rule === "cancelled_streams" ? `${m.count} streams cancelled before an answer within ${m.windowMs} ms` : `${m.count} streams opened within ${m.windowMs} ms`;
  const where = m.scope === "connection" ? "on one connection" : "over all its connections";
  return (
    `Client ${who} from ${m.clientAddress ?? "?"}: ${what} ${where} (limit ${m.limit}): HTTP/2 stream abuse (rapid reset or flood); ` +
    `sent GOAWAY ENHANCE_YOUR_CALM and closed ${m.connections} connection(s)`
  );
}

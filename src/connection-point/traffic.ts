/**
 * The connection point's traffic between two reports: requests (failed ones apart), per role, and
 * the bytes on the tunnels' wire, broken down per gateway instance and per role kind.
 *
 * Per instance, the role kinds' bytes add up to the tunnel's wire bytes: each kind ("mp", "sup",
 * "-" for a role not in the URL map) counts the bodies of its requests and answers, and the kind
 * "tunnel" counts the rest (TLS, HTTP/2 framing and headers, keep-alives, control messages).
 */
import type { ForwardResult, ForwardUsage } from "./forwarder.ts";

/** What the tunnels' own bytes (not a request's body) are reported as. */
export const TUNNEL_KIND = "tunnel";

export interface KindTraffic {
  requests: number;
  failed: number;
  /** Bytes towards the devices (answers); on the wire to the gateway. */
  bytesToClients: number;
  /** Bytes from the devices (request bodies); on the wire from the gateway. */
  bytesFromClients: number;
}

export interface InstanceTraffic {
  /** Wire bytes (TLS included) sent to this instance: ≈ its outbound traffic to devices. */
  bytesToGateway: number;
  bytesFromGateway: number;
  /** By role kind: "mp", "sup", "-" (unknown role), "tunnel". */
  byKind: Record<string, KindTraffic>;
}

export interface TrafficReport {
  from: Date;
  to: Date;
  connectionPoint: string;
  requests: number;
  /** Requests refused here or not answered by the backend. */
  failed: number;
  /** Bytes sent to the gateways (≈ the gateways' outbound traffic to clients), TLS included. */
  bytesToGateway: number;
  /** Bytes received from the gateways. */
  bytesFromGateway: number;
  byRole: Record<string, { requests: number; failed: number }>;
  /** By gateway instance ("host:port"). */
  byInstance: Record<string, InstanceTraffic>;
}

interface Period {
  from: Date;
  requests: number;
  failed: number;
  bytesToGateway: number;
  bytesFromGateway: number;
  byRole: Record<string, { requests: number; failed: number }>;
  byInstance: Record<string, InstanceTraffic>;
}

/**
 * @example
 * const t = new TrafficCounter("cp1.contoso.local");
 * t.request(roleId, "ok", usage); t.bytes("gw:10140", sent, received);
 * onTraffic(t.take());
 */
export class TrafficCounter {
  #current: Period = TrafficCounter.#empty();
  /**
   * Body bytes counted before the wire bytes that carry them were (they wait in buffers): taken
   * off the next period's tunnel bytes, so that the kinds' sum stays the wire's over time.
   */
  readonly #ahead = new Map<string, { out: number; in: number }>();

  constructor(private readonly connectionPoint: string) {}

  /** A relayed request ended (cancelled ones are not counted as requests: the client went away; their bytes are). */
  request(roleId: string, result: ForwardResult, usage: ForwardUsage): void {
    const t = this.#current;
    const k = kindOf(this.#instance(usage.gateway), usage.kind);
    k.bytesToClients += usage.bytesToClient;
    k.bytesFromClients += usage.bytesFromClient;
    if (result === "cancelled") return;
    const failed = result === "ok" ? 0 : 1;
    t.requests++;
    t.failed += failed;
    k.requests++;
    k.failed += failed;
    const r = (t.byRole[roleId || "-"] ??= { requests: 0, failed: 0 });
    r.requests++;
    r.failed += failed;
  }

  bytes(gateway: string, toGateway: number, fromGateway: number): void {
    this.#current.bytesToGateway += toGateway;
    this.#current.bytesFromGateway += fromGateway;
    const i = this.#instance(gateway);
    i.bytesToGateway += toGateway;
    i.bytesFromGateway += fromGateway;
  }

  /** The report since the last one; counting starts over. */
  take(): TrafficReport {
    const t = this.#current;
    this.#current = TrafficCounter.#empty();
    for (const [gateway, i] of Object.entries(t.byInstance)) {
      let bodiesOut = 0;
      let bodiesIn = 0;
      for (const k of Object.values(i.byKind)) {
        bodiesOut += k.bytesToClients;
        bodiesIn += k.bytesFromClients;
      }
      const ahead = this.#ahead.get(gateway) ?? { out: 0, in: 0 };
      const out = i.bytesToGateway - bodiesOut - ahead.out;
      const inb = i.bytesFromGateway - bodiesIn - ahead.in;
      this.#ahead.set(gateway, { out: Math.max(0, -out), in: Math.max(0, -inb) });
      const tunnel = kindOf(i, TUNNEL_KIND);
      tunnel.bytesToClients = Math.max(0, out);
      tunnel.bytesFromClients = Math.max(0, inb);
    }
    return { ...t, to: new Date(), connectionPoint: this.connectionPoint };
  }

  #instance(gateway: string): InstanceTraffic {
    return (this.#current.byInstance[gateway] ??= { bytesToGateway: 0, bytesFromGateway: 0, byKind: {} });
  }

  static #empty(): Period {
    return { from: new Date(), requests: 0, failed: 0, bytesToGateway: 0, bytesFromGateway: 0, byRole: {}, byInstance: {} };
  }
}

function kindOf(i: InstanceTraffic, kind: string): KindTraffic {
  return (i.byKind[kind || "-"] ??= { requests: 0, failed: 0, bytesToClients: 0, bytesFromClients: 0 });
}

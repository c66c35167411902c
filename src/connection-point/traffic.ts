/**
 * The connection point's traffic between two reports: requests (failed ones apart), per role, and
 * the bytes on the tunnels' wire.
 */
import type { ForwardResult } from "./forwarder.ts";

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
}

/**
 * @example
 * const t = new TrafficCounter("cp1.contoso.local");
 * t.request(roleId, "ok"); t.bytes(sent, received);
 * onTraffic(t.take());
 */
export class TrafficCounter {
  #current = TrafficCounter.#empty();
  constructor(private readonly connectionPoint: string) {}

  /** A relayed request ended (cancelled ones are not traffic: the client went away). */
  request(roleId: string, result: ForwardResult): void {
    if (result === "cancelled") return;
    const t = this.#current;
    const failed = result === "ok" ? 0 : 1;
    t.requests++;
    t.failed += failed;
    const r = (t.byRole[roleId || "-"] ??= { requests: 0, failed: 0 });
    r.requests++;
    r.failed += failed;
  }

  bytes(toGateway: number, fromGateway: number): void {
    this.#current.bytesToGateway += toGateway;
    this.#current.bytesFromGateway += fromGateway;
  }

  /** The report since the last one; counting starts over. */
  take(): TrafficReport {
    const t = this.#current;
    this.#current = TrafficCounter.#empty();
    return { ...t, to: new Date(), connectionPoint: this.connectionPoint };
  }

  static #empty(): Omit<TrafficReport, "to" | "connectionPoint"> {
    return { from: new Date(), requests: 0, failed: 0, bytesToGateway: 0, bytesFromGateway: 0, byRole: {} };
  }
}

/**
 * What bench/capacity.ts and its load generators (devices.ts) share: the request mix, the
 * generator's job and its report.
 */
import type { CertKeyPem } from "../../src/pki/issue.ts";

export type Kind = "location" | "policy" | "status";
export const KINDS: Kind[] = ["location", "policy", "status"];
/** Real period of each kind for one device, seconds. */
export const PERIOD_S: Record<Kind, number> = { location: 86_400, policy: 3_600, status: 900 };

export interface DeviceTarget {
  origin: string;
  /** Path prefix in front of the management point's paths ("" for nginx). */
  prefix: string;
  servername: string;
}

export interface GeneratorJob {
  /** Name for the parent's messages. */
  id: number;
  first: number;
  idle: number;
  active: number;
  /** Loopback source addresses to spread the connections over. */
  addresses: string[];
  issuer: CertKeyPem;
  crlUrl: string;
  /** The CA of the server certificate every target presents. */
  ca: string;
  compress: number;
  idlePingS: number;
  backoffCapS: number;
  /** No request waits longer than this for its answer (a failure then). */
  requestTimeoutMs: number;
}

export interface GeneratorReport {
  type: "report";
  id: number;
  /** Latencies (ms) of the answered requests of each kind since the last reset, and the failures. */
  lat: Record<Kind, number[]>;
  failed: Record<Kind, number>;
  /** Failure reasons (status or error code) and their counts. */
  why: Record<string, number>;
  /** Devices with a live, authenticated connection now. */
  connected: number;
  /** Seconds from the storm's start until each device was back (only devices that came back). */
  back: number[];
  /** Connections that dropped since the last reset. */
  drops: number;
  /** Requests of the mix not sent because the device was reconnecting. */
  skipped: number;
  /** Tries of devices coming back (one request each) since the last reset, and why the failed ones failed. */
  tries: number;
  triesWhy: Record<string, number>;
  /** This generator's event-loop delay since the last reset (ms): how late its devices' half of each exchange came. */
  lagP99Ms: number;
  lagMaxMs: number;
  /** TLS connections made since the last reset, and how many of them resumed a session (a ticket). */
  handshakes: number;
  resumed: number;
}

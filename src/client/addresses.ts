/**
 * The addresses of a CMG's service name, in the order this client tries them. One name resolves
 * to every instance (DNS A records, docs/operations.md); each client prefers one address by a
 * stable hash of its ID (rendezvous hashing: clients spread evenly, and when an address goes away
 * only the clients that preferred it move) and fails over to the next in its own order. An
 * address that failed is tried last for a while, so a stopped instance costs one failed connect,
 * not one per request.
 */
import { createHash } from "node:crypto";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { ValidationError } from "../errors.ts";

/** A host name: dot-separated labels of 1-63 letters, digits and inner hyphens (the agent does not import the site's rules). */
const HOST_NAME = /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/** Every address `host` resolves to. */
export type Resolver = (host: string) => Promise<string[]>;

/** How long an address that refused, timed out or drained is tried last. */
export const AVOID_MS = 5 * 60_000;

/** The system's resolver: every address (dns.lookup all), each once. */
export const systemResolver: Resolver = async (host) => [...new Set((await lookup(host, { all: true })).map((a) => a.address))];

/**
 * `NAME=ADDR,ADDR,...` pairs (`client run --resolve`): the addresses given stand for the name,
 * as a hosts file would; other names go to `fallback`.
 *
 * @example
 * const resolve = staticResolver(parseResolve(["cmg.contoso.com=192.0.2.11,192.0.2.12"]));
 */
export function parseResolve(values: readonly string[], field = "resolve"): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const v of values) {
    const m = /^([^=\s]+)=(.+)$/.exec(v.trim());
    const name = m?.[1]?.toLowerCase();
    const addrs = m?.[2]?.split(",").map((a) => a.trim()) ?? [];
    if (!name || !HOST_NAME.test(name)) throw new ValidationError(field, "must be NAME=ADDR[,ADDR...] with a host name", `${field}: must be NAME=ADDR[,ADDR...] with a host name (got ${JSON.stringify(v)})`);
    const bad = addrs.find((a) => isIP(a) === 0);
    if (addrs.length === 0 || bad !== undefined) throw new ValidationError(field, "must list IP addresses after =", `${field}: ${name}: ${JSON.stringify(bad ?? "")} is not an IP address`);
    if (map.has(name)) throw new ValidationError(field, "must name each host once", `${field}: ${name} is given twice`);
    map.set(name, [...new Set(addrs)]);
  }
  return map;
}

export function staticResolver(map: ReadonlyMap<string, string[]>, fallback: Resolver = systemResolver): Resolver {
  return async (host) => map.get(host.toLowerCase()) ?? fallback(host);
}

/** `addresses` in this client's order of preference for `host`: highest hash of (key, host, address) first. */
export function preferenceOrder(key: string, host: string, addresses: readonly string[]): string[] {
  const score = (a: string): string => createHash("sha256").update(`${key}\0${host.toLowerCase()}\0${a}`).digest("hex");
  return [...addresses].map((a) => ({ a, s: score(a) })).sort((x, y) => (x.s < y.s ? 1 : x.s > y.s ? -1 : 0)).map((x) => x.a);
}

/**
 * @example
 * const spread = new ServiceAddresses(clientId, systemResolver);
 * spread.newCycle();
 * for (const address of (await spread.candidates("cmg.contoso.com")) ?? []) ...
 */
export class ServiceAddresses {
  private resolved = new Map<string, Promise<string[] | null>>();
  /** Address that failed -> until when it is tried last. */
  private readonly avoided = new Map<string, number>();
  constructor(
    private readonly key: string,
    private readonly resolver: Resolver = systemResolver,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new cycle: names are resolved again (DNS changes take effect) and the preferred address is tried first again. */
  newCycle(): void {
    this.resolved = new Map();
  }

  /**
   * The addresses to try for `host`, in order; null when there is nothing to spread over (an IP
   * address, a name with one address, or one that does not resolve: the request goes as it is).
   */
  async candidates(host: string): Promise<string[] | null> {
    const bare = host.replace(/^\[|\]$/g, "");
    if (isIP(bare) !== 0) return null;
    let p = this.resolved.get(bare);
    if (!p) {
      p = this.resolver(bare).then(
        (a) => {
          // Spread within one family: a name with one address of each (localhost: 127.0.0.1 and
          // ::1) is one host, left to the system; IPv4 first when both have several.
          const v4 = a.filter((x) => isIP(x) === 4);
          const v6 = a.filter((x) => isIP(x) === 6);
          const pool = v4.length > 1 ? v4 : v6.length > 1 ? v6 : null;
          return pool ? preferenceOrder(this.key, bare, pool) : null;
        },
        () => null,
      );
      this.resolved.set(bare, p);
    }
    const order = await p;
    if (!order) return null;
    const t = this.now();
    const avoid = (a: string): boolean => (this.avoided.get(a) ?? 0) > t;
    // Stable: the preference order within each group.
    return [...order.filter((a) => !avoid(a)), ...order.filter(avoid)];
  }

  /** `address` refused, timed out or is draining: tried last for AVOID_MS. */
  failed(address: string): void {
    this.avoided.set(address, this.now() + AVOID_MS);
  }

  /** `address` answered: no longer avoided. */
  worked(address: string): void {
    this.avoided.delete(address);
  }
}

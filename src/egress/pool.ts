/**
 * Egress for site roles: "give me what to send requests through for role R on server S".
 * The route is resolved fresh for every call (so a replaced proxy configuration applies to the
 * next request) while the Egress objects, and their kept-alive connections, are reused for as long
 * as the route stays the same.
 */
import { createHash } from "node:crypto";
import type { ComponentLog } from "../logs/cmtrace.ts";
import type { ProxyDecision } from "../proxy/rules.ts";
import type { Egress, EgressOptions } from "./egress.ts";
import type { EgressRoute } from "./route.ts";

/** Resolves the route of `subject` on `fqdn` (the site's ProxiesService.route). */
export type RouteResolver = (fqdn: string, subject: string) => Promise<{ decision: ProxyDecision; route: EgressRoute }>;

export interface EgressLease {
  egress: Egress;
  decision: ProxyDecision;
  route: EgressRoute;
}

export interface EgressProvider {
  for(fqdn: string, subject: string, log: ComponentLog): Promise<EgressLease>;
  close(): Promise<void>;
}

export interface EgressPoolOptions {
  /** Extra trusted roots for targets' TLS (a TLS-inspecting proxy's CA; the tests' CA). */
  ca?: string[] | undefined;
  connectTimeoutMs?: number | undefined;
  /** Name resolution for direct targets and proxy names (tests map names to loopback). */
  lookup?: EgressOptions["lookup"] | undefined;
}

/** One Egress per server, role or feature (subject) and route: each keeps its own connections and log. */
function routeKey(fqdn: string, subject: string, route: EgressRoute): { owner: string; key: string } {
  // The password is part of the identity of a route, but only as a hash.
  const cred = route.mode === "proxy" && route.credentials ? createHash("sha256").update(`${route.credentials.username}\0${route.credentials.password}`).digest("hex") : "";
  const owner = `${fqdn.toLowerCase()}|${subject}`;
  return { owner, key: route.mode === "direct" ? `${owner}|direct` : `${owner}|proxy|${route.host}|${route.port}|${cred}` };
}

export class EgressPool implements EgressProvider {
  /** owner (server and subject) -> its current route's key and Egress. */
  private readonly byOwner = new Map<string, { key: string; egress: Egress }>();
  constructor(
    private readonly resolve: RouteResolver,
    private readonly options: EgressPoolOptions = {},
  ) {}

  async for(fqdn: string, subject: string, log: ComponentLog): Promise<EgressLease> {
    const { decision, route } = await this.resolve(fqdn, subject);
    const { owner, key } = routeKey(fqdn, subject, route);
    const current = this.byOwner.get(owner);
    if (current?.key === key) return { egress: current.egress, decision, route };
    // undici is loaded with the first outbound call, not by every command that opens the site.
    const { Egress } = await import("./egress.ts");
    const o = this.options;
    const egress = new Egress(route, { log, ...(o.ca ? { ca: o.ca } : {}), ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}), ...(o.lookup ? { lookup: o.lookup } : {}) });
    // A route that changed leaves its old Egress behind; its kept-alive connections go with it.
    const raced = this.byOwner.get(owner);
    if (raced?.key === key) {
      void egress.close();
      return { egress: raced.egress, decision, route };
    }
    if (raced) void raced.egress.close();
    this.byOwner.set(owner, { key, egress });
    return { egress, decision, route };
  }

  async close(): Promise<void> {
    const all = [...this.byOwner.values()];
    this.byOwner.clear();
    await Promise.all(all.map((e) => e.egress.close()));
  }
}

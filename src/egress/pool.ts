/**
 * Egress for site roles: "give me what to send requests through for role R on server S".
 * The route is resolved fresh for every call (so a replaced proxy configuration applies to the
 * next request) while the Egress objects, and their kept-alive connections, are reused for as long
 * as the route stays the same.
 */
import { createHash } from "node:crypto";
import type { ComponentLog } from "../logs/cmtrace.ts";
import type { ProxyDecision } from "../proxy/rules.ts";
import { Egress, type EgressOptions } from "./egress.ts";
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

function routeKey(route: EgressRoute, logFile: string): string {
  // The password is part of the identity of a route, but only as a hash.
  const cred = route.mode === "proxy" && route.credentials ? createHash("sha256").update(`${route.credentials.username}\0${route.credentials.password}`).digest("hex") : "";
  return route.mode === "direct" ? `direct|${logFile}` : `proxy|${route.host}|${route.port}|${cred}|${logFile}`;
}

export class EgressPool implements EgressProvider {
  private readonly byKey = new Map<string, Egress>();
  constructor(
    private readonly resolve: RouteResolver,
    private readonly options: EgressPoolOptions = {},
  ) {}

  async for(fqdn: string, subject: string, log: ComponentLog): Promise<EgressLease> {
    const { decision, route } = await this.resolve(fqdn, subject);
    const key = routeKey(route, log.file);
    let egress = this.byKey.get(key);
    if (!egress) {
      egress = new Egress(route, { log, ...(this.options.ca ? { ca: this.options.ca } : {}), ...(this.options.connectTimeoutMs ? { connectTimeoutMs: this.options.connectTimeoutMs } : {}), ...(this.options.lookup ? { lookup: this.options.lookup } : {}) });
      // A route that changed leaves its old Egress behind: close those of the same log and mode.
      for (const [k, e] of this.byKey) {
        if (k.endsWith(`|${log.file}`) && k.split("|")[0] === key.split("|")[0] && k !== key) {
          this.byKey.delete(k);
          void e.close();
        }
      }
      this.byKey.set(key, egress);
    }
    return { egress, decision, route };
  }

  async close(): Promise<void> {
    const all = [...this.byKey.values()];
    this.byKey.clear();
    await Promise.all(all.map((e) => e.close()));
  }
}

/**
 * The connection point of a joined server: no database, no site key. It reads its configuration
 * from the site's join API over mutually authenticated TLS (its host certificate), gets its tunnel
 * certificate there for the key it holds, and reports health and traffic the same way. Its proxy
 * route comes with the configuration, so outbound tunnels follow the site's proxy settings.
 */
import { z } from "zod";
import { EgressPool } from "../../egress/pool.ts";
import type { JoinedHost } from "../../join/client.ts";
import type { ProxyDecision } from "../../proxy/rules.ts";
import type { EgressRoute } from "../../egress/route.ts";
import { check } from "../../site/validation.ts";
import { connectionPointConfigSchema, type ConnectionPointSite } from "./site-link.ts";
import type { ConnectionPointRoleDeps } from "./role.ts";
import type { LogSet } from "../../logs/cmtrace.ts";

const routeSchema = z.discriminatedUnion("mode", [
  z.strictObject({ mode: z.literal("direct") }),
  z.strictObject({ mode: z.literal("proxy"), host: z.string().min(1).max(253), port: z.number().int().min(1).max(65535), credentials: z.strictObject({ username: z.string(), password: z.string() }).optional() }),
]);
/** The decision travels for the log lines of the egress; the route is what is used. */
const egressSchema = z.strictObject({ decision: z.looseObject({ use: z.enum(["proxy", "direct", "none"]) }), route: routeSchema });
const answerSchema = connectionPointConfigSchema.extend({ egress: egressSchema });

export function joinedConnectionPointDeps(host: JoinedHost, logs: LogSet, o: { egressCa?: string[] } = {}): ConnectionPointRoleDeps {
  let egress: { decision: ProxyDecision; route: EgressRoute } = { decision: { use: "direct" } as ProxyDecision, route: { mode: "direct" } };
  const site: ConnectionPointSite = {
    caPem: host.caPem,
    async config(fqdn, knownCmg) {
      if (fqdn !== host.server) throw new Error(`this data folder joined the site as ${host.server}, not ${fqdn}`);
      const { egress: e, ...config } = check("config", answerSchema, await host.get(`/connection-point${knownCmg === undefined ? "" : `?cmg=${encodeURIComponent(knownCmg)}`}`));
      egress = { decision: e.decision as unknown as ProxyDecision, route: e.route as EgressRoute };
      return config;
    },
    async tunnelCertificate() {
      const r = check("certificate", z.object({ certificate: z.string() }), await host.post("/connection-point/certificate", {}));
      return { certPem: r.certificate, keyPem: host.keyPem };
    },
    async report(_fqdn, r) {
      await host.post("/connection-point/report", r);
    },
    async traffic(_fqdn, cmg, records) {
      await host.post("/connection-point/traffic", { cmg, records });
    },
  };
  const pool = new EgressPool(async () => egress, o.egressCa ? { ca: o.egressCa } : {});
  return { site, logs, egress: pool };
}

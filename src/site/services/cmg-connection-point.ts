/**
 * What a CMG's connection point needs of the site and tells it: the settings it pushes to every
 * instance, the backends it forwards to, and its tunnel reports (its traffic: cmg-traffic.ts).
 */
import { NotFoundError } from "../../errors.ts";
import type { CmgSettingsBase, RouteEntry } from "../../wire/tunnel/protocol.ts";
import { writeTransaction } from "../db/transaction.ts";
import { iso, type ServiceContext } from "./context.ts";
import type { RolesService } from "./roles.ts";
import type { TokensService } from "./tokens.ts";

export class CmgConnectionPointData {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly roles: RolesService,
    private readonly tokens: TokensService,
  ) {}

  /** What the connection point pushes to every instance: client trust, revocation, URL map, token trust. */
  async gatewaySettings(name: string): Promise<CmgSettingsBase> {
    const r = await this.ctx.db.selectFrom("cmgs").selectAll().where("name", "=", name.toLowerCase()).executeTakeFirst();
    if (!r) throw new NotFoundError("name", `CMG ${name}`);
    const urlMap: Record<string, RouteEntry> = {};
    for (const role of await this.roles.list()) {
      if (role.kind === "management-point") urlMap[String(role.id)] = { kind: "mp", allowCmgTraffic: role.settings.allowCmgTraffic };
      if (role.kind === "software-update-point") urlMap[String(role.id)] = { kind: "sup", allowCmgTraffic: role.settings.allowCmgTraffic };
    }
    // The policy travels only when it is stricter than the instance's built-in floor.
    const policy = r.min_rsa_bits > 2048 ? { clientCertPolicy: { minRsaBits: r.min_rsa_bits } } : {};
    // Token trust: the site's public signing keys, this CMG's audience, blocked clients, the directory's keys.
    const tokens = await this.tokens.gatewayTrust(r.name);
    return { revision: Number(r.revision), trustedRoots: JSON.parse(r.trusted_roots), intermediates: JSON.parse(r.intermediates), crlCheck: r.crl_check === 1, ...policy, urlMap, ...(tokens ? { tokens } : {}) };
  }

  /** roleId -> internal URL of every management point and software update point that allows CMG traffic. */
  async backends(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const role of await this.roles.list()) {
      if ((role.kind === "management-point" || role.kind === "software-update-point") && role.settings.allowCmgTraffic) out[String(role.id)] = role.settings.internalUrl ?? `https://${role.serverFqdn}`;
    }
    return out;
  }

  /** A connection point's view of its tunnels, recorded for the CMG's status. */
  async reportTunnels(name: string, connectionPoint: string, states: { instance: number; connected: boolean; detail: string }[]): Promise<void> {
    const at = iso(this.ctx.now());
    await writeTransaction(this.ctx.db, async (tx) => {
      for (const s of states) {
        await tx.deleteFrom("cmg_tunnels").where("cmg_name", "=", name).where("instance", "=", s.instance).where("connection_point", "=", connectionPoint).execute();
        await tx.insertInto("cmg_tunnels").values({ cmg_name: name, instance: s.instance, connection_point: connectionPoint, connected: s.connected ? 1 : 0, detail: s.detail, reported_at: at }).execute();
      }
    });
  }
}

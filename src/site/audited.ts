/**
 * The one door every administrative change goes through: the site's services, wrapped for an
 * actor. A call of a method listed in AUDITED is refused for a read-only actor, else runs and is
 * written to the audit log with the object before and after (secrets redacted). The CLI's opened
 * site and every admin API request use these wrapped services, so neither can change the site
 * without a record. Another service is audited by adding its line to AUDITED.
 */
import { ForbiddenError, OpenCmgError } from "../errors.ts";
import type { Actor, AuditService } from "./services/audit.ts";
import type { SiteServices } from "./site.ts";

/** How one changing method is recorded. */
export interface AuditRule {
  /** The object it changes, named from its arguments (e.g. `server/scp01.contoso.com/proxy`). */
  object(args: readonly unknown[]): string;
  /** Reads that object (before and after the call), null when it does not exist. Without it the result is the after. */
  read?(s: SiteServices, args: readonly unknown[]): Promise<unknown>;
  /** Recorded even when what `read` shows did not change (a new password, a secret replaced). */
  always?: boolean;
}

type Methods<T> = { [K in keyof T]: T[K] extends (...a: never[]) => Promise<unknown> ? K : never }[keyof T] & string;
export type AuditRules = { [S in keyof SiteServices]?: Partial<Record<Methods<SiteServices[S]>, AuditRule>> };

const arg = (a: readonly unknown[], i: number): string => String(a[i] ?? "");
const field = (a: readonly unknown[], name: string): string => String((a[0] as Record<string, unknown> | undefined)?.[name] ?? "");

/** An object named `kind/<first argument>` (or `kind/<first argument's field>`), read by `read`. */
export function named(kind: string, read: (s: SiteServices, id: string) => Promise<unknown>, from?: string): AuditRule {
  const id = (a: readonly unknown[]): string => (from ? field(a, from) : arg(a, 0));
  return { object: (a) => `${kind}/${id(a)}`, read: (s, a) => read(s, id(a)) };
}

const role: AuditRule = {
  object: (a) => `server/${arg(a, 0)}/role/${arg(a, 1)}`,
  read: async (s, a) => (await s.roles.list(arg(a, 0))).find((r) => r.kind === arg(a, 1)) ?? null,
};
const proxy: AuditRule = { object: (a) => `server/${arg(a, 0)}/proxy`, read: (s, a) => s.proxies.show(arg(a, 0)) };
const site = (from?: string) => named("site", async (s, code) => (await s.sites.find(code)) ?? null, from);
const server = (from?: string) => named("server", (s, fqdn) => s.servers.get(fqdn), from);
const account = named("account", (s, name) => s.accounts.get(name));
const password: AuditRule = { ...account, always: true };
const cmg = (from?: string) => named("cmg", (s, name) => s.cmgs.show(name), from);
const token = named("admin-token", (s, name) => s.adminTokens.get(name));
const setting = named("setting", (s, key) => s.settings.get(key));

/** Every method that changes the site, per service. */
export const AUDITED: AuditRules = {
  sites: { init: site("code"), add: site("code"), rename: site(), remove: site() },
  servers: { add: server("fqdn"), remove: server() },
  roles: { add: role, set: role, remove: role },
  accounts: { add: account, setPassword: password, remove: account },
  proxies: { set: proxy, clear: proxy },
  clients: { approve: named("client", (s, id) => s.clients.get(id)), block: named("client", (s, id) => s.clients.get(id)), setSettings: { object: () => "client-settings", read: (s) => s.clients.settings() } },
  cmgs: { create: cmg("name"), update: cmg(), delete: cmg(), remove: cmg(), stop: cmg(), start: cmg() },
  adrs: { add: named("adr", (s, name) => s.adrs.get(name), "name") },
  settings: { set: setting, reset: setting },
  cmgAlerts: { setTrafficAlert: { object: (a) => `cmg/${arg(a, 0)}/traffic-alert`, read: async (s, a) => (await s.cmgs.show(arg(a, 0))).deploy?.trafficAlert ?? null } },
  // The bulk token itself is redacted from the record (its "token" field); its ID and expiry stay.
  tokens: {
    createBulk: { object: () => "bulk-token" },
    revokeBulk: named("bulk-token", async (s, id) => (await s.tokens.listBulk()).find((b) => b.id === id) ?? null),
    rotateSigningKey: { object: () => "token-signing-keys", read: (s) => s.tokens.signingKeys(), always: true },
  },
  // A connection point certificate is recorded when the site issues one (not on every reuse).
  cmgTrust: {
    rotateSettingsKey: { object: () => "settings-signing-keys", read: (s) => s.cmgTrust.settingsKeys(), always: true },
    connectionPointCertificate: { object: (a) => `connection-point/${arg(a, 0).toLowerCase()}/certificates`, read: (s, a) => s.cmgTrust.connectionPointCertificates(arg(a, 0)) },
    revokeConnectionPoint: { object: (a) => `connection-point/${arg(a, 0).toLowerCase()}/certificates`, read: (s, a) => s.cmgTrust.connectionPointCertificates(arg(a, 0)) },
  },
  adminTokens: { create: token, revoke: token, adoptAdminFile: { object: () => "admin-token/admin", read: (s) => s.adminTokens.get("admin") } },
};

async function readOrNull(read: () => Promise<unknown>): Promise<unknown> {
  try {
    return (await read()) ?? null;
  } catch (e) {
    if (e instanceof OpenCmgError) return null; // not there (yet, or any more), or a bad name the call itself refuses
    throw e;
  }
}

function refuseReadOnly(actor: Actor, what: string): void {
  if (actor.readOnly) throw new ForbiddenError(`${actor.name} is a read-only admin token: ${what} changes the site`);
}

/** `raw`'s services for `actor`: the methods of `rules` refused when read-only, else audited. */
export function auditedServices(raw: SiteServices, actor: Actor, audit: AuditService, rules: AuditRules = AUDITED): SiteServices {
  const out: Record<string, unknown> = {};
  for (const [name, service] of Object.entries(raw) as [keyof SiteServices, object][]) {
    const serviceRules = rules[name] as Record<string, AuditRule> | undefined;
    out[name] = serviceRules ? wrap(service, name, serviceRules, raw, actor, audit) : service;
  }
  return out as unknown as SiteServices;
}

function wrap(service: object, name: string, rules: Record<string, AuditRule>, raw: SiteServices, actor: Actor, audit: AuditService): object {
  return new Proxy(service, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      const rule = typeof prop === "string" ? rules[prop] : undefined;
      // Bound to the service itself: its private fields and its own calls stay unwrapped.
      if (!rule) return (value as (...a: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]) => {
        const action = `${name}.${String(prop)}`;
        refuseReadOnly(actor, action);
        const object = rule.object(args);
        const before = rule.read ? await readOrNull(() => rule.read!(raw, args)) : null;
        const result: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        const after = rule.read ? await readOrNull(() => rule.read!(raw, args)) : result;
        // A call that changed nothing (`site init` run again) is not a change to record.
        if (rule.read && JSON.stringify(before) === JSON.stringify(after) && !rule.always) return result;
        await audit.record({ actor, action, object, before, after });
        return result;
      };
    },
  });
}

/**
 * An administrative action that is not one service call (a synchronisation, a rule run, a
 * connectivity check): refused for a read-only actor, else run and recorded with its outcome.
 */
export async function auditedAction<T>(audit: AuditService, actor: Actor, action: string, object: string, run: () => Promise<T>, outcome: (r: T) => unknown = (r) => r): Promise<T> {
  refuseReadOnly(actor, action);
  const result = await run();
  await audit.record({ actor, action, object, before: null, after: outcome(result) });
  return result;
}

/**
 * The one door every administrative change goes through: the site's services, wrapped for an
 * actor. Every public method of every service is classified in METHODS: a read, a system write
 * (what devices, connection points and role runners record as the product runs; not an
 * administrator's change), or an audited change with the rule that names and reads its object.
 * The table's type requires every public method (a new one fails the type check until it is
 * classified), and whatever the wrapper finds unclassified is audited all the same: being audited
 * is the default, a read or a system write is the exception that is written down.
 *
 * An audited change is refused for a read-only actor, else runs in ONE database transaction with
 * its audit record (the object before and after, secrets redacted): a change that fails leaves no
 * record, and a record that cannot be written rolls the change back. Hence a changing method
 * waits on no network and no other process (a CMG's delete is `beginDelete`, a wait outside, then
 * `finishDelete`). System writes are refused for a read-only actor too. The CLI's opened site and
 * every admin API request use these wrapped services, so neither changes the site without a record.
 */
import { ForbiddenError, OpenCmgError } from "../errors.ts";
import type { Actor, AuditService } from "./services/audit.ts";
import { allows, ROLE_LABELS } from "./services/admin-roles.ts";
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

/** A method that only reads: passed through for every actor. */
export const READ = "read";
/** A write the product makes as it runs (a device's registration, a status message): not audited, refused for a read-only actor. */
export const SYSTEM = "system";
export type MethodKind = AuditRule | typeof READ | typeof SYSTEM;

/** The public methods of a service (TypeScript's `keyof` leaves private members out). */
export type Methods<T> = { [K in keyof T]: T[K] extends (...a: never[]) => unknown ? K : never }[keyof T] & string;
/** Every public method of every service, classified. */
export type ServiceMethods = { [S in keyof SiteServices]: { [M in Methods<SiteServices[S]>]: MethodKind } };
/** The audited methods only (tests give their own). */
export type AuditRules = { [S in keyof SiteServices]?: Partial<Record<Methods<SiteServices[S]>, MethodKind>> };

const arg = (a: readonly unknown[], i: number): string => String(a[i] ?? "");
const field = (a: readonly unknown[], name: string): string => String((a[0] as Record<string, unknown> | undefined)?.[name] ?? "");

/** An object named `kind/<first argument>` (or `kind/<first argument's field>`), read by `read`. */
export function named(kind: string, read: (s: SiteServices, id: string) => Promise<unknown>, from?: string): AuditRule {
  const id = (a: readonly unknown[]): string => (from ? field(a, from) : arg(a, 0));
  return { object: (a) => `${kind}/${id(a)}`, read: (s, a) => read(s, id(a)) };
}

/** What a method nobody classified is recorded as: `<service>/<first argument>`, its result as the after. */
const unclassified = (service: string): AuditRule => ({ object: (a) => `${service}/${typeof a[0] === "string" ? a[0] : ""}` });

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
const client = named("client", (s, id) => s.clients.get(id));
const token = named("admin-token", (s, name) => s.adminTokens.get(name));
const setting = named("setting", (s, key) => s.settings.get(key));
/** `admin-user/<kind>/<value>`, from the first argument's fields or from two arguments. */
function adminUser(kind: string | number, value: string | number): AuditRule {
  const part = (a: readonly unknown[], k: string | number): string => (typeof k === "number" ? arg(a, k) : field(a, k));
  return {
    object: (a) => `admin-user/${part(a, kind)}/${part(a, value).trim()}`,
    read: async (s, a) => (await s.adminUsers.list()).find((u) => u.kind === part(a, kind) && u.value === part(a, value).trim()) ?? null,
  };
}
/** Services whose changes are of security: only an actor whose role grants it may make them. */
const SECURITY_SERVICES = new Set(["adminTokens", "adminUsers"]);
/**
 * Single changes of security in other services: turning off CRL checking or PKI client
 * certificates weakens how clients and site systems trust each other.
 */
const SECURITY_METHODS = new Set(["sites.setClientCommunication"]);

/** Every public method of every service: a read, a system write, or audited (how). */
export const METHODS: ServiceMethods = {
  sites: {
    init: site("code"),
    add: site("code"),
    rename: site(),
    remove: site(),
    setClientCommunication: { object: (a) => `site/${arg(a, 0).toUpperCase()}/client-communication`, read: async (s, a) => (await s.sites.find(arg(a, 0))) ? s.sites.clientCommunication(arg(a, 0)) : null },
    clientCommunication: READ,
    top: READ, requireTop: READ, find: READ, get: READ, list: READ },
  servers: { add: server("fqdn"), remove: server(), list: READ, get: READ },
  roles: { add: role, set: role, remove: role, list: READ, getById: READ, findOn: READ, softwareUpdatePoint: READ },
  // credentials: the opened password, for the egress pool's proxy authentication.
  accounts: { add: account, setPassword: password, remove: account, list: READ, get: READ, credentials: READ },
  proxies: { set: proxy, clear: proxy, show: READ, effective: READ, route: READ },
  // deleteOlderThan: the retention schedule's Delete Aged Status Messages (the setting itself is audited).
  status: { raise: SYSTEM, setComponent: SYSTEM, deleteOlderThan: SYSTEM, clientCountSince: READ, messages: READ, page: READ, latest: READ, components: READ },
  clients: {
    approve: client,
    block: client,
    approveKey: client,
    setSettings: { object: () => "client-settings", read: (s) => s.clients.settings() },
    // A device registering, its token key bound, its last contact.
    registerWithCertificate: SYSTEM,
    requestRegistration: SYSTEM,
    registerWithToken: SYSTEM,
    bindTokenKey: SYSTEM,
    touch: SYSTEM,
    noteStatusRefused: SYSTEM,
    findByThumbprint: READ,
    findByDirectoryId: READ,
    keyChange: READ,
    findByToken: READ,
    get: READ,
    pendingCount: READ,
    list: READ,
    settings: READ,
  },
  cmgs: {
    create: cmg("name"),
    update: cmg(),
    beginDelete: cmg(),
    finishDelete: cmg(),
    remove: cmg(),
    stop: cmg(),
    start: cmg(),
    // The local provider's restarts and the connection points' tunnel reports.
    recordRestart: SYSTEM,
    reportTunnels: SYSTEM,
    // What the kubernetes provider saw in the cluster.
    recordClusterState: SYSTEM,
    clusterState: READ,
    exists: READ,
    list: READ,
    show: READ,
    providerRunning: READ,
    serverCertificate: READ,
    gatewaySettings: READ,
    backends: READ,
  },
  cmgTraffic: { record: SYSTEM, outboundBytes: READ, summary: READ },
  cmgAlerts: {
    setTrafficAlert: { object: (a) => `cmg/${arg(a, 0)}/traffic-alert`, read: async (s, a) => (await s.cmgs.show(arg(a, 0))).deploy?.trafficAlert ?? null },
    // The alert evaluator's levels.
    setState: SYSTEM,
    trafficAlert: READ,
    states: READ,
  },
  // A synchronisation's catalog (the synchronisation itself is audited as `sup.sync`).
  updates: { store: SYSTEM, list: READ, filesOf: READ },
  // A rule run's downloads (the run is audited as `adrs.run`).
  // edit may rename: the rule is read by its old name before and by its new one after.
  adrs: {
    add: named("adr", (s, name) => s.adrs.get(name), "name"),
    edit: { object: (a) => `adr/${arg(a, 0)}`, read: async (s, a) => (await s.adrs.find(arg(a, 0))) ?? (await s.adrs.find(field(a.slice(1), "name"))) ?? null },
    setEnabled: named("adr", (s, name) => s.adrs.get(name)),
    remove: named("adr", (s, name) => s.adrs.get(name)),
    recordDownload: SYSTEM,
    list: READ,
    find: READ,
    get: READ,
    runAfterSync: READ,
    results: READ,
  },
  // secret: the opened client secret of the administrators' directory, for its sign-in only.
  settings: { set: setting, reset: setting, list: READ, get: READ, durationMs: READ, count: READ, secret: READ },
  // The bulk token itself is redacted from the record (its "token" field); its ID and expiry stay.
  tokens: {
    createBulk: { object: () => "bulk-token" },
    revokeBulk: named("bulk-token", async (s, id) => (await s.tokens.listBulk()).find((b) => b.id === id) ?? null),
    rotateSigningKey: { object: () => "token-signing-keys", read: (s) => s.tokens.signingKeys(), always: true },
    // A device's registration using a bulk token, its client token; the first signing key made on first use.
    useBulk: SYSTEM,
    recordIdTokenUse: SYSTEM,
    noteIdTokenClient: SYSTEM,
    idTokenClient: READ,
    issueClientToken: SYSTEM,
    gatewayTrust: SYSTEM,
    listBulk: READ,
    signingKeys: READ,
    publicKeys: READ,
  },
  adminTokens: { create: token, revoke: token, setRole: token, adoptAdminFile: { object: () => "admin-token/admin", read: (s) => s.adminTokens.get("admin") }, list: READ, get: READ, verify: READ },
  adminUsers: { add: adminUser("kind", "value"), setRole: adminUser(0, 1), remove: adminUser(0, 1), list: READ, get: READ, resolve: READ },
  // record: written by this wrapper through the raw service; called through the wrapper it forges nothing for a read-only actor.
  audit: { record: SYSTEM, recordAfter: SYSTEM, list: READ },
  // A connectivity check's run (its start is audited as `checks.start`).
  checks: { start: SYSTEM, finish: SYSTEM, fail: SYSTEM, abandonRunning: SYSTEM, get: READ, list: READ },
  // A connection point certificate is recorded when the site issues one (not on every reuse).
  cmgTrust: {
    rotateSettingsKey: { object: () => "settings-signing-keys", read: (s) => s.cmgTrust.settingsKeys(), always: true },
    connectionPointCertificate: { object: (a) => `connection-point/${arg(a, 0).toLowerCase()}/certificates`, read: (s, a) => s.cmgTrust.connectionPointCertificates(arg(a, 0)) },
    revokeConnectionPoint: { object: (a) => `connection-point/${arg(a, 0).toLowerCase()}/certificates`, read: (s, a) => s.cmgTrust.connectionPointCertificates(arg(a, 0)) },
    // A joined connection point's tunnel certificate, issued for the key it holds.
    connectionPointCertificateFor: { object: (a) => `connection-point/${arg(a, 0).toLowerCase()}/certificates`, read: (s, a) => s.cmgTrust.connectionPointCertificates(arg(a, 0)) },
    // The signed settings: the site's revision counter moves when their content does (bookkeeping, not a change of configuration).
    signedSettings: SYSTEM,
    startupTrust: SYSTEM,
    settingsKeys: READ,
    connectionPointCertificates: READ,
    admitted: READ,
  },
  // The token is redacted from the record (its "token" field); the host certificate's serial is in the after.
  joins: {
    createToken: { object: (a) => `server/${field(a, "server").toLowerCase()}/join-token` },
    revokeToken: named("join-token", (s, id) => s.joins.getToken(id)),
    join: { object: (a) => `join-token/${joinTokenId(a)}`, read: (s, a) => s.joins.getToken(joinTokenId(a)) },
    // A joined management point's or software update point's server certificate, issued at each start for its host key.
    roleCertificateFor: { object: (a) => `server/${arg(a, 0).toLowerCase()}/role/${arg(a, 1)}/certificate` },
    listTokens: READ,
    getToken: READ,
    joinedServer: READ,
  },
};

/** The ID part of a join request's token (never its secret). */
function joinTokenId(a: readonly unknown[]): string {
  return field(a, "token").split(".")[0]!.slice(0, 36);
}

async function readOrNull(read: () => Promise<unknown>): Promise<unknown> {
  try {
    return (await read()) ?? null;
  } catch (e) {
    if (e instanceof OpenCmgError) return null; // not there (yet, or any more), or a bad name the call itself refuses
    throw e;
  }
}

function refuseReadOnly(actor: Actor, what: string): void {
  if (actor.readOnly) throw new ForbiddenError(`${actor.name} is a ${actor.role ? ROLE_LABELS[actor.role] : "read-only admin token"}: ${what} changes the site`);
}

/** The API checks each route's permission first; this keeps the security services closed to any other way in. */
function refuseSecurity(actor: Actor, service: string, what: string): void {
  if (actor.role && (SECURITY_SERVICES.has(service) || SECURITY_METHODS.has(what)) && !allows(actor.role, "security")) throw new ForbiddenError(`${actor.name} is a ${ROLE_LABELS[actor.role]}: ${what} needs a Full Administrator`);
}

/** Runs a change and its audit record in one database transaction (site/db/transaction.ts). */
export type Transact = <T>(fn: () => Promise<T>) => Promise<T>;

/** `raw`'s services for `actor`: reads passed through, system writes refused when read-only, everything else audited (see the top). */
export function auditedServices(raw: SiteServices, actor: Actor, audit: AuditService, transact: Transact, rules: AuditRules = METHODS): SiteServices {
  const out: Record<string, unknown> = {};
  for (const [name, service] of Object.entries(raw) as [keyof SiteServices, object][]) {
    out[name] = wrap(service, name, (rules[name] ?? {}) as Record<string, MethodKind>, raw, actor, audit, transact);
  }
  return out as unknown as SiteServices;
}

function wrap(service: object, name: string, rules: Record<string, MethodKind>, raw: SiteServices, actor: Actor, audit: AuditService, transact: Transact): object {
  return new Proxy(service, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function" || typeof prop !== "string") return value;
      // Bound to the service itself: its private fields and its own calls stay unwrapped.
      const method = (value as (...a: unknown[]) => unknown).bind(target);
      const kind: MethodKind = Object.hasOwn(rules, prop) ? rules[prop]! : unclassified(name);
      const action = `${name}.${prop}`;
      if (kind === READ) return method;
      if (kind === SYSTEM)
        return (...args: unknown[]) => {
          refuseReadOnly(actor, action);
          return method(...args);
        };
      return async (...args: unknown[]) => {
        refuseReadOnly(actor, action);
        refuseSecurity(actor, name, action);
        return transact(async () => {
          const object = kind.object(args);
          const before = kind.read ? await readOrNull(() => kind.read!(raw, args)) : null;
          const result: unknown = await method(...args);
          const after = kind.read ? await readOrNull(() => kind.read!(raw, args)) : result;
          // A call that changed nothing (`site init` run again) is not a change to record.
          if (kind.read && JSON.stringify(before) === JSON.stringify(after) && !kind.always) return result;
          // In the change's transaction: if the record cannot be written, the change is rolled back.
          await audit.record({ actor, action, object, before, after });
          return result;
        });
      };
    },
  });
}

/**
 * An administrative action that is not one service call (a synchronisation, a rule run, a
 * connectivity check start): refused for a read-only actor, else run and recorded with its outcome.
 */
export async function auditedAction<T>(audit: AuditService, actor: Actor, action: string, object: string, run: () => Promise<T>, outcome: (r: T) => unknown = (r) => r): Promise<T> {
  refuseReadOnly(actor, action);
  const result = await run();
  // A run that took minutes and wrote through the services as it went is not one transaction: its
  // record comes after it, and one the database refuses goes to smsprov.log instead.
  await audit.recordAfter({ actor, action, object, before: null, after: outcome(result) });
  return result;
}

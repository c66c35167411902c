/**
 * What the management point does for clients, one handler per request: registration, location,
 * policy, status upload. HTTP plumbing (TLS, bodies, answers) is in server.ts; who the caller is
 * comes from identity.ts.
 */
import { ValidationError } from "../../errors.ts";
import type { ComponentLog } from "../../logs/cmtrace.ts";
import type { RolesService } from "../../site/services/roles.ts";
import type { Client, ClientsService, ConnectionType } from "../../site/services/clients.ts";
import type { SitesService } from "../../site/services/sites.ts";
import type { StatusService } from "../../site/services/status.ts";
import type { TokensService } from "../../site/services/tokens.ts";
import { internetMpUrl } from "./internet-mps.ts";
import { TOKEN_SCHEME } from "../../wire/tokens.ts";
import { checkObject } from "../../site/validation.ts";
import type { Caller } from "./identity.ts";
import type { InternetMp } from "./internet-mps.ts";
import { MpError } from "./mp-error.ts";
import { KeyProofError, verifyKeyProof } from "../../wire/key-proof.ts";
import { randomUUID } from "node:crypto";
import type { MpMetrics } from "./metrics.ts";
import type { StatusLimiter } from "./status-limit.ts";
import { isSiteComponent, SITE_COMPONENT_PREFIX, SITE_MESSAGE_IDS } from "../../site/status-ids.ts";
import {
  registerRequest,
  statusItem,
  statusUpload,
  UPLOAD_TYPES,
  type LocationAnswer,
  type MpCandidate,
  type PolicyAnswer,
  type ClientTokenAnswer,
  type RegisterAnswer,
  type RegisterRequest,
  type StatusItem,
  type StatusUploadAnswer,
} from "../../wire/mp.ts";

export interface HandlerDeps {
  clients: ClientsService;
  roles: RolesService;
  status: StatusService;
  siteCode: string;
  sites: Pick<SitesService, "clientCommunication">;
  internetMps: () => Promise<InternetMp[]>;
  /** Registrations without a certificate that may await approval at once. */
  maxPendingRegistrations: number;
  /** Site-issued tokens: bulk token uses, directory ID token uses, client tokens issued and renewed. */
  tokens: Pick<TokensService, "useBulk" | "recordIdTokenUse" | "noteIdTokenClient" | "idTokenClient" | "issueClientToken">;
  now?: () => Date;
  /** Each client's status message limits (rate, count per day). */
  statusLimits: StatusLimiter;
  metrics: MpMetrics;
}

export interface MpLogs {
  registration: ComponentLog;
  location: ComponentLog;
  policy: ComponentLog;
  status: ComponentLog;
  control: ComponentLog;
}

/**
 * The client behind a request, or the refusal that says why there is none. Changes nothing: the
 * last contact is recorded by the endpoint once the request succeeded.
 */
export async function resolveClient(deps: HandlerDeps, caller: Caller, o: { requireApproved: boolean }): Promise<{ client: Client; connectionType: ConnectionType }> {
  let client: Client | undefined;
  let connectionType: ConnectionType = "intranet";
  switch (caller.kind) {
    case "certificate":
      client = await deps.clients.findByThumbprint(caller.thumbprint);
      connectionType = caller.connectionType;
      if (!client) throw new MpError(403, "not_registered", `no client is registered with the certificate "${caller.subject}" (${caller.thumbprint}); register first (POST /SMS_MP/v1/register)`);
      break;
    case "untrusted-certificate":
      throw untrusted(caller);
    case "token":
      client = await deps.clients.findByToken(caller.token);
      if (!client) throw new MpError(401, "client_identity_required", "the registration token is not known to this site; register again");
      break;
    case "anonymous":
      throw new MpError(401, "client_identity_required", "present a client authentication certificate (or the token of a registration request)");
    case "site-token": {
      if (caller.type !== "client") throw new MpError(401, "registration_token_only", `a ${caller.type === "bulk" ? "bulk registration" : "directory ID"} token only registers a device; use the client token the registration gave`);
      client = await deps.clients.get(caller.id).catch(() => undefined);
      if (!client) throw new MpError(401, "not_registered", `client ${caller.id} of this client token is not registered at this site; install again`);
      if (client.tokenKey !== caller.jkt) throw new MpError(401, "token_key_mismatch", `the client token of ${client.id} is bound to another key than the one this request proved; install again`);
      connectionType = "internet";
      break;
    }
  }
  if (client.blocked) throw new MpError(403, "client_blocked", `client ${client.id} (${client.name}) is blocked by an administrator`);
  if (o.requireApproved && !client.approved) throw new MpError(403, "awaiting_approval", `client ${client.id} (${client.name}) awaits approval: opencmg site clients approve ${client.id}`);
  return { client, connectionType };
}

function untrusted(caller: Extract<Caller, { kind: "untrusted-certificate" }>): MpError {
  return new MpError(403, "untrusted_certificate", `the client certificate "${caller.subject}" (${caller.thumbprint}) is not trusted: ${caller.detail}`);
}

/** Client registration: by certificate (approved at once) or by request (approved by the site). */
export async function register(deps: HandlerDeps, log: ComponentLog, caller: Caller, body: unknown): Promise<RegisterAnswer> {
  const req = checkObject(registerRequest, body);
  const seen = caller.kind === "certificate" || caller.kind === "untrusted-certificate" ? caller.thumbprint : undefined;
  if (req.thumbprint && req.thumbprint.toUpperCase() !== seen) {
    throw new MpError(
      400,
      "certificate_not_seen",
      `the registration is for certificate ${req.thumbprint.toUpperCase()}, but ${seen ? `this connection presented ${seen}` : "this connection presented no client certificate"}: a client registers the certificate it authenticates with`,
    );
  }
  switch (caller.kind) {
    case "untrusted-certificate":
      throw untrusted(caller);
    case "site-token":
      return registerWithToken(deps, log, caller, req);
    case "certificate": {
      const { client, created } = await deps.clients.registerWithCertificate({
        name: req.name,
        thumbprint: caller.thumbprint,
        subject: caller.subject,
        connectionType: caller.connectionType,
        alwaysInternet: req.alwaysInternet,
        rootThumbprint: caller.root,
      });
      log.info(`${created ? "Registered" : "Re-registered"} client ${client.id} (${client.name}) with certificate "${caller.subject}" (${caller.thumbprint}), ${caller.connectionType} via ${caller.via}.`);
      // A blocked client gets no token (every other request of it is refused anyway).
      return { clientId: client.id, approved: true, connectionType: caller.connectionType, ...(client.blocked ? {} : await clientTokenFor(deps, log, client, req)) };
    }
    case "token": {
      const { client } = await resolveClient(deps, caller, { requireApproved: false });
      await deps.clients.touch(client.id, "intranet");
      log.info(`Client ${client.id} (${client.name}) registered again with its token; ${client.approved ? "approved" : "still awaiting approval"}.`);
      // A client token only once an administrator approved the request.
      return { clientId: client.id, approved: client.approved, connectionType: "intranet", ...(client.approved ? await clientTokenFor(deps, log, client, req) : {}) };
    }
    case "anonymous": {
      const pending = await deps.clients.pendingCount();
      if (pending >= deps.maxPendingRegistrations) {
        log.error(`${pending} registrations without a certificate await approval, the most allowed: refusing more until some are approved or removed (opencmg site clients).`);
        throw new MpError(429, "too_many_registrations", "too many registrations await an administrator's approval; try again later", 3600);
      }
      const { client, token } = await deps.clients.requestRegistration({ name: req.name, connectionType: "intranet", alwaysInternet: req.alwaysInternet });
      log.info(`Registration request from ${client.name} without a certificate: client ${client.id} awaits approval (opencmg site clients approve ${client.id}).`);
      return { clientId: client.id, approved: false, token, connectionType: "intranet" };
    }
  }
}

type RegisterBody = RegisterRequest;

/**
 * Registration through `/CCM_Proxy_ServerAuth/` with a bulk registration token (any number of
 * devices while it is valid and under its cap; the same device, known by its key, gets its client
 * again), a directory ID token (once per token; the same directory device keeps its client ID), or
 * the client's own token (registering again). The answer carries the client token, bound to the
 * key the device proved. A bound key is replaced only with a proof made by that key, or with an
 * administrator's approval of the new one.
 */
async function registerWithToken(deps: HandlerDeps, log: ComponentLog, caller: Extract<Caller, { kind: "site-token" }>, req: RegisterBody): Promise<RegisterAnswer> {
  let client: Client;
  let how: string;
  if (caller.type === "client") {
    ({ client } = await resolveClient(deps, caller, { requireApproved: true }));
    how = "with its client token";
  } else if (caller.type === "bulk") {
    const used = await deps.tokens.useBulk(caller.id, caller.jkt, `GUID:${randomUUID().toUpperCase()}`);
    if (!used.ok) {
      const why = { bulk_token_unknown: "is not known to this site", bulk_token_used: `has registered as many devices as it may (${used.maxUses ?? "?"}, its --max-uses)`, bulk_token_revoked: "was revoked", bulk_token_expired: "has expired" }[used.reason];
      log.warn(`Refused a registration with bulk registration token ${caller.id} via ${caller.via} (key ${caller.jkt}): it ${why}.`);
      throw new MpError(401, used.reason, `the bulk registration token ${caller.id} ${why}`);
    }
    if (used.existing) {
      // The device this key registered before: it is itself again, unless its key changed since.
      const before = await deps.clients.get(used.clientId).catch(() => undefined);
      if (before?.blocked) throw new MpError(403, "client_blocked", `client ${before.id} (${before.name}) is blocked by an administrator`);
      if (before && deps.clients.keyChange(before, caller.jkt) === "unproven") throw keyChangeRefusal(before, caller.jkt);
    }
    ({ client } = await deps.clients.registerWithToken({ id: used.clientId, name: req.name, jkt: caller.jkt, alwaysInternet: req.alwaysInternet }));
    how = `with bulk registration token ${caller.id}${used.existing ? " (a device it registered before: the same client)" : ""}`;
  } else {
    if (!caller.use) throw new MpError(401, "client_identity_required", `the connection point relayed a directory ID token without its ID and expiry (${caller.via}); update the CMG`);
    const useKey = `${caller.id.split(" ")[0]} ${caller.use.key}`;
    if (!(await deps.tokens.recordIdTokenUse(useKey, caller.use.expiresAt))) {
      const first = await deps.tokens.idTokenClient(useKey);
      log.error(`Refused a replayed directory ID token for ${caller.id} (${caller.use.key.startsWith("jti:") ? caller.use.key : "token hash"}) via ${caller.via}, key ${caller.jkt}: it registered ${first ?? "a device"} before; an ID token registers once.`);
      throw new MpError(401, "id_token_replayed", "this directory ID token has registered a device already: an ID token registers once; sign in at the directory again for a new one");
    }
    const directoryId = `oidc:${caller.id}`;
    const known = await deps.clients.findByDirectoryId(directoryId);
    let keyNote = "";
    if (known) {
      if (known.blocked) throw new MpError(403, "client_blocked", `client ${known.id} (${known.name}) is blocked by an administrator`);
      const change = await checkKeyChange(deps, known, caller.jkt, req);
      if (change === "unproven") {
        log.error(`Refused directory sign-in as ${caller.id} via ${caller.via}: client ${known.id} is bound to key ${known.tokenKey}, and the request for key ${caller.jkt} carries no proof made by that key nor an administrator's approval.`);
        throw keyChangeRefusal(known, caller.jkt);
      }
      if (change !== "none") keyNote = `; key ${known.tokenKey} replaced by ${caller.jkt} (${change === "proved" ? "proof made by the old key" : "approved by an administrator"})`;
    }
    const r = await deps.clients.registerWithToken({ name: req.name, jkt: caller.jkt, directoryId, alwaysInternet: req.alwaysInternet });
    client = r.client;
    await deps.tokens.noteIdTokenClient(useKey, client.id);
    how = `by directory sign-in as ${caller.id}${r.created ? "" : " (known device)"}${keyNote}`;
  }
  const issued = await deps.tokens.issueClientToken(client.id, caller.jkt);
  log.info(`Registered client ${client.id} (${client.name}) ${how}, internet via ${caller.via}; client token issued until ${issued.expiresAt}, bound to key ${caller.jkt}.`);
  return { clientId: client.id, approved: true, connectionType: "internet", clientToken: issued.token, clientTokenExpiresAt: issued.expiresAt };
}

/**
 * Binding `jkt` to `client`: "none" (no key bound, or the same), "approved" (an administrator
 * approved exactly this key), "proved" (the request carries a proof by the bound key naming this
 * client and `jkt`), or "unproven". A proof that does not verify is refused outright.
 */
async function checkKeyChange(deps: HandlerDeps, client: Client, jkt: string, req: RegisterBody): Promise<"none" | "approved" | "proved" | "unproven"> {
  const change = deps.clients.keyChange(client, jkt);
  if (change !== "unproven" || !req.keyChangeProof) return change;
  try {
    const p = await verifyKeyProof(req.keyChangeProof, "replace", (deps.now ?? (() => new Date()))());
    if (p.jkt !== client.tokenKey) throw new KeyProofError(`the key change proof is signed by key ${p.jkt}, not by the key ${client.id} is bound to`);
    if (p.sub !== client.id) throw new KeyProofError(`the key change proof is for client ${String(p.sub).slice(0, 60)}, not ${client.id}`);
    if (p.newJkt !== jkt) throw new KeyProofError("the key change proof names another new key than the one this request proved");
    return "proved";
  } catch (e) {
    if (e instanceof KeyProofError) throw new MpError(400, "invalid_key_proof", e.message);
    throw e;
  }
}

// The printed command puts `--` before the thumbprint: a base64url thumbprint starts with "-" one time in 64.
function keyChangeRefusal(client: Client, jkt: string): MpError {
  return new MpError(
    403,
    "key_change_unproven",
    `client ${client.id} (${client.name}) is bound to another key than this device's (${jkt}): its key is replaced only with a proof made by the old key (keyChangeProof), or after an administrator approves the new key: opencmg site clients approve-key ${client.id} -- ${jkt}`,
  );
}

/**
 * A certificate or approved request-token client that proved a key (`tokenKeyProof`): a client
 * token bound to it, so the device can move off its certificate. A key other than the bound one
 * needs the old key's proof or an administrator's approval; without either the registration still
 * stands (the certificate or request token proved the client), the answer says why no token came.
 */
async function clientTokenFor(deps: HandlerDeps, log: ComponentLog, client: Client, req: RegisterBody): Promise<Pick<RegisterAnswer, "clientToken" | "clientTokenExpiresAt" | "clientTokenRefused">> {
  if (!req.tokenKeyProof) return {};
  let jkt: string;
  try {
    jkt = (await verifyKeyProof(req.tokenKeyProof, "bind", (deps.now ?? (() => new Date()))())).jkt;
  } catch (e) {
    if (e instanceof KeyProofError) throw new MpError(400, "invalid_key_proof", e.message);
    throw e;
  }
  const change = await checkKeyChange(deps, client, jkt, req);
  if (change === "unproven") {
    const refusal = keyChangeRefusal(client, jkt);
    log.warn(`No client token for ${client.id} (${client.name}): it is bound to key ${client.tokenKey}, and the request for key ${jkt} carries no proof made by that key nor an administrator's approval.`);
    return { clientTokenRefused: { error: "key_change_unproven", message: refusal.message } };
  }
  if (change !== "none" || client.tokenKey !== jkt) await deps.clients.bindTokenKey(client.id, jkt);
  const issued = await deps.tokens.issueClientToken(client.id, jkt);
  log.info(`Client token issued to ${client.id} (${client.name}) until ${issued.expiresAt}, bound to key ${jkt}${change === "none" ? "" : ` (replacing ${client.tokenKey}: ${change === "proved" ? "proof made by the old key" : "approved by an administrator"})`}.`);
  return { clientToken: issued.token, clientTokenExpiresAt: issued.expiresAt };
}

/** Client token renewal: a new token for the same client and key (the client renews after 30 days). */
export async function renewToken(deps: HandlerDeps, log: ComponentLog, caller: Caller): Promise<ClientTokenAnswer> {
  if (caller.kind !== "site-token") throw new MpError(401, "client_identity_required", "only a client token is renewed here");
  const { client } = await resolveClient(deps, caller, { requireApproved: true });
  const issued = await deps.tokens.issueClientToken(client.id, caller.jkt);
  await deps.clients.touch(client.id, "internet");
  log.info(`Client token of ${client.id} (${client.name}) renewed until ${issued.expiresAt}.`);
  return { clientToken: issued.token, expiresAt: issued.expiresAt };
}

/**
 * Location request: every intranet management point, and the CMGs as internet management points
 * unless the client settings turned CMG use off.
 */
export async function locate(deps: HandlerDeps, log: ComponentLog, caller: Caller): Promise<LocationAnswer> {
  const { client, connectionType } = await resolveClient(deps, caller, { requireApproved: false });
  const settings = await deps.clients.settings();
  // A token client has no certificate: intranet management points cannot identify it, and it uses
  // the CMG's token URL (`/CCM_Proxy_ServerAuth/<roleId>`).
  const tokenClient = caller.kind === "site-token";
  const intranet: MpCandidate[] = tokenClient
    ? []
    : (await deps.roles.list())
        .filter((r) => r.kind === "management-point")
        .map((r) => ({ type: "Intranet", url: (r.settings as { internalUrl?: string }).internalUrl ?? `https://${r.serverFqdn}`, fqdn: r.serverFqdn }));
  const internet: MpCandidate[] = settings.useCmg || tokenClient ? (await deps.internetMps()).map((m) => ({ type: "Internet", url: tokenClient ? tokenUrlOf(m.url) : m.url, cmg: m.cmg })) : [];
  await deps.clients.touch(client.id, connectionType);
  log.info(
    `Location request from ${client.id} (${client.name}, ${connectionType}): ${intranet.length} intranet and ${internet.length} internet management point(s)${settings.useCmg ? "" : " (CMG use is off in the client settings)"}.`,
  );
  return { siteCode: deps.siteCode, mps: [...intranet, ...internet], locationIntervalMinutes: settings.locationIntervalMinutes };
}

export async function policy(deps: HandlerDeps, log: ComponentLog, caller: Caller): Promise<PolicyAnswer> {
  const { client, connectionType } = await resolveClient(deps, caller, { requireApproved: true });
  // The default client settings and the site's Client Computer Communication settings, which the client enforces.
  const settings = { ...(await deps.clients.settings()), ...(await deps.sites.clientCommunication(deps.siteCode)) };
  await deps.clients.touch(client.id, connectionType);
  const how = caller.kind === "certificate" ? `PKI client certificate (mutual TLS, ${caller.via})` : caller.kind === "site-token" ? `${caller.type} token (${caller.via})` : caller.kind;
  log.info(`Policy request from ${client.id} (${client.name}, ${connectionType}), authenticated by ${how}: ${JSON.stringify(settings)}.`);
  return { clientId: client.id, settings };
}

/**
 * Status upload. The whole batch is checked before anything is stored, so a bad message changes
 * nothing. Each message is stored once per client and message ID: a retried upload (the answer
 * was lost) is acknowledged again without a second copy.
 *
 * A device's messages are the device's: stored as source "client" with its ID, at the time they
 * arrived (the time the device claims is kept apart), and refused (400, naming the field) when
 * they use a site component's name or a site message ID. Refused rather than stored under another
 * component: a well-behaved client never sends one, and a refusal tells whoever did, where a
 * silent rewrite would hide the attempt and still show a message that reads like the site's.
 * Over its limits (status-limit.ts) an upload is refused whole with 429 and Retry-After.
 */
export async function uploadStatus(deps: HandlerDeps, log: ComponentLog, caller: Caller, body: unknown): Promise<StatusUploadAnswer> {
  const { client, connectionType } = await resolveClient(deps, caller, { requireApproved: true });
  const batch = checkObject(statusUpload, body);
  const refuseInvalid = (e: Error): never => {
    deps.metrics.statusMessages.inc({ result: "refused_invalid" }, batch.messages.length);
    throw e;
  };
  const items: StatusItem[] = batch.messages.map((m, i) => {
    const type = (m as { type?: unknown } | null)?.type;
    if (typeof type !== "string" || !(UPLOAD_TYPES as readonly string[]).includes(type)) {
      refuseInvalid(new MpError(400, "unknown_message_type", `messages.${i}.type: unknown message type ${JSON.stringify(type ?? null)} (this management point accepts: ${UPLOAD_TYPES.join(", ")})`));
    }
    const r = statusItem.safeParse(m);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      const field = `messages.${i}.${issue.path.join(".")}`;
      refuseInvalid(new ValidationError(field, issue.message, `${field}: ${issue.message}`));
    }
    const item = r.data!;
    if (isSiteComponent(item.component)) {
      refuseInvalid(new MpError(400, "site_component", `messages.${i}.component: must not be a site component's name (${SITE_COMPONENT_PREFIX}*); ${JSON.stringify(item.component)} is the site's, a client reports under its own components`));
    }
    if (SITE_MESSAGE_IDS.has(item.messageId)) {
      refuseInvalid(new MpError(400, "site_message_id", `messages.${i}.messageId: must not be a site message ID; ${item.messageId} is one the site raises itself`));
    }
    return item;
  });
  const who = `${client.id} (${client.name})`;
  const verdict = await deps.statusLimits.take(client.id, who, items.length);
  if (!verdict.allowed) {
    const limit = verdict.scope === "rate" ? `${verdict.limits.perMinute} status messages a minute (burst ${verdict.limits.burst})` : `${verdict.limits.perDay} status messages in 24 hours`;
    throw new MpError(429, "too_many_status_messages", `client ${who} is over its limit of ${limit}; nothing of this upload was stored: keep the messages and send them again in ${verdict.retryAfterSeconds} s`, verdict.retryAfterSeconds);
  }
  let duplicates = 0;
  for (const m of items) {
    const stored = await deps.status.raise({
      messageId: m.messageId,
      severity: m.severity,
      component: m.component,
      server: client.name,
      text: m.text,
      properties: { ...(m.properties ?? {}), uploadId: m.id },
      client: { id: client.id, claimedTime: m.time },
      dedupeKey: `client:${client.id}:${m.id}`,
    });
    if (!stored) duplicates++;
  }
  deps.metrics.statusMessages.inc({ result: "stored" }, items.length - duplicates);
  deps.metrics.statusMessages.inc({ result: "duplicate" }, duplicates);
  await deps.clients.touch(client.id, connectionType);
  log.info(`Received ${items.length} status message(s) from ${client.id} (${client.name}, ${connectionType}): ${items.length - duplicates} new, ${duplicates} already held.`);
  return { acknowledged: items.map((m) => m.id), duplicates };
}

/** The token URL of an internet management point (`.../CCM_Proxy_MutualAuth/<roleId>` -> `.../CCM_Proxy_ServerAuth/<roleId>`). */
function tokenUrlOf(url: string): string {
  const m = /^(.*)\/CCM_Proxy_MutualAuth\/([^/]+)$/.exec(url);
  return m ? internetMpUrl(m[1]!, m[2]!, TOKEN_SCHEME) : url;
}

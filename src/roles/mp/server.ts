/**
 * The management point's HTTPS server: TLS that asks for (but does not require) a client
 * certificate, a body limit, JSON in and out, and one answer per refusal with a reason code. A bad
 * request is logged and refused on its own; the server keeps serving everyone else.
 *
 * Logs (as the platform names them): MP_RegistrationManager.log, MP_Location.log, MP_Policy.log,
 * MP_Status.log, and mpcontrol.log for the server itself.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { TLS_POLICY } from "../../pki/tls-policy.ts";
import { isOpenCmgError, NotFoundError, ValidationError } from "../../errors.ts";
import type { ComponentLog } from "../../logs/cmtrace.ts";
import type { LogSet } from "../../logs/cmtrace.ts";
import type { ClientsService } from "../../site/services/clients.ts";
import type { RolesService } from "../../site/services/roles.ts";
import type { ServersService } from "../../site/services/servers.ts";
import type { StatusService } from "../../site/services/status.ts";
import type { TokensService } from "../../site/services/tokens.ts";
import type { SettingsService } from "../../site/services/settings.ts";
import type { SitesService } from "../../site/services/sites.ts";
import { ClientBlockedError, ClientNameTakenError, ReservedClientNameError } from "../../site/services/clients.ts";
import { MpMetrics } from "./metrics.ts";
import { StatusLimiter } from "./status-limit.ts";
import { listenRole } from "../listener.ts";
import { locate, policy, register, renewToken, uploadStatus, type HandlerDeps, type MpLogs } from "./handlers.ts";
import { CallerIdentifier, splitTrust, type Caller } from "./identity.ts";
import type { InternetMp } from "./internet-mps.ts";
import { MpError } from "./mp-error.ts";
import { RegistrationLimiter, type RegistrationLimits } from "./registration-limit.ts";
import { DEFAULT_MAX_BODY_BYTES, MP_PATHS, type MpErrorAnswer } from "../../wire/mp.ts";
import { LOG_FILES } from "../../logs/files.ts";

/** What a management point needs of the site (app/role-deps.ts builds it). */
export interface ManagementPointDeps {
  servers: ServersService;
  roles: RolesService;
  status: StatusService;
  clients: ClientsService;
  /** Token uses and client tokens (a joined server's are signed by the site over the join). */
  tokens: Pick<TokensService, "useBulk" | "recordIdTokenUse" | "noteIdTokenClient" | "idTokenClient" | "issueClientToken">;
  /** The site's Client Computer Communication settings, sent to clients with their policy. */
  sites: Pick<SitesService, "clientCommunication">;
  /** The site settings the status message limits come from. */
  settings: Pick<SettingsService, "count">;
  logs: LogSet;
  /** The CMGs as internet management points (location answers). */
  internetMps: () => Promise<InternetMp[]>;
}

export interface ManagementPointOptions {
  deps: ManagementPointDeps;
  /** The site system server whose management-point role this serves. */
  serverFqdn: string;
  listen: { host: string; port: number };
  tls: {
    certPem: string;
    keyPem: string;
    /** The site CA: connection points' certificates chain to it. */
    caPem: string;
  };
  /**
   * CA certificates (PEM; roots and intermediates, sorted out by self-signature) that client
   * authentication certificates must chain to. Default: the site CA.
   */
  trustedClientRoots?: string[] | undefined;
  /** Largest request body, bytes (default 1 MiB). */
  maxBodyBytes?: number | undefined;
  /** Limits on registrations without a certificate (defaults: DEFAULT_REGISTRATION_LIMITS). */
  registrationLimits?: Partial<RegistrationLimits> | undefined;
  /** Where its metrics are counted (default: a registry of its own, not served). */
  metrics?: MpMetrics | undefined;
}

/** Longest refusal message answered or logged: a refusal may quote what the client sent. */
const MAX_REFUSAL_MESSAGE = 512;
const clip = (s: string): string => (s.length > MAX_REFUSAL_MESSAGE ? `${s.slice(0, MAX_REFUSAL_MESSAGE)}... (${s.length} characters)` : s);

export interface ManagementPoint {
  /** Where clients reach this MP directly, e.g. `https://127.0.0.1:8443`. */
  url: string;
  port: number;
  /** The management-point role's id (what a CMG's `/CCM_Proxy_MutualAuth/<roleId>` names). */
  roleId: number;
  metrics: MpMetrics;
  /** Stops accepting, drops open connections, resolves once closed. */
  close(): Promise<void>;
}

type HandleFn = (caller: Caller, body: unknown) => Promise<unknown>;
/** One management point request path: its method, log and handler. */
interface Handler {
  method: "GET" | "POST";
  log: ComponentLog;
  /** Identity is not needed (the ping). */
  open?: boolean;
  handle: HandleFn;
}

/**
 * Starts a management point for the management-point role on `serverFqdn`.
 *
 * @example
 * const mp = await startManagementPoint({
 *   site, serverFqdn: "mp01.contoso.com", listen: { host: "0.0.0.0", port: 443 },
 *   tls: { certPem, keyPem, caPem: pki.caPem },
 *   trustedClientRoots: [clientRootPem],
 *   internetMps: async () => cmgInternetMps(await cmgs.list(), await site.services.roles.list()),
 * });
 * // ... await mp.close();
 */
export async function startManagementPoint(o: ManagementPointOptions): Promise<ManagementPoint> {
  const fqdn = o.serverFqdn.toLowerCase();
  const server = await o.deps.servers.get(fqdn);
  const role = await o.deps.roles.findOn(fqdn, "management-point");
  if (!role) throw new NotFoundError("server", `the management-point role on ${fqdn} (opencmg role add ${fqdn} management-point)`);
  const maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const logs: MpLogs = {
    registration: o.deps.logs.component(LOG_FILES.mpRegistration),
    location: o.deps.logs.component(LOG_FILES.mpLocation),
    policy: o.deps.logs.component(LOG_FILES.mpPolicy),
    status: o.deps.logs.component(LOG_FILES.mpStatus),
    control: o.deps.logs.component(LOG_FILES.mpcontrol),
  };
  const clientTrust = splitTrust(o.trustedClientRoots && o.trustedClientRoots.length > 0 ? o.trustedClientRoots : [o.tls.caPem]);
  // Without a root no chain can end: every client would be refused, which is a setup mistake.
  if (clientTrust.roots.length === 0) throw new ValidationError("trustedClientRoots", "must hold at least one root CA certificate (PEM, self-signed)");
  const identifier = new CallerIdentifier({ siteCaPem: o.tls.caPem, clients: clientTrust });
  const registrations = new RegistrationLimiter(o.registrationLimits);
  const metrics = o.metrics ?? new MpMetrics(fqdn);
  const { settings, status, clients } = o.deps;
  const statusLimits = new StatusLimiter({
    readLimits: async () => ({ perMinute: await settings.count("client-status-rate"), burst: await settings.count("client-status-burst"), perDay: await settings.count("client-status-per-day") }),
    countSince: (id, since) => status.clientCountSince(id, since),
    noteRefused: (id, n) => clients.noteStatusRefused(id, n),
    onVerdict: (result, n) => metrics.statusMessages.inc({ result }, n),
    log: logs.status,
  });
  const deps: HandlerDeps = {
    clients: o.deps.clients,
    roles: o.deps.roles,
    status: o.deps.status,
    siteCode: server.siteCode,
    sites: o.deps.sites,
    internetMps: o.deps.internetMps,
    maxPendingRegistrations: registrations.limits.maxPending,
    tokens: o.deps.tokens,
    statusLimits,
    metrics,
  };
  const handlers: Record<string, Handler> = {
    [MP_PATHS.ping]: { method: "GET", log: logs.control, open: true, handle: async () => ({ mp: fqdn, siteCode: server.siteCode, roleId: role.id }) },
    [MP_PATHS.register]: { method: "POST", log: logs.registration, handle: (c, b) => register(deps, logs.registration, c, b) },
    [MP_PATHS.location]: { method: "GET", log: logs.location, handle: (c) => locate(deps, logs.location, c) },
    [MP_PATHS.policy]: { method: "GET", log: logs.policy, handle: (c) => policy(deps, logs.policy, c) },
    [MP_PATHS.status]: { method: "POST", log: logs.status, handle: (c, b) => uploadStatus(deps, logs.status, c, b) },
    [MP_PATHS.token]: { method: "POST", log: logs.registration, handle: (c) => renewToken(deps, logs.registration, c) },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0]!;
    const method = req.method ?? "GET";
    const requestId = String(req.headers["x-opencmg-request-id"] ?? "") || randomUUID();
    const remote = `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? "?"}`;
    const handler = handlers[path];
    let caller: Caller | undefined;
    try {
      if (!handler) throw new MpError(404, "unknown_endpoint", `${path} is not a management point endpoint`);
      if (method !== handler.method) throw new MpError(405, "method_not_allowed", `${path} takes ${handler.method}, not ${method}`);
      caller = handler.open ? undefined : identifier.identify(req);
      if (path === MP_PATHS.register && (caller ?? { kind: "anonymous" }).kind === "anonymous") {
        const verdict = registrations.take(req.socket.remoteAddress ?? "?");
        if (!verdict.allowed) {
          const who = verdict.scope === "source" ? `from ${req.socket.remoteAddress ?? "?"}` : "from all sources together";
          throw new MpError(429, "too_many_registrations", `too many registrations without a certificate ${who}; try again in ${verdict.retryAfterSeconds} s`, verdict.retryAfterSeconds);
        }
      }
      const body = method === "POST" ? await readJson(req, maxBody) : undefined;
      const answer = await handler.handle(caller ?? { kind: "anonymous" }, body);
      send(res, 200, answer);
    } catch (e) {
      const err = toMpError(e);
      const log = handler?.log ?? logs.control;
      const message = clip(err.message);
      const line = `Refused ${method} ${path} from ${remote}${describeCaller(caller)} (request ${requestId}): ${err.status} ${err.reason}: ${message}`;
      if (err.status >= 500) log.error(`${line}`, { cause: String((e as Error)?.stack ?? e) });
      else if (err.reason === "forged_identity") log.error(line);
      else log.warn(line);
      // Unread body bytes (an oversized upload): answer, then close rather than read them all.
      if (!req.complete) res.setHeader("connection", "close");
      if (err.retryAfterSeconds !== undefined) res.setHeader("retry-after", String(err.retryAfterSeconds));
      send(res, err.status, { error: err.reason, message } satisfies MpErrorAnswer);
      if (!req.complete) req.resume();
    }
  };

  const httpsServer: Server = createServer(
    {
      cert: o.tls.certPem,
      key: o.tls.keyPem,
      // Ask every client for its certificate but decide ourselves (identity.ts): an intranet client
      // without one may still register, and a refusal can say why.
      requestCert: true,
      rejectUnauthorized: false,
      // TLS 1.3, or 1.2 with ECDHE and AEAD suites only.
      ...TLS_POLICY,
      keepAliveTimeout: 30_000,
      headersTimeout: 20_000,
      requestTimeout: 60_000,
    },
    (req, res) => void handle(req, res),
  );
  const { port, url, close } = await listenRole(httpsServer, o.listen, fqdn, logs.control);
  logs.control.info(
    `Management point ${fqdn} (role ${role.id}, site ${server.siteCode}) serving ${url} on ${o.listen.host}:${port}; client certificates must chain to ${clientTrust.roots.length} trusted root(s); identity is relayed only by connection points of the site CA.`,
  );
  await o.deps.status.setComponent(fqdn, "SMS_MP_CONTROL_MANAGER", "OK", `serving ${url}`).catch(() => {});

  return {
    url,
    port,
    roleId: role.id,
    metrics,
    async close() {
      await close();
      await statusLimits.close();
      logs.control.info(`Management point ${fqdn} stopped serving ${url}.`);
    },
  };
}

function describeCaller(c: Caller | undefined): string {
  if (!c) return "";
  switch (c.kind) {
    case "certificate":
      return ` (certificate ${c.thumbprint} via ${c.via})`;
    case "untrusted-certificate":
      return ` (untrusted certificate ${c.thumbprint})`;
    case "token":
      return " (registration token)";
    case "site-token":
      return ` (${c.type} token ${c.type === "client" ? c.id : ""} key ${c.jkt} via ${c.via})`;
    default:
      return " (no client certificate)";
  }
}

function toMpError(e: unknown): MpError {
  if (e instanceof MpError) return e;
  if (e instanceof ClientBlockedError) return new MpError(403, "client_blocked", e.message);
  if (e instanceof ClientNameTakenError) return new MpError(409, "name_taken", e.message);
  if (e instanceof ReservedClientNameError) return new MpError(400, "reserved_name", e.message);
  if (e instanceof ValidationError) return new MpError(400, "invalid_request", e.message);
  if (isOpenCmgError(e) && e.httpStatus < 500) return new MpError(e.httpStatus, "invalid_request", e.message);
  return new MpError(500, "internal_error", "the management point failed to process the request; see its logs");
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

/** Reads a JSON body of at most `limit` bytes. Refuses oversized, non-JSON and malformed bodies. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const type = String(req.headers["content-type"] ?? "");
  if (!/^application\/json\s*(;|$)/i.test(type)) throw new MpError(415, "unsupported_media_type", `the body must be application/json, not ${JSON.stringify(type || "(none)")}`);
  const declared = Number(req.headers["content-length"] ?? NaN);
  if (declared > limit) throw new MpError(413, "body_too_large", `the body of ${declared} bytes is over the ${limit}-byte limit`);
  // Events rather than `for await`: leaving that loop early would destroy the socket, and the
  // refusal could not be sent.
  const chunks = await new Promise<Buffer[]>((resolve, reject) => {
    const got: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.off("data", onData);
        req.off("end", onEnd);
        req.resume(); // discard the rest
        reject(new MpError(413, "body_too_large", `the body is over the ${limit}-byte limit`));
      } else got.push(chunk);
    };
    const onEnd = (): void => resolve(got);
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", reject);
  });
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new MpError(400, "malformed_json", `the body is not valid JSON: ${(e as Error).message}`);
  }
}

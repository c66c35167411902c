/**
 * The admin API: JSON over HTTP behind an admin identity (a named admin token, or whatever the
 * authenticators given resolve a request to). Handlers only translate HTTP to the service layer;
 * the services validate and decide, and every change goes through the audited services of the
 * request's identity (site/audited.ts).
 *
 * Every error, an unknown route included, is `{ "error": { code, kind, message, field?, rule?, errors? } }`;
 * a validation error lists every field problem of the request in `errors`.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { ServerOptions } from "node:https";
import { ZodError } from "zod";
import { issuesToValidation, OpenCmgError, ValidationError } from "../errors.ts";
import { LOG_FILES } from "../logs/files.ts";
import type { Actor } from "../site/services/audit.ts";
import type { AdminIdentity } from "../site/services/admin-tokens.ts";
import type { OpenedSite } from "../site/site.ts";
import { allows, ROLE_LABELS, type Permission } from "../site/services/admin-roles.ts";
import { bearerToken, type Authenticator } from "./auth.ts";
import { consoleSession, CONSOLE_ROUTE_DOCS, defaultConsoleDir, loadConsoleAssets, registerConsole } from "./console.ts";
import { ConsoleSessions, type SessionLimits } from "./console-session.ts";
import { LiveFeed, type LiveFeedOptions } from "./live.ts";
import { DirectorySignIn } from "./directory-sign-in.ts";
import { servedOpenApiDocument } from "./served-openapi.ts";
import type { OperationsFor } from "./operations.ts";
import { Download, queryShape, routeNeeds, type ApiRoute } from "./route-kit.ts";
import { ROUTES } from "./routes.ts";
import { VERSION } from "../version.ts";

export interface AdminApiOptions {
  site: OpenedSite;
  /** Runs beyond one service call (synchronisations, rule runs, checks), for the request's actor. */
  operations: OperationsFor;
  /** Extra routes from other parts (CMG, clients, endpoints) registered by the caller. */
  extraRoutes?: ApiRoute[];
  /**
   * Who a request is, tried in order until one answers (default: the admin token in
   * `Authorization: Bearer`). A console adds its session cookie's here.
   */
  authenticators?: Authenticator[];
  version?: string;
  logger?: boolean | object;
  /** The built console's folder (default: dist/console when built; null: no console). */
  consoleDir?: string | null;
  sessions?: Partial<SessionLimits>;
  live?: LiveFeedOptions;
  /** Listen with TLS: the key, certificate (chain) and policy of `https.createServer` (default: plain HTTP). */
  https?: ServerOptions;
  /** The console's address once listening (directory sign-in's redirect URL is derived from it). */
  consoleUrl?: () => string | undefined;
}

declare module "fastify" {
  interface FastifyRequest {
    /** Set by the authentication hook on every /api/ request that passed it. */
    adminIdentity?: AdminIdentity;
  }
}

/** The one JSON shape of every error answer. */
export function errorBody(e: OpenCmgError): { error: Record<string, unknown> } {
  const { error: _name, ...rest } = e.toJSON();
  return { error: rest };
}

const plainError = (code: string, kind: string, message: string, extra: Record<string, unknown> = {}) => ({ error: { code, kind, message, ...extra } });

/** Refused by the route's permission: the identity's security role does not grant what the route needs. */
export class RoleForbiddenError extends OpenCmgError {
  constructor(message: string) {
    super("forbidden", "ROLE_FORBIDDEN", message);
  }
}

const NEED_TEXT: Record<Permission, string> = { read: "reading", infrastructure: "changing the site's infrastructure", security: "changing security (tokens, administrative users, directory sign-in)" };

export async function buildAdminApi(o: AdminApiOptions): Promise<FastifyInstance> {
  // Fastify types an HTTPS instance apart; routes and hooks are the same, so it is used as one.
  const app = (o.https ? Fastify({ logger: o.logger ?? false, bodyLimit: 1_048_576, https: o.https }) : Fastify({ logger: o.logger ?? false, bodyLimit: 1_048_576 })) as unknown as FastifyInstance;
  const routes = [...ROUTES, ...(o.extraRoutes ?? [])];
  const doc = servedOpenApiDocument(o.version ?? VERSION, o.extraRoutes ?? []);
  const sessions = new ConsoleSessions(o.sessions);
  // A bearer admin token, else a console session (whose changes need its CSRF header; see console.ts).
  const authenticators = o.authenticators ?? [bearerToken(o.site), consoleSession(sessions, (who) => currentIdentity(o.site, who))];
  const byRoute = new Map([...routes, ...CONSOLE_ROUTE_DOCS].map((r) => [`${r.method} ${r.path}`, r]));
  // Signing in and out of the console (auth: false in CONSOLE_ROUTE_DOCS): the session routes check
  // the token, cookie or directory's answer themselves.
  const publicPaths = new Set(["GET /api/v1/openapi.json", ...[...routes, ...CONSOLE_ROUTE_DOCS].filter((r) => r.auth === false).map((r) => `${r.method} ${r.path}`)]);

  // Every registered route, for the OpenAPI comparison (HEAD routes are fastify's own copies of GET).
  const registered: { method: string; url: string }[] = [];
  app.addHook("onRoute", (r) => {
    for (const m of [r.method].flat()) if (m !== "HEAD") registered.push({ method: m, url: r.url });
  });
  app.decorate("registeredRoutes", registered);

  app.addHook("onRequest", async (req, reply) => {
    if (!req.url.startsWith("/api/")) return;
    if (req.routeOptions.url && publicPaths.has(`${req.method} ${req.routeOptions.url}`)) return;
    let identity: AdminIdentity | undefined;
    for (const a of authenticators) {
      identity = await a(req);
      if (identity) break;
    }
    if (!identity) {
      return reply
        .code(401)
        .header("www-authenticate", 'Bearer realm="opencmg"')
        .send(plainError("ADMIN_TOKEN", "unauthorized", "a valid admin token is required (Authorization: Bearer <token>; see <data>/admin.token, or opencmg site token create NAME)"));
    }
    req.adminIdentity = identity;
    // Every route of the table declares what it needs; the console's own (events) only read; any
    // other route (none, or not found) needs everything, so nothing is open by omission.
    const route = req.routeOptions.url ? byRoute.get(`${req.method} ${req.routeOptions.url}`) : undefined;
    const need: Permission = route ? (routeNeeds(route, req.params as Record<string, string>) ?? "security") : req.method === "GET" ? "read" : "security";
    if (!allows(identity.role, need)) {
      return reply.code(403).send(errorBody(new RoleForbiddenError(`${identity.name} is a ${ROLE_LABELS[identity.role]}: ${req.method} ${req.routeOptions.url ?? req.url.split("?")[0]} needs a role that permits ${NEED_TEXT[need]}`)));
    }
  });

  // The console's routes (session, live events) and files; its not-found handler answers an unknown
  // API route with the one error shape and any other GET with the console's page.
  const live = new LiveFeed(o.site, o.live);
  app.addHook("onClose", async () => live.close());
  const consoleDir = o.consoleDir === null ? undefined : (o.consoleDir ?? defaultConsoleDir());
  registerConsole(app, {
    site: o.site,
    sessions,
    live,
    assets: consoleDir ? loadConsoleAssets(consoleDir) : undefined,
    directory: new DirectorySignIn(o.site, o.consoleUrl ?? (() => undefined)),
    notFound: (method, path) => plainError("ROUTE_NOT_FOUND", "not_found", `no route ${method} ${path}; see /api/v1/openapi.json`),
  });

  app.setErrorHandler(async (err, req, reply) => sendError(o.site, err, req, reply));

  app.get("/api/v1/openapi.json", async () => doc);
  app.get("/healthz", async () => ({ ok: true }));

  for (const r of routes) {
    const query = queryShape(r);
    app.route({
      method: r.method,
      url: r.path,
      handler: async (req, reply) => {
        if (!r.body) refuseBody(req.body);
        const identity: AdminIdentity = req.adminIdentity ?? { name: "anonymous", role: "read-only-analyst", readOnly: true, source: "token" };
        const actor: Actor = { name: identity.name, via: identity.source === "directory" ? "console" : "api", readOnly: identity.readOnly, role: identity.role };
        const result = await r.handle(o.site.servicesAs(actor), {
          params: req.params as Record<string, string>,
          query: req.query as Record<string, string | undefined>,
          parsed: query.parse(req.query ?? {}) as Record<string, unknown>,
          body: req.body,
          actor,
          identitySource: identity.source,
          ops: o.operations(actor),
        });
        reply.code(r.status ?? 200);
        if (r.status === 204) return reply.send();
        if (result instanceof Download) {
          return reply
            .header("content-type", result.contentType)
            .header("content-disposition", `attachment; filename="${result.filename}"`)
            .send(result.body);
        }
        return reply.send(result ?? null);
      },
    });
  }
  return app;
}

/**
 * The identity of a console session as it stands now: a token's current role (none once revoked
 * or gone), a directory user's role from the current assignments (none once taken away).
 */
async function currentIdentity(site: OpenedSite, who: AdminIdentity): Promise<AdminIdentity | undefined> {
  if (who.source === "directory") {
    const r = await site.services.adminUsers.resolve(who.name, who.groups ?? []);
    return r ? { ...who, ...r } : undefined;
  }
  try {
    const t = await site.services.adminTokens.get(who.name);
    return t.revokedAt === null ? { ...who, role: t.role, readOnly: t.readOnly } : undefined;
  } catch {
    return undefined; // the token is gone
  }
}

/** A route that takes no body refuses one, as strictly as a body schema refuses an unknown field. */
function refuseBody(body: unknown): void {
  if (body === undefined || body === null || body === "") return;
  if (typeof body === "object" && !Array.isArray(body)) {
    const keys = Object.keys(body);
    if (keys.length === 0) return;
    throw new ValidationError(keys[0]!, "is not a known field", `${keys[0]}: is not a known field; this request takes no body`);
  }
  throw new ValidationError("body", "must be empty", "body: this request takes no body");
}

function sendError(site: OpenedSite, err: unknown, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  let e: unknown = err;
  if (err instanceof ZodError) e = issuesToValidation(err.issues as Parameters<typeof issuesToValidation>[0]);
  if (e instanceof OpenCmgError) {
    if (e.kind === "internal") site.logs.component(LOG_FILES.smsprov).error(`Admin API ${req.method} ${req.url.split("?")[0]} failed: ${e.message}`);
    return reply.code(e.httpStatus).send(errorBody(e));
  }
  const fe = err as { statusCode?: number; code?: string; message: string };
  if (fe.statusCode && fe.statusCode < 500) {
    const kind = fe.statusCode === 404 ? "not_found" : fe.statusCode === 413 ? "validation" : "validation";
    return reply.code(fe.statusCode).send(plainError(fe.code ?? "BAD_REQUEST", kind, fe.message, { field: "body", rule: "must be a JSON body within the size limit" }));
  }
  site.logs.component(LOG_FILES.smsprov).error(`Admin API ${req.method} ${req.url.split("?")[0]} failed: ${fe.message}`);
  return reply.code(500).send(plainError("INTERNAL", "internal", "internal error; see smsprov.log"));
}

/** The routes fastify registered (method and URL, HEAD left out), for comparing with the OpenAPI document. */
export function registeredRoutes(app: FastifyInstance): readonly { method: string; url: string }[] {
  return (app as unknown as { registeredRoutes: { method: string; url: string }[] }).registeredRoutes;
}


/**
 * The admin API: JSON over HTTP behind the admin token. Handlers only translate HTTP to the
 * service layer; the services validate and decide.
 */
import Fastify, { type FastifyInstance } from "fastify";
import { ZodError } from "zod";
import { OpenCmgError, ValidationError } from "../errors.ts";
import type { OpenedSite } from "../site/site.ts";
import { authenticate, CONSOLE_ROUTE_DOCS, defaultConsoleDir, loadConsoleAssets, registerConsole } from "./console.ts";
import { ConsoleSessions, type SessionLimits } from "./console-session.ts";
import { LiveFeed, type LiveFeedOptions } from "./live.ts";
import { openApiDocument } from "./openapi.ts";
import { ROUTES, type ApiRoute } from "./routes.ts";
import { LOG_FILES } from "../logs/files.ts";

export interface AdminApiOptions {
  site: OpenedSite;
  /** Extra routes from other parts (CMG, clients, endpoints) registered by the caller. */
  extraRoutes?: ApiRoute[];
  version?: string;
  logger?: boolean | object;
  /** The built console's folder (default: dist/console when built; null: no console). */
  consoleDir?: string | null;
  sessions?: Partial<SessionLimits>;
  live?: LiveFeedOptions;
}

function zodToValidation(e: ZodError): ValidationError {
  const issue = e.issues[0]!;
  const field = issue.path.join(".") || "body";
  return new ValidationError(field, issue.message, `${field}: ${issue.message}`);
}

export async function buildAdminApi(o: AdminApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: 1_048_576,
  });
  const routes = [...ROUTES, ...(o.extraRoutes ?? [])];
  const doc = openApiDocument([...routes, ...CONSOLE_ROUTE_DOCS], o.version ?? "0.1.0");

  app.get("/api/v1/openapi.json", async () => doc);
  app.get("/healthz", async () => ({ ok: true }));

  const sessions = new ConsoleSessions(o.sessions);
  const live = new LiveFeed(o.site, o.live);
  app.addHook("onClose", async () => live.close());
  const consoleDir = o.consoleDir === null ? undefined : (o.consoleDir ?? defaultConsoleDir());
  registerConsole(app, { site: o.site, sessions, live, assets: consoleDir ? loadConsoleAssets(consoleDir) : undefined });

  // Who may call: a bearer admin token, or a console session (changes with its CSRF header); see console.ts.
  app.addHook("onRequest", async (req, reply) => {
    const path = req.url.split("?")[0]!;
    if (!path.startsWith("/api/") || path === "/api/v1/openapi.json" || path === "/api/v1/session") return;
    const who = await authenticate({ site: o.site, sessions }, req);
    if (!who.ok) {
      if (who.status === 401) reply.header("www-authenticate", 'Bearer realm="opencmg"');
      await reply.code(who.status).send({ error: who.status === 401 ? "Unauthorized" : "Forbidden", kind: "unauthorized", code: who.code, message: who.message });
    }
  });

  app.setErrorHandler(async (err, _req, reply) => {
    let e: unknown = err;
    if (err instanceof ZodError) e = zodToValidation(err);
    if (e instanceof OpenCmgError) return reply.code(e.httpStatus).send(e.toJSON());
    const fe = err as { statusCode?: number; code?: string; message: string };
    if (fe.statusCode && fe.statusCode < 500) return reply.code(fe.statusCode).send({ error: "BadRequest", kind: "validation", code: fe.code ?? "BAD_REQUEST", field: "body", message: fe.message });
    o.site.logs.component(LOG_FILES.smsprov).error(`Admin API request failed: ${fe.message}`);
    return reply.code(500).send({ error: "InternalError", kind: "internal", code: "INTERNAL", message: "internal error; see smsprov.log" });
  });

  for (const r of routes) {
    app.route({
      method: r.method,
      url: r.path,
      handler: async (req, reply) => {
        const result = await r.handle(o.site.services, {
          params: req.params as Record<string, string>,
          query: req.query as Record<string, string | undefined>,
          body: req.body,
        });
        reply.code(r.status ?? 200);
        return r.status === 204 ? reply.send() : reply.send(result ?? null);
      },
    });
  }
  return app;
}

/**
 * The administration console on the admin API's listener: its built files (dist/console, read
 * once into memory, so no request can name a file outside them), sign-in with an admin token to a
 * session cookie, and the server-sent events of the live views.
 *
 * Who may call the API (`authenticate`, the one place the API's auth hook asks): a bearer admin
 * token, or a console session cookie. A change made with a session cookie must carry the
 * session's CSRF token in a custom header, and its Origin, when the browser sends one, must be
 * this site's: another site's page can neither read the token nor set the header.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import type { ApiRoute } from "./route-kit.ts";
import * as S from "./schemas.ts";
import type { Authenticator } from "./auth.ts";
import type { AdminIdentity } from "../site/services/admin-tokens.ts";
import { OpenCmgError } from "../errors.ts";
import type { DirectorySignIn } from "./directory-sign-in.ts";
import { ADMIN_OIDC_CALLBACK } from "../site/services/admin-directory.ts";
import { verifyAdminToken, type OpenedSite } from "../site/site.ts";
import { ConsoleSessions, CSRF_HEADER, readCookie, SESSION_COOKIE } from "./console-session.ts";
import type { LiveFeed } from "./live.ts";
import { StreamLimitError, StreamSlots, type StreamLimits } from "./stream-slots.ts";
import { LOG_FILES } from "../logs/files.ts";

/** The console's Content-Security-Policy: its own scripts only, no inline script, no framing. Fluent UI writes its styles at run time (style-src 'unsafe-inline'). */
export const CONSOLE_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

interface Asset {
  type: string;
  body: Buffer;
  /** Vite names bundles by their content hash: cache those for good, never index.html. */
  immutable: boolean;
}

/** Where the built console is: dist/console beside the bundled CLI, or the repository's dist/console when run from the sources. */
export function defaultConsoleDir(): string | undefined {
  for (const rel of ["../console", "../../dist/console"]) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(join(dir, "index.html"))) return dir;
  }
  return undefined;
}

/** Every file of the built console by its URL path. */
export function loadConsoleAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else {
        const url = "/" + relative(dir, p).split(sep).join("/");
        assets.set(url, { type: TYPES[extname(p)] ?? "application/octet-stream", body: readFileSync(p), immutable: url.startsWith("/assets/") });
      }
    }
  };
  walk(dir);
  return assets;
}

export interface ConsoleOptions {
  site: OpenedSite;
  sessions: ConsoleSessions;
  live: LiveFeed;
  /** The built console; undefined: the API only (GET / says how to build it). */
  assets: Map<string, Asset> | undefined;
  /** Live event streams open at once, in all and per admin identity (defaults 64 and 4). */
  eventStreams?: Partial<StreamLimits>;
  /** Comment line sent on idle event streams so proxies keep them (default 25 s). */
  keepAliveMs?: number;
  /** The API's body for an unknown API route. */
  notFound: (method: string, path: string) => unknown;
  /** Sign-in with the administrators' directory (OpenID Connect). */
  directory: DirectorySignIn;
}

const notHere = (): Promise<never> => Promise.reject(new Error("registered by registerConsole"));

/** The console's own routes as the OpenAPI document describes them (registered by `registerConsole`, which needs the reply itself). */
export const CONSOLE_ROUTE_DOCS: ApiRoute[] = [
  { method: "POST", path: "/api/v1/session", tag: "console", auth: false, summary: "Sign in to the console with an admin token: sets the HttpOnly session cookie, returns the CSRF token", body: z.strictObject({ token: z.string() }), response: S.consoleSession, status: 201, handle: notHere },
  { method: "GET", path: "/api/v1/session", tag: "console", auth: false, summary: "The console session of the cookie (its CSRF token and expiry), or 401", response: S.consoleSession, handle: notHere },
  { method: "DELETE", path: "/api/v1/session", tag: "console", auth: false, summary: "Sign out: ends the session", status: 204, handle: notHere },
  { method: "GET", path: "/api/v1/session/directory", tag: "console", auth: false, summary: "Whether directory sign-in is set up, and the redirect URL to register at the directory", response: S.directoryStatus, handle: notHere },
  { method: "GET", path: "/api/v1/session/directory/start", tag: "console", auth: false, summary: "Starts a directory sign-in: redirects the browser to the directory (authorization code with PKCE)", status: 302, handle: notHere },
  { method: "GET", path: ADMIN_OIDC_CALLBACK, tag: "console", auth: false, summary: "Where the directory sends the browser back: sets the session cookie and redirects to the console (or to it with signInError)", status: 302, handle: notHere },
  { method: "GET", path: "/api/v1/events", tag: "console", needs: "read", summary: "Server-sent events: `change` notices ({topic: status|cmg}) for the live views", produces: ["text/event-stream"], handle: notHere },
];

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function originAllowed(req: FastifyRequest): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/**
 * The console's session cookie as an admin API authenticator: the identity of the token signed in
 * with. A change must come from the console's own origin with the session's CSRF header; else it is
 * refused (403), not passed on to another authenticator. A session whose token was revoked since
 * sign-in is ended.
 */
export function consoleSession(sessions: ConsoleSessions, current: (identity: AdminIdentity) => Promise<AdminIdentity | undefined>): Authenticator {
  return async (req) => {
    const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
    const session = sessions.touch(cookie);
    if (!session) return undefined;
    // Revoking a token (or taking a directory user's role away) ends the console sessions signed
    // in with it, at their next request; a changed role applies at once.
    const now = await current(session.identity);
    if (!now) {
      sessions.end(cookie);
      return undefined;
    }
    session.identity = now;
    if (UNSAFE.has(req.method)) {
      if (!originAllowed(req)) throw new CsrfError("a change from another origin is refused");
      if (!ConsoleSessions.csrfMatches(session, req.headers[CSRF_HEADER] as string | undefined)) throw new CsrfError(`a change made with the console's session needs its ${CSRF_HEADER} header`);
    }
    return session.identity;
  };
}

class CsrfError extends OpenCmgError {
  constructor(message: string) {
    super("forbidden", "CSRF", message);
  }
}

function sessionCookie(value: string, maxAgeS: number): string {
  // Secure: browsers keep it on https:// and on http://localhost / 127.0.0.1 (trustworthy origins).
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${maxAgeS}`;
}

/** The routes the console needs besides the API's own: session, events, and its files. */
export function registerConsole(app: FastifyInstance, o: ConsoleOptions): void {
  const slots = new StreamSlots(o.eventStreams);
  const keepAliveMs = o.keepAliveMs ?? 25_000;
  const refusals = new RefusalLog((line) => o.site.logs.component(LOG_FILES.smsprov).warn(line));

  app.post("/api/v1/session", async (req, reply) => {
    const address = req.ip;
    if (!originAllowed(req)) return reply.code(403).send({ error: { kind: "unauthorized", code: "CSRF", message: "sign-in from another origin is refused" } });
    if (!o.sessions.mayTry(address)) return reply.code(429).send({ error: { kind: "busy", code: "SIGN_IN_LIMIT", message: "too many failed sign-ins from this address; wait a few minutes" } });
    const body = req.body as { token?: unknown } | null;
    const token = body && typeof body === "object" && typeof body.token === "string" ? body.token.trim() : "";
    const extra = body && typeof body === "object" ? Object.keys(body).filter((k) => k !== "token") : [];
    if (extra.length > 0) return reply.code(400).send({ error: { kind: "validation", code: "VALIDATION", field: extra[0], rule: "unknown field", message: `${extra[0]}: unknown field` } });
    if (!token) return reply.code(400).send({ error: { kind: "validation", code: "VALIDATION", field: "token", rule: "required", message: "token: enter the admin token (opencmg up prints it; <data>/admin.token holds it)" } });
    const identity = await verifyAdminToken(o.site, token);
    if (!identity) {
      o.sessions.failed(address);
      return reply.code(401).send({ error: { kind: "unauthorized", code: "ADMIN_TOKEN", field: "token", message: "token: this is not a valid admin token" } });
    }
    const { cookie, session } = o.sessions.create(identity);
    reply.header("set-cookie", sessionCookie(cookie, Math.ceil(o.sessions.limits.maxAgeMs / 1000)));
    return reply.code(201).send({ csrfToken: session.csrf, expiresAt: new Date(session.expiresAt).toISOString() });
  });

  app.get("/api/v1/session", async (req, reply) => {
    const s = o.sessions.touch(readCookie(req.headers.cookie, SESSION_COOKIE));
    if (!s) return reply.code(401).send({ error: { kind: "unauthorized", code: "ADMIN_TOKEN", message: "not signed in" } });
    return { csrfToken: s.csrf, expiresAt: new Date(s.expiresAt).toISOString() };
  });

  // Directory sign-in. The binding cookie ties the sign-in to this browser; SameSite=Lax because the
  // directory's redirect back is a top-level navigation from another site.
  const BINDING_COOKIE = "opencmg_directory";
  const bindingCookie = (value: string, maxAgeS: number): string => `${BINDING_COOKIE}=${value}; Path=/api/v1/session/directory; HttpOnly; Secure; SameSite=Lax; Max-Age=${maxAgeS}`;
  const backToConsole = (reply: FastifyReply, error?: OpenCmgError): FastifyReply =>
    reply.code(302).header("cache-control", "no-store").header("location", error ? `/?signInError=${encodeURIComponent(error.code)}&message=${encodeURIComponent(error.message)}` : "/").send();

  app.get("/api/v1/session/directory", async () => o.directory.status());

  app.get("/api/v1/session/directory/start", async (req, reply) => {
    if (!o.sessions.mayTry(req.ip)) return backToConsole(reply, new OpenCmgError("busy", "SIGN_IN_LIMIT", "too many failed sign-ins from this address; wait a few minutes"));
    try {
      const { url, binding } = await o.directory.start();
      reply.header("set-cookie", bindingCookie(binding, 600));
      return reply.code(302).header("cache-control", "no-store").header("location", url).send();
    } catch (e) {
      if (e instanceof OpenCmgError) return backToConsole(reply, e);
      throw e;
    }
  });

  app.get(ADMIN_OIDC_CALLBACK, async (req, reply) => {
    reply.header("set-cookie", bindingCookie("", 0));
    if (!o.sessions.mayTry(req.ip)) return backToConsole(reply, new OpenCmgError("busy", "SIGN_IN_LIMIT", "too many failed sign-ins from this address; wait a few minutes"));
    const query = new URLSearchParams(req.url.split("?")[1] ?? "");
    try {
      const identity = await o.directory.finish(query, readCookie(req.headers.cookie, BINDING_COOKIE));
      const { cookie } = o.sessions.create(identity);
      reply.header("set-cookie", [bindingCookie("", 0), sessionCookie(cookie, Math.ceil(o.sessions.limits.maxAgeMs / 1000))]);
      return backToConsole(reply);
    } catch (e) {
      if (!(e instanceof OpenCmgError)) throw e;
      o.sessions.failed(req.ip);
      o.site.logs.component(LOG_FILES.smsprov).warn(`Console sign-in with the directory failed from ${req.ip} (${e.code}): ${e.message}`);
      return backToConsole(reply, e);
    }
  });

  app.delete("/api/v1/session", async (req, reply) => {
    o.sessions.end(readCookie(req.headers.cookie, SESSION_COOKIE));
    reply.header("set-cookie", sessionCookie("", 0));
    return reply.code(204).send();
  });

  app.get("/api/v1/events", async (req, reply) => {
    // The auth hook has set it: /api/v1/events is no public path.
    const who = req.adminIdentity!.name;
    let release: () => void;
    try {
      release = slots.take(who);
    } catch (e) {
      if (e instanceof StreamLimitError) refusals.note(who, `Live event stream refused for admin identity ${who} from ${req.ip} (${e.code}): ${e.message}.`);
      throw e; // the API's error handler answers with its status (429 or 503) and the one error shape
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no" });
    res.write("retry: 3000\n\n");
    const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
    const off = o.live.listen((t) => {
      // A session that ended (sign-out, expiry) stops receiving: the stream closes and the console signs in again.
      if (cookie && !o.sessions.alive(cookie)) return res.end();
      res.write(`event: change\ndata: ${JSON.stringify({ topic: t })}\n\n`);
    });
    const ping = setInterval(() => res.write(": keep-alive\n\n"), keepAliveMs);
    const done = (): void => {
      clearInterval(ping);
      off();
      release();
    };
    res.once("close", done);
  });

  const sendAsset = (reply: FastifyReply, a: Asset): FastifyReply =>
    reply
      .header("content-type", a.type)
      .header("cache-control", a.immutable ? "public, max-age=31536000, immutable" : "no-cache")
      .send(a.body);

  app.addHook("onSend", async (req, reply, payload) => {
    if (!req.url.startsWith("/api/")) {
      reply.header("content-security-policy", CONSOLE_CSP);
      reply.header("x-content-type-options", "nosniff");
      reply.header("referrer-policy", "no-referrer");
      reply.header("x-frame-options", "DENY");
    }
    return payload;
  });

  // The console's pages are one document: any path outside the API and the files is its index.
  app.setNotFoundHandler(async (req, reply) => {
    const path = req.url.split("?")[0]!;
    if ((req.method !== "GET" && req.method !== "HEAD") || path.startsWith("/api/")) return reply.code(404).send(o.notFound(req.method, path));
    if (!o.assets) return reply.code(404).type("text/plain").send("The console is not built: run npm ci (or node scripts/build.mjs) in the OpenCMG folder.\n");
    const a = o.assets.get(path) ?? (path.startsWith("/assets/") ? undefined : o.assets.get("/index.html"));
    if (!a) return reply.code(404).type("text/plain").send("not found\n");
    return sendAsset(reply, a);
  });
}

/**
 * One log line per identity refused, then at most one a minute with how many were refused
 * meanwhile: whoever retries in a loop cannot fill the log.
 */
class RefusalLog {
  readonly #last = new Map<string, { at: number; quiet: number }>();
  constructor(
    private readonly write: (line: string) => void,
    private readonly everyMs = 60_000,
  ) {}
  note(identity: string, line: string): void {
    const now = Date.now();
    const seen = this.#last.get(identity);
    if (seen && now - seen.at < this.everyMs) {
      seen.quiet++;
      return;
    }
    this.write(seen?.quiet ? `${line} (${seen.quiet} more refused since the last line)` : line);
    this.#last.set(identity, { at: now, quiet: 0 });
    if (this.#last.size > 10_000) this.#last.delete(this.#last.keys().next().value!);
  }
}

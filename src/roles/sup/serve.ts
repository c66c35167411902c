/**
 * The software update point's HTTPS server: the synchronised update metadata and the content the
 * ADRs put in the content library, with single byte ranges so a client can resume a download.
 *
 * Every URL it hands out is relative (`content/<updateId>/<file>`, next to `updates`), so the same
 * requests work directly (`https://sup/SMS_SUP/v1/...`) and through the gateway
 * (`<cmg>/CCM_Proxy_MutualAuth/<supRoleId>/SMS_SUP/v1/...`).
 *
 * Only files that a synchronised update lists are served: the library folder also holds the
 * downloader's hidden `.part` files, which are never whole. Logs to SUPServe.log (SMS_SUP).
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { TLS_POLICY } from "../../pki/tls-policy.ts";
import { resolve, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { isOpenCmgError, NotFoundError } from "../../errors.ts";
import type { ComponentLog } from "../../logs/cmtrace.ts";
import { listenRole } from "../listener.ts";
import type { LogSet } from "../../logs/cmtrace.ts";
import type { SoftwareUpdate, UpdatesService } from "../../site/services/updates.ts";
import type { ContentLibrary } from "./content-library.ts";
import { LOG_FILES } from "../../logs/files.ts";

export const SUP_PATHS = { updates: "/SMS_SUP/v1/updates", contentPrefix: "/SMS_SUP/v1/content/" } as const;

/** What the software update point's server needs of the site (app/role-deps.ts builds it). */
export interface SoftwareUpdatePointDeps {
  /** The site's roles (a joined server: its role, read over the join). */
  roles: { findOn(fqdn: string, kind: "software-update-point"): Promise<{ id: number } | undefined> };
  /** The synchronised update metadata (a joined server: read over the join). */
  updates: Pick<UpdatesService, "list" | "filesOf">;
  logs: LogSet;
  library: ContentLibrary;
}

export interface SoftwareUpdatePointOptions {
  deps: SoftwareUpdatePointDeps;
  /** The site system server whose software-update-point role this serves. */
  serverFqdn: string;
  listen: { host: string; port: number };
  tls: { certPem: string; keyPem: string };
}

export interface SoftwareUpdatePointServer {
  /** Where clients reach this SUP directly, e.g. `https://127.0.0.1:8444`. */
  url: string;
  port: number;
  /** The software-update-point role's id (what a CMG's `/CCM_Proxy_MutualAuth/<roleId>` names). */
  roleId: number;
  close(): Promise<void>;
}

/** What `GET /SMS_SUP/v1/updates` answers. */
export interface SupUpdatesAnswer {
  updates: (Omit<SoftwareUpdate, "files"> & { files: { name: string; size: number; sha256: string; /** relative to the updates URL */ url: string }[] })[];
}

class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const SAFE_ID = /^[A-Za-z0-9._-]+$/;

/**
 * Starts serving the software-update-point role on `serverFqdn`.
 *
 * @example
 * const sup = await startSoftwareUpdatePoint({ deps: softwareUpdatePointDeps(site), serverFqdn: "sup01.contoso.com", listen: { host: "0.0.0.0", port: 8531 }, tls });
 * // ... await sup.close();
 */
export async function startSoftwareUpdatePoint(o: SoftwareUpdatePointOptions): Promise<SoftwareUpdatePointServer> {
  const fqdn = o.serverFqdn.toLowerCase();
  const role = await o.deps.roles.findOn(fqdn, "software-update-point");
  if (!role) throw new NotFoundError("server", `the software-update-point role on ${fqdn} (opencmg role add ${fqdn} software-update-point)`);
  const log = o.deps.logs.component(LOG_FILES.supServe);
  const libraryRoot = resolve(o.deps.library.root);

  const updatesAnswer = async (): Promise<SupUpdatesAnswer> => {
    const updates = await o.deps.updates.list();
    return {
      updates: updates.map((u) => ({
        ...u,
        files: u.files.map((f) => ({ name: f.name, size: f.size, sha256: f.sha256, url: `content/${encodeURIComponent(u.id)}/${encodeURIComponent(f.name)}` })),
      })),
    };
  };

  /** The library file for `/SMS_SUP/v1/content/<updateId>/<file>`, refusing anything else. */
  const contentFile = async (rest: string): Promise<string> => {
    const parts = rest.split("/");
    let decoded: string[];
    try {
      decoded = parts.map((p) => decodeURIComponent(p));
    } catch {
      throw new HttpRefusal(400, "the content path is not valid percent-encoding");
    }
    const [updateId, name] = decoded;
    const bad = (s: string | undefined): boolean => !s || s === "." || s === ".." || /[/\\\0]/.test(s);
    if (decoded.length !== 2 || bad(updateId) || bad(name) || !SAFE_ID.test(updateId!)) throw new HttpRefusal(400, "the content path must be <updateId>/<file>, nothing more");
    const path = resolve(libraryRoot, updateId!, name!);
    if (!path.startsWith(libraryRoot + sep)) throw new HttpRefusal(400, "the content path leaves the content library");
    const files = await o.deps.updates.filesOf(updateId!);
    if (!files.some((f) => f.name === name)) throw new HttpRefusal(404, `no synchronised update ${updateId} lists a file ${name}`);
    return path;
  };

  const serveContent = async (req: IncomingMessage, res: ServerResponse, rest: string, head: boolean): Promise<string> => {
    const path = await contentFile(rest);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) throw new HttpRefusal(404, "the file is not in the content library (yet)");
    const size = st.size;
    const rangeHeader = req.headers.range;
    let range = rangeHeader ? parseRange(rangeHeader, size) : undefined;
    // If-Range with a validator we do not match: send the whole file (RFC 9110 13.1.5).
    const ifRange = req.headers["if-range"];
    const etag = `"${size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    if (range && ifRange && ifRange !== etag) range = undefined;
    const headers: Record<string, string | number> = { "accept-ranges": "bytes", "content-type": "application/octet-stream", etag, "last-modified": st.mtime.toUTCString(), "cache-control": "no-cache" };
    if (range === "unsatisfiable") throw new HttpRefusal(416, `the range ${rangeHeader} is outside the ${size}-byte file`, { "content-range": `bytes */${size}`, "accept-ranges": "bytes" });
    const [start, end] = range ?? [0, size - 1];
    const length = size === 0 ? 0 : end - start + 1;
    res.writeHead(range ? 206 : 200, { ...headers, "content-length": length, ...(range ? { "content-range": `bytes ${start}-${end}/${size}` } : {}) });
    if (head || length === 0) {
      res.end();
    } else {
      await pipeline(createReadStream(path, { start, end }), res);
    }
    return range ? `206 bytes ${start}-${end}/${size}` : `200 ${size} bytes`;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0]!;
    const method = req.method ?? "GET";
    const remote = `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? "?"}`;
    try {
      if (method !== "GET" && method !== "HEAD") throw new HttpRefusal(405, `${method} is not served; use GET or HEAD`, { allow: "GET, HEAD" });
      if (path === SUP_PATHS.updates) {
        const text = JSON.stringify(await updatesAnswer());
        res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
        res.end(method === "HEAD" ? undefined : text);
        log.info(`${method} ${path} from ${remote}: 200`);
      } else if (path.startsWith(SUP_PATHS.contentPrefix)) {
        const outcome = await serveContent(req, res, path.slice(SUP_PATHS.contentPrefix.length), method === "HEAD");
        log.info(`${method} ${path} from ${remote}: ${outcome}${req.headers.range ? ` (Range: ${req.headers.range})` : ""}`);
      } else throw new HttpRefusal(404, `${path} is not a software update point path`);
    } catch (e) {
      // A joined server's role removed at the site: the site answers it 403, this server answers that it is out of service.
      const err = e instanceof HttpRefusal ? e : isOpenCmgError(e) && e.kind === "forbidden" ? new HttpRefusal(503, "this software update point is out of service: the site refuses it (see SUPServe.log)") : new HttpRefusal(500, "the software update point failed to serve the request; see SUPServe.log");
      const line = `Refused ${method} ${path} from ${remote}: ${err.status} ${err.message}${err !== e && isOpenCmgError(e) && e.kind === "forbidden" ? ` (the site: ${e.message})` : ""}`;
      if (err.status >= 500) log.error(line, { cause: String((e as Error)?.stack ?? e) });
      else log.warn(line);
      if (res.headersSent) return void res.destroy(); // mid-stream failure: the client sees a short body and resumes
      const text = JSON.stringify({ error: err.status, message: err.message });
      res.writeHead(err.status, { ...err.headers, "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
      res.end(method === "HEAD" ? undefined : text);
    }
  };

  const httpsServer: Server = createServer({ cert: o.tls.certPem, key: o.tls.keyPem, ...TLS_POLICY, keepAliveTimeout: 30_000, headersTimeout: 20_000 }, (req, res) => void handle(req, res));
  const { port, url, close } = await listenRole(httpsServer, o.listen, fqdn, log);
  log.info(`Software update point ${fqdn} (role ${role.id}) serving ${url}${SUP_PATHS.updates} and content from ${libraryRoot} on ${o.listen.host}:${port}.`);

  return {
    url,
    port,
    roleId: role.id,
    async close() {
      await close();
      log.info(`Software update point ${fqdn} stopped serving ${url}.`);
    },
  };
}

/**
 * One `bytes=` range against a file of `size` bytes: [start, end] inclusive, "unsatisfiable", or
 * undefined when the header is not one we honour (several ranges, another unit, malformed) — then
 * the whole file is sent, which RFC 9110 allows.
 */
export function parseRange(header: string, size: number): [number, number] | "unsatisfiable" | undefined {
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return "unsatisfiable";
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(m[1]);
  if (start >= size) return "unsatisfiable";
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (end < start) return undefined; // invalid range spec: ignored
  return [start, end];
}

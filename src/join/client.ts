/**
 * The joining server's side: `opencmg server join` makes a key here, reads the site CA and checks
 * it against the fingerprint printed with the join token, sends a certificate request with the
 * one-time token, and keeps exactly what it needs afterwards, in its data folder:
 *
 *   host.key     its private key (0600), made here, never sent
 *   host.pem     its host certificate from the site CA (client and server authentication, its FQDN)
 *   site-ca.pem  the site CA certificate
 *   join.json    the site's join URL and this server's FQDN (nothing secret)
 *
 * `JoinedHost` then talks to the site over mutually authenticated TLS with that key and certificate.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Agent, request } from "undici";
import { z } from "zod";
import { OpenCmgError, ValidationError } from "../errors.ts";
import { certSha256 } from "../site/services/joins.ts";
import { check } from "../site/validation.ts";

export const JOIN_API = "/api/v1/join";

export interface JoinFiles {
  key: string;
  cert: string;
  ca: string;
  info: string;
}

export function joinFiles(dataDir: string): JoinFiles {
  return { key: join(dataDir, "host.key"), cert: join(dataDir, "host.pem"), ca: join(dataDir, "site-ca.pem"), info: join(dataDir, "join.json") };
}

const joinInfoSchema = z.strictObject({ site: z.string().url(), server: z.string().min(1).max(253) });
type JoinInfo = z.infer<typeof joinInfoSchema>;
const errorSchema = z.object({ kind: z.string(), code: z.union([z.string(), z.number()]), message: z.string() });
const sha256Rule = z.string().trim().toLowerCase().transform((s) => s.replace(/:/g, "")).pipe(z.string().regex(/^[0-9a-f]{64}$/, "must be the SHA-256 fingerprint printed with the join token (64 hex digits)"));
const siteUrlRule = z.string().trim().url("must be the site's join URL, https://HOST:PORT").refine((u) => new URL(u).protocol === "https:", "must be an https:// URL").transform((u) => u.replace(/\/+$/, ""));

/** True when the data folder holds a joined server's files. */
export function isJoined(dataDir: string): boolean {
  return existsSync(joinFiles(dataDir).info);
}

async function call(agent: Agent, url: string, method: "GET" | "POST", body?: unknown): Promise<unknown> {
  let res;
  try {
    res = await request(url, { method, dispatcher: agent, headers: body === undefined ? {} : { "content-type": "application/json" }, ...(body === undefined ? {} : { body: JSON.stringify(body) }), headersTimeout: 30_000, bodyTimeout: 30_000 });
  } catch (e) {
    throw new OpenCmgError("net", "SITE_UNREACHABLE", `the site's join API at ${url} could not be reached: ${(e as Error).message}`, { cause: e });
  }
  const text = await res.body.text();
  if (res.statusCode === 204) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new OpenCmgError("net", "SITE_ANSWER", `the site answered ${res.statusCode} with something that is not JSON`);
  }
  if (res.statusCode >= 400) {
    const e = errorSchema.safeParse(json);
    if (e.success) throw new OpenCmgError(e.data.kind as OpenCmgError["kind"], e.data.code, e.data.message);
    throw new OpenCmgError("net", "SITE_ANSWER", `the site answered ${res.statusCode}`);
  }
  return json;
}

/**
 * `opencmg server join`: joins the site and writes the four files. Refuses a data folder that
 * already holds a join, or one holding a site (its site key or database).
 */
export async function joinSite(o: { site: string; token: string; siteCaSha256: string; server?: string | undefined; dataDir: string }): Promise<{ server: string; files: JoinFiles }> {
  const site = check("site", siteUrlRule, o.site);
  const pin = check("siteCaSha256", sha256Rule, o.siteCaSha256);
  const files = joinFiles(o.dataDir);
  if (existsSync(files.info) || existsSync(files.key)) throw new ValidationError("data", `${o.dataDir} already holds a joined server (join.json, host.key): join with an empty data folder`);
  if (existsSync(join(o.dataDir, "site.key")) || existsSync(join(o.dataDir, "site.db"))) throw new ValidationError("data", `${o.dataDir} holds a site (site.key or site.db): a joined server's data folder holds no site`);
  // The CA is read without checking the listener's certificate, then pinned by its fingerprint; everything after is verified against it.
  const probe = new Agent({ connect: { rejectUnauthorized: false } });
  let caPem: string;
  try {
    const r = z.object({ ca: z.string() }).parse(await call(probe, `${site}${JOIN_API}/ca`, "GET"));
    caPem = r.ca;
  } finally {
    await probe.close();
  }
  const got = certSha256(caPem);
  if (got !== pin) throw new OpenCmgError("forbidden", "SITE_CA_MISMATCH", `the site at ${site} presents a CA whose SHA-256 is ${got}, not the ${pin} printed with the join token: not joining`);
  const { createCsr } = await import("../pki/issue.ts");
  const { keyPem, csrPem } = await createCsr(o.server ?? "joining-server");
  const agent = new Agent({ connect: { ca: [caPem] } });
  let answer: { server: string; certificate: string; ca: string };
  try {
    answer = z.object({ server: z.string(), certificate: z.string(), ca: z.string() }).parse(await call(agent, `${site}${JOIN_API}`, "POST", { token: o.token, csr: csrPem, ...(o.server !== undefined ? { server: o.server } : {}) }));
  } finally {
    await agent.close();
  }
  if (certSha256(answer.ca) !== pin) throw new OpenCmgError("forbidden", "SITE_CA_MISMATCH", "the site answered with another CA than the one pinned");
  mkdirSync(o.dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(files.key, keyPem, { mode: 0o600, flag: "wx" });
  writeFileSync(files.cert, answer.certificate, { mode: 0o644 });
  writeFileSync(files.ca, answer.ca, { mode: 0o644 });
  const info: JoinInfo = { site, server: answer.server };
  writeFileSync(files.info, JSON.stringify(info, null, 2) + "\n", { mode: 0o644 });
  return { server: answer.server, files };
}

/** A joined server: its files, and requests to the site over mutually authenticated TLS. */
export class JoinedHost {
  readonly site: string;
  readonly server: string;
  readonly keyPem: string;
  readonly certPem: string;
  readonly caPem: string;
  private readonly agent: Agent;

  constructor(dataDir: string) {
    const files = joinFiles(dataDir);
    if (!existsSync(files.info)) throw new ValidationError("data", `${dataDir} holds no joined server (join.json): run opencmg server join first`);
    const info = check("join.json", joinInfoSchema, JSON.parse(readFileSync(files.info, "utf8")) as unknown);
    this.site = info.site;
    this.server = info.server;
    this.keyPem = readFileSync(files.key, "utf8");
    this.certPem = readFileSync(files.cert, "utf8");
    this.caPem = readFileSync(files.ca, "utf8");
    this.agent = new Agent({ connect: { ca: [this.caPem], cert: this.certPem, key: this.keyPem }, keepAliveTimeout: 30_000 });
  }

  get(path: string): Promise<unknown> {
    return call(this.agent, `${this.site}${JOIN_API}${path}`, "GET");
  }

  post(path: string, body: unknown): Promise<unknown> {
    return call(this.agent, `${this.site}${JOIN_API}${path}`, "POST", body);
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

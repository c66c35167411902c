/**
 * The CMG connection analyzer (`opencmg cmg analyze NAME`, `POST /api/v1/cmgs/:name/analyze`):
 * checks, one line each, what a device needs to reach a management point through a CMG, in the
 * order a request meets them:
 *
 *   server certificate (validity, names)            once
 *   name resolution, TLS, presented certificate     per instance
 *   trusted roots and intermediates                 once
 *   client certificate: chain, strength, usage,
 *     CRL distribution point and CRL                once (with --cert/--key), same rules as the gateway
 *   tunnels (connected connection points)           per instance, as the connection points report them
 *   location request through the gateway            per instance and management point allowing CMG traffic
 *
 * Each failed check says what to do, from the same table of reason codes the gateway answers with
 * (src/wire/refusals.ts): `fix` in the console's words, `cliFix` in the command line's
 * (cmg-analyze-fixes.ts). Requests go directly from where the analyzer runs; the CRL too, so a CRL
 * the site reaches but the instances do not is not caught here (the location request is).
 *
 * The presented certificate is judged against the server certificate the site configured for the
 * CMG: exactly that certificate is not a fault even when no root trusted here issued it (a private
 * CA whose root the devices get at install); the detail says which it is. The location request is
 * made whenever the TLS handshake succeeds, whatever the presented certificate's verdict, so a
 * certificate problem does not hide what the gateway and the site answer.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { lookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import { isIP } from "node:net";
import { readFileSync } from "node:fs";
import tls, { checkServerIdentity, rootCertificates } from "node:tls";
import { ValidationError } from "../../errors.ts";
import { parseCertificates, thumbprintOf, validityOf } from "../../pki/cert.ts";
import { CrlCache } from "../../pki/crl.ts";
import { TLS_POLICY } from "../../pki/tls-policy.ts";
import { certificateWeakness, verifyClientChain } from "../../pki/verify.ts";
import { MP_PATHS } from "../../wire/mp.ts";
import { explainRefusal, REFUSAL_HEADERS } from "../../wire/refusals.ts";
import type { CmgSettingsBase as CmgSettings } from "../../wire/tunnel/protocol.ts";
import { FIXES, refusalFixes } from "./cmg-analyze-fixes.ts";
import type { CmgView } from "./cmg-model.ts";

export type AnalyzeStatus = "pass" | "fail" | "skip";

/** One line of the analysis. */
export interface AnalyzeCheck {
  check: string;
  status: AnalyzeStatus;
  detail: string;
  /** What to do, for a failed (or skipped) check, in the console's words (what to click). */
  fix?: string;
  /** The same in the command line's words (commands and flags), when they differ. */
  cliFix?: string;
  /** The gateway's reason code (src/wire/refusals.ts), when the failure is one the gateway refuses with. */
  reason?: string;
  cause?: string;
  instance?: number;
}

export interface CmgAnalysis {
  cmg: string;
  serviceFqdn: string;
  checks: AnalyzeCheck[];
  passed: number;
  failed: number;
  skipped: number;
  /** True when no check failed. */
  ok: boolean;
}

export interface CmgAnalyzeInput {
  /** A client authentication certificate (PEM) and its key, to check and to authenticate the location requests. */
  clientCertPem?: string | undefined;
  clientKeyPem?: string | undefined;
  /** Roots devices trust for the server certificate, besides the system's and the CMG's trusted roots (PEM). */
  caPem?: string | undefined;
  /** Roots the machine running the analyzer trusts besides the system's (see machineExtraCaPem). */
  machineCaPem?: string | undefined;
}

/**
 * The roots this machine's Node trusts besides its built-in ones: NODE_EXTRA_CA_CERTS. An explicit
 * `ca` replaces Node's store, so the analyzer adds them itself. Newer Node lists them
 * (tls.getCACertificates("extra")); Node 20 does not, so the file the variable names is read.
 * Undefined when there are none; a file that cannot be read is named in the ValidationError.
 */
export function machineExtraCaPem(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const list = (tls as unknown as { getCACertificates?: (type: "extra") => string[] }).getCACertificates;
  if (typeof list === "function") {
    const extra = list("extra");
    return extra.length > 0 ? extra.join("\n") : undefined;
  }
  const file = env.NODE_EXTRA_CA_CERTS;
  if (!file) return undefined;
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new ValidationError("NODE_EXTRA_CA_CERTS", "must name a readable PEM file", `NODE_EXTRA_CA_CERTS: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

export interface CmgAnalyzeDeps {
  cmgs: { show(name: string): Promise<CmgView>; gatewaySettings(name: string): Promise<CmgSettings> };
  now?: () => Date;
  /** Per network step (resolution, handshake, request, CRL download); default 10 s. */
  timeoutMs?: number;
}

const DAY = 86_400_000;
/** Largest CRL downloaded (a CRL of a big CA is a few MB). */
const MAX_CRL_BYTES = 20 * 1024 * 1024;
/** Largest answer body read from a location request. */
const MAX_ANSWER_BYTES = 256 * 1024;

interface ClientCredential {
  certPem: string;
  keyPem: string;
  leaf: X509Certificate;
  /**
   * TLS options to present it. A certificate OpenSSL's default security level will not send
   * (SHA-1 signature, RSA under 2048 bits) goes at level 0, so the gateway gives its own verdict,
   * as it would to a device whose TLS stack sends it.
   */
  tls: { cert: string; key: string; ciphers?: string };
}

/**
 * @example
 * const a = await analyzeCmg({ cmgs: site.services.cmgs }, "cmg1", { clientCertPem, clientKeyPem });
 * for (const c of a.checks) console.log(c.status, c.check, c.detail);
 */
export async function analyzeCmg(deps: CmgAnalyzeDeps, name: string, input: CmgAnalyzeInput = {}): Promise<CmgAnalysis> {
  const client = checkInput(input);
  const view = await deps.cmgs.show(name);
  const settings = await deps.cmgs.gatewaySettings(view.name);
  const now = (deps.now ?? (() => new Date()))();
  const timeoutMs = deps.timeoutMs ?? 10_000;
  const pems = (pem: string | undefined, field: string): string[] => (pem ? parseCertificates(pem, field).map((c) => c.toString()) : []);
  const ca = [...rootCertificates, ...pems(input.machineCaPem, "NODE_EXTRA_CA_CERTS"), ...settings.trustedRoots, ...pems(input.caPem, "ca")];
  const checks: AnalyzeCheck[] = [];

  checks.push(serverCertificateCheck(view, now));
  const reachable: boolean[] = [];
  for (const inst of view.instances) {
    const host = new URL(inst.clientUrl).hostname.replace(/^\[|\]$/g, "");
    const resolved = await resolveCheck(inst.index, host, timeoutMs);
    checks.push(resolved.check);
    if (!resolved.address) {
      checks.push(skipped(`instance ${inst.index} TLS`, "its name does not resolve", inst.index));
      reachable.push(false);
      continue;
    }
    const t = await tlsCheck(view, inst.index, resolved.address, inst.clientPort, ca, client, timeoutMs);
    checks.push(...t);
    // The handshake is enough for the location request: the presented certificate has its own verdict.
    reachable.push(t[0]!.status === "pass");
  }

  checks.push(trustCheck(view.name, settings, now));
  if (client) checks.push(...(await clientCertificateChecks(settings, view.name, client, now, timeoutMs)));
  else checks.push(skipped("client certificate", "no client certificate given", undefined, FIXES.giveClientCert()));

  for (const inst of view.instances) checks.push(tunnelCheck(view, inst.index));

  const mps = Object.entries(settings.urlMap).filter(([, r]) => r.kind === "mp" && r.allowCmgTraffic).map(([id]) => id);
  if (mps.length === 0) {
    checks.push({ check: "management points allowing CMG traffic", status: "fail", detail: "no management point of the site allows CMG traffic", ...FIXES.noMpAllowsCmg() });
  }
  for (const inst of view.instances) {
    for (const roleId of mps) {
      const check = `location request via instance ${inst.index} to management point ${roleId}`;
      if (!reachable[inst.index]) {
        checks.push(skipped(check, "no TLS connection to the instance (see above)", inst.index));
        continue;
      }
      checks.push(await locationCheck(view.name, check, inst.index, `${inst.clientUrl}/CCM_Proxy_MutualAuth/${roleId}${MP_PATHS.location}`, view.serviceFqdn, client, timeoutMs));
    }
  }

  const count = (s: AnalyzeStatus): number => checks.filter((c) => c.status === s).length;
  return { cmg: view.name, serviceFqdn: view.serviceFqdn, checks, passed: count("pass"), failed: count("fail"), skipped: count("skip"), ok: count("fail") === 0 };
}

/** The client certificate and key belong together, or a ValidationError naming the field. */
function checkInput(input: CmgAnalyzeInput): ClientCredential | undefined {
  if (Boolean(input.clientCertPem) !== Boolean(input.clientKeyPem)) {
    const field = input.clientCertPem ? "clientKey" : "clientCert";
    throw new ValidationError(field, "the client certificate and its key go together", `${field}: the client certificate and its key go together`);
  }
  if (!input.clientCertPem || !input.clientKeyPem) return undefined;
  const leaf = parseCertificates(input.clientCertPem, "clientCert")[0]!;
  let matches = false;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(input.clientKeyPem));
  } catch {
    throw new ValidationError("clientKey", "must be a PEM private key");
  }
  if (!matches) throw new ValidationError("clientKey", "must be the private key of the client certificate");
  const weak = certificateWeakness(leaf) !== undefined;
  return { certPem: input.clientCertPem, keyPem: input.clientKeyPem, leaf, tls: { cert: input.clientCertPem, key: input.clientKeyPem, ...(weak ? { ciphers: `${TLS_POLICY.ciphers}:@SECLEVEL=0` } : {}) } };
}

function skipped(check: string, detail: string, instance?: number, fixes?: { fix: string; cliFix?: string }): AnalyzeCheck {
  return { check, status: "skip", detail, ...fixes, ...(instance !== undefined ? { instance } : {}) };
}

function failed(cmg: string, check: string, reason: string, detail: string, o: { cause?: string | undefined; instance?: number } = {}): AnalyzeCheck {
  return { check, status: "fail", detail, ...refusalFixes(cmg, reason, o.cause), reason, ...(o.cause ? { cause: o.cause } : {}), ...(o.instance !== undefined ? { instance: o.instance } : {}) };
}

/** The configured server authentication certificate: valid now, and for the service FQDN. */
function serverCertificateCheck(view: CmgView, now: Date): AnalyzeCheck {
  const check = "server certificate";
  const c = view.serverCertificate;
  const notAfter = Date.parse(c.notAfter);
  if (notAfter < now.getTime()) return { check, status: "fail", detail: `"${c.subject}" expired on ${c.notAfter}`, ...FIXES.renewServerCert(view.name) };
  const names = c.dnsNames ?? [];
  // The same name rules a device applies (wildcards for one label only).
  const covers = !checkServerIdentity(view.serviceFqdn, { subject: {}, subjectaltname: names.map((n) => `DNS:${n}`).join(", ") } as never);
  if (!covers) return { check, status: "fail", detail: `"${c.subject}" is not for ${view.serviceFqdn} (names: ${names.join(", ") || "none"})`, fix: "issue a server certificate for the service name (a different name needs a new CMG)" };
  const soon = notAfter - now.getTime() < 30 * DAY;
  return { check, status: "pass", detail: `"${c.subject}" (${c.thumbprint}) for ${view.serviceFqdn}, valid until ${c.notAfter}${soon ? "; expires within 30 days" : ""}`, ...(soon ? FIXES.renewServerCert(view.name) : {}) };
}

async function resolveCheck(index: number, host: string, timeoutMs: number): Promise<{ check: AnalyzeCheck; address?: string }> {
  const check = `instance ${index} name resolution`;
  if (isIP(host)) return { check: { check, status: "pass", detail: `${host} is an address`, instance: index }, address: host };
  try {
    const all = await withTimeout(lookup(host, { all: true }), timeoutMs, `resolving ${host}`);
    return { check: { check, status: "pass", detail: `${host} -> ${all.map((a) => a.address).join(", ")}`, instance: index }, address: all[0]!.address };
  } catch (e) {
    return { check: { check, status: "fail", detail: `${host} does not resolve (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, fix: `publish a DNS record for ${host} pointing at the instance (devices use the client URL's host name)`, instance: index } };
  }
}

/** TLS to an instance's client port, as a device makes it, and the certificate it presents. */
async function tlsCheck(view: CmgView, index: number, address: string, port: number, ca: string[], client: ClientCredential | undefined, timeoutMs: number): Promise<AnalyzeCheck[]> {
  const check = `instance ${index} TLS`;
  let socket: tls.TLSSocket;
  try {
    socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: address, port, servername: view.serviceFqdn, ca, rejectUnauthorized: false, ...TLS_POLICY, ...client?.tls });
      const timer = setTimeout(() => s.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
      s.once("secureConnect", () => (clearTimeout(timer), resolve(s)));
      s.once("error", (e) => (clearTimeout(timer), reject(e)));
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const fixes = code === "ECONNREFUSED" ? FIXES.notListening(view.name) : { fix: "check that the instance runs and that nothing between blocks its client port" };
    return [{ check, status: "fail", detail: `${address}:${port}: ${code ?? (e as Error).message}`, ...fixes, instance: index }];
  }
  try {
    const peer = socket.getPeerX509Certificate();
    const out: AnalyzeCheck[] = [{ check, status: "pass", detail: `${socket.getProtocol() ?? "TLS"} with ${address}:${port}`, instance: index }];
    const pc = `instance ${index} presented certificate`;
    if (!peer) {
      out.push({ check: pc, status: "fail", detail: "no certificate presented", fix: "restart the instance", instance: index });
      return out;
    }
    const thumbprint = thumbprintOf(peer.raw);
    const configured = thumbprint === view.serverCertificate.thumbprint;
    const problems: string[] = [];
    let fixes: { fix: string; cliFix?: string } | undefined;
    if (!configured) {
      problems.push(`it presents ${thumbprint}, not the server certificate the site configured (${view.serverCertificate.thumbprint})`);
      fixes = FIXES.olderServerCert();
      // Another certificate than the configured one is judged by the roots trusted here alone.
      if (!socket.authorized) problems.push(`its chain is not trusted here (${String(socket.authorizationError)})`);
    }
    const nameError = checkServerIdentity(view.serviceFqdn, { subject: {}, subjectaltname: peer.subjectAltName ?? "" } as never);
    if (nameError) {
      problems.push(`it is not for ${view.serviceFqdn}`);
      fixes ??= { fix: "the instance must present the CMG's server certificate" };
    }
    if (problems.length > 0) {
      out.push({ check: pc, status: "fail", detail: problems.join("; "), ...fixes, instance: index });
    } else if (socket.authorized) {
      out.push({ check: pc, status: "pass", detail: `exactly the server certificate the site configured for the CMG (${thumbprint}), for ${view.serviceFqdn}; its chain is trusted here`, instance: index });
    } else {
      // A private CA's certificate: the one the site configured, so not a fault of the CMG; devices need its root.
      out.push({
        check: pc,
        status: "pass",
        detail: `exactly the server certificate the site configured for the CMG (${thumbprint}), for ${view.serviceFqdn}; no root trusted here issued it (${String(socket.authorizationError)}), so devices trust it only with its root installed`,
        ...FIXES.untrustedServerCert(),
        instance: index,
      });
    }
    return out;
  } finally {
    socket.destroy();
  }
}

/** Every configured intermediate chains to a trusted root, and the roots are valid. */
function trustCheck(cmg: string, settings: CmgSettings, now: Date): AnalyzeCheck {
  const check = "trusted roots and intermediates";
  if (settings.trustedRoots.length === 0) return { check, status: "fail", detail: "the CMG trusts no root CA for client certificates", ...FIXES.noTrustedRoot(cmg) };
  for (const pem of [...settings.trustedRoots, ...settings.intermediates]) {
    const c = new X509Certificate(pem);
    if (validityOf(c).notAfter.getTime() < now.getTime()) return { check, status: "fail", detail: `"${c.subject.replaceAll("\n", ", ")}" expired on ${validityOf(c).notAfter.toISOString()}`, ...FIXES.expiredCa(cmg) };
  }
  for (const pem of settings.intermediates) {
    const c = new X509Certificate(pem);
    if (!settings.trustedRoots.some((r) => c.checkIssued(new X509Certificate(r))) && !settings.intermediates.some((o) => o !== pem && c.checkIssued(new X509Certificate(o)))) {
      return { check, status: "fail", reason: "untrusted_chain", detail: `intermediate "${c.subject.replaceAll("\n", ", ")}" chains to no trusted root`, ...FIXES.orphanIntermediate(cmg) };
    }
  }
  return { check, status: "pass", detail: `${settings.trustedRoots.length} trusted root(s), ${settings.intermediates.length} intermediate(s), each intermediate chains to a root; revocation checking ${settings.crlCheck ? "on" : "off"}` };
}

/** The client certificate as the gateway checks it: chain, validity, strength, usage, then revocation. */
async function clientCertificateChecks(settings: CmgSettings, cmg: string, client: ClientCredential, now: Date, timeoutMs: number): Promise<AnalyzeCheck[]> {
  const subject = client.leaf.subject.replaceAll("\n", ", ");
  const chain = verifyClientChain(client.leaf, { roots: settings.trustedRoots, intermediates: settings.intermediates, at: now, ...(settings.clientCertPolicy ? { policy: settings.clientCertPolicy } : {}) });
  if (!chain.ok) {
    return [failed(cmg, explainRefusal(chain.reason, chain.cause).check, chain.reason, chain.detail, { cause: chain.cause }), skipped("client certificate revocation", "the chain check failed")];
  }
  const out: AnalyzeCheck[] = [{ check: "client certificate chain", status: "pass", detail: `"${subject}" chains to "${chain.chain[chain.chain.length - 1]!.subject.replaceAll("\n", ", ")}" (${chain.chain.length} certificate(s)); validity, key, signature and usage pass` }];
  if (!settings.crlCheck) {
    out.push({ check: "client certificate revocation", status: "pass", detail: `revocation checking is off for ${cmg}` });
    return out;
  }
  const crls = new CrlCache({ fetch: (url) => httpGet(url, timeoutMs), now: () => now, failureBackoffMs: 0 });
  try {
    const r = await crls.checkChain(chain.chain);
    if (r.ok) out.push({ check: "client certificate revocation", status: "pass", detail: "every certificate of the chain names a CRL distribution point, and its CRL (downloaded from here) does not list it" });
    else out.push(failed(cmg, "client certificate revocation", r.reason, r.detail, { cause: r.reason === "crl_unavailable" ? r.cause : undefined }));
  } finally {
    crls.close();
  }
  return out;
}

/** The instance's tunnels as the connection points last reported them. */
function tunnelCheck(view: CmgView, index: number): AnalyzeCheck {
  const check = `instance ${index} tunnels`;
  const inst = view.instances[index]!;
  const up = inst.connectionPoints.filter((c) => c.connected);
  if (up.length > 0) return { check, status: "pass", detail: `connected from ${up.map((c) => `${c.server} (reported ${c.reportedAt})`).join(", ")}`, instance: index };
  if (view.connectionPointServers.length === 0) return { ...failed(view.name, check, "no_connection_point", "no CMG connection point is bound to this CMG", { instance: index }), ...FIXES.noConnectionPointBound(view.name) };
  const why = inst.connectionPoints.map((c) => `${c.server}: ${c.detail}`).join("; ") || "no connection point has reported on it";
  return failed(view.name, check, "no_connection_point", `no connection point is connected (${why})`, { instance: index });
}

/**
 * A location request through the gateway, as a device makes it. The server certificate is not
 * judged again (its own check did): the request goes to whatever answered the handshake, and
 * carries nothing secret (the client key only signs the handshake).
 */
async function locationCheck(cmg: string, check: string, index: number, url: string, serviceFqdn: string, client: ClientCredential | undefined, timeoutMs: number): Promise<AnalyzeCheck> {
  let answer: { status: number; headers: http.IncomingHttpHeaders; body: string };
  try {
    answer = await httpsGet(url, { servername: serviceFqdn, rejectUnauthorized: false, ...client?.tls }, timeoutMs);
  } catch (e) {
    return { check, status: "fail", detail: `the request failed: ${(e as NodeJS.ErrnoException).code ?? ""} ${(e as Error).message}`.trim(), fix: "see the TLS checks above and CMGHttpHandler.log at the gateway", instance: index };
  }
  const reason = one(answer.headers[REFUSAL_HEADERS.reason]);
  if (reason) {
    const cause = one(answer.headers[REFUSAL_HEADERS.cause]);
    const x = explainRefusal(reason, cause);
    const detail = `refused by the gateway's ${x.check} check (${answer.status} ${reason}${cause ? `, ${cause}` : ""})`;
    // Without a certificate nothing further can be checked: that is a gap in the input, not a fault.
    if (!client && reason === "no_certificate") return { check, status: "skip", reason, detail, ...FIXES.locationNeedsCert(), instance: index };
    return failed(cmg, check, reason, detail, { cause, instance: index });
  }
  if (answer.status >= 200 && answer.status < 300) return { check, status: "pass", detail: `${answer.status}: the management point answered through the gateway`, instance: index };
  let mpReason = "";
  try {
    mpReason = (JSON.parse(answer.body) as { error?: string }).error ?? "";
  } catch {
    mpReason = "";
  }
  // The gateway and the tunnel did their part: the management point itself answered.
  if (mpReason === "not_registered") return { check, status: "pass", detail: `${answer.status} not_registered: the management point answered through the gateway (it does not know this certificate: the device registers at install)`, instance: index };
  return { check, status: "fail", reason: mpReason || `http_${answer.status}`, detail: `the management point answered ${answer.status} ${mpReason}`.trim(), fix: "see the management point's logs (MP_Location.log) at the site", instance: index };
}

function one(v: string | string[] | undefined): string | undefined {
  const x = Array.isArray(v) ? v[0] : v;
  return x && /^[a-z0-9_]{1,64}$/.test(x) ? x : undefined;
}

function httpsGet(url: string, tlsOptions: https.RequestOptions, timeoutMs: number): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ...TLS_POLICY, ...tlsOptions, agent: false, headers: { accept: "application/json" }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size <= MAX_ANSWER_BYTES) chunks.push(c);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

/** A CRL download (http or https), bounded in time and size. */
function httpGet(url: string, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith("https:") ? https.get : url.startsWith("http:") ? http.get : undefined;
    if (!get) return reject(new Error(`unsupported CRL URL scheme: ${url}`));
    const req = get(url, { agent: false, timeout: timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`HTTP ${res.statusCode}`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > MAX_CRL_BYTES) req.destroy(new Error(`the CRL is larger than ${MAX_CRL_BYTES} bytes`));
        else chunks.push(c);
      });
      res.on("end", () => resolve(Buffer.concat(chunks)));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

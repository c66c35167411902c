/**
 * `opencmg client install`: checks the certificate and key, registers with the management point,
 * keeps what the client needs in its folder, and makes the first location request.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { existsSync, renameSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import { OpenCmgError, ValidationError } from "../errors.ts";
import { LogSet, type ComponentLog } from "../logs/cmtrace.ts";
import { LOG_FILES } from "../logs/files.ts";
import { thumbprintOf } from "../pki/cert.ts";
import { MP_PATHS, type LocationAnswer, type MpCandidate, type RegisterAnswer } from "../wire/mp.ts";
import { checkHttpsUrl, checkUrl, describeCandidates, errorText, mpTypeOf } from "./mp-url.ts";
import { loadOrCreateTokenKey, type TokenKey } from "./token-key.ts";
import { makeBindProof, makeKeyChangeProof } from "../wire/key-proof.ts";
import { ClientStore, writeFileAtomic, type ClientConfig, type ClientState } from "./store.ts";
import { MpTransport, type ClientTls } from "./transport.ts";
import type { Resolver } from "./addresses.ts";

export interface InstallOptions {
  dir: string;
  /** The management point to register with (an intranet MP, or an MP's URL through a CMG). */
  mp: string;
  alwaysInternet?: boolean | undefined;
  /** Client authentication certificate and key (PEM). Without them the site must approve the client. */
  certPem?: string | undefined;
  keyPem?: string | undefined;
  /** Trusted roots for the MPs' and CMGs' server certificates (PEM); the system's roots when absent. */
  caPem?: string | undefined;
  /** A bulk registration token (`opencmg token create-bulk`): no certificate needed; `mp` is the CMG's token URL. */
  bulkToken?: string | undefined;
  /** An ID token of the directory the site trusts (directory sign-in), instead of a bulk token. */
  idToken?: string | undefined;
  /**
   * With `idToken`, in a folder installed before: move the client to a new key, proving the change
   * with the key it holds now (a key change proof), so the site replaces the bound key.
   */
  newKey?: boolean | undefined;
  /** Computer name (default: this host's name). */
  name?: string | undefined;
  internalProbe?: string | undefined;
  timeoutMs?: number | undefined;
  now?: (() => Date) | undefined;
  /** Resolves a service name to every address (default the system's); `client install --resolve`. */
  resolver?: Resolver | undefined;
}

export interface InstallResult {
  dir: string;
  clientId: string;
  name: string;
  approved: boolean;
  mp: string;
  candidates: MpCandidate[];
}

/** The CMG's token URL (`.../CCM_Proxy_ServerAuth/<roleId>`). */
function isTokenUrl(url: string): boolean {
  return /\/CCM_Proxy_ServerAuth\//i.test(url + "/");
}

function defaultName(): string {
  return hostname().replace(/[^A-Za-z0-9._-]/g, "-").replace(/^[^A-Za-z0-9]+/, "") || "client";
}

/** Checks that the certificate and key go together and returns the certificate's thumbprint. */
function checkCertificate(certPem: string, keyPem: string): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new ValidationError("cert", "must be a PEM certificate", `cert: not a readable PEM certificate (${errorText(e)})`);
  }
  let matches = false;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch (e) {
    throw new ValidationError("key", "must be a PEM private key", `key: not a readable PEM private key (${errorText(e)})`);
  }
  if (!matches) throw new ValidationError("key", "must be the private key of --cert", "key: is not the private key of the certificate given with --cert");
  return thumbprintOf(cert.raw);
}

/**
 * Registers with the management point, copies the certificate and key into the client folder
 * (key 0600), and makes the first location request.
 *
 * @example
 * await installClient({ dir: "/var/lib/opencmg-client", mp: "https://mp01.contoso.com", certPem, keyPem, caPem });
 */
export async function installClient(o: InstallOptions): Promise<InstallResult> {
  const mp = checkHttpsUrl("mp", o.mp);
  const internalProbe = o.internalProbe ? checkUrl("internalProbe", o.internalProbe) : null;
  if (Boolean(o.certPem) !== Boolean(o.keyPem)) throw new ValidationError(o.certPem ? "key" : "cert", "--cert and --key go together", `${o.certPem ? "key" : "cert"}: --cert and --key go together`);
  const thumbprint = o.certPem && o.keyPem ? checkCertificate(o.certPem, o.keyPem) : undefined;
  const registrationToken = o.bulkToken ?? o.idToken;
  if (o.bulkToken && o.idToken) throw new ValidationError("token", "--token and --id-token exclude each other", "token: give a bulk registration token (--token) or an ID token (--id-token), not both");
  if (registrationToken && thumbprint) throw new ValidationError("token", "--token/--id-token and --cert exclude each other", "token: a client with a certificate registers with it; --token and --id-token are for devices without one");
  if (registrationToken !== undefined && !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(registrationToken.trim())) {
    throw new ValidationError(o.bulkToken ? "token" : "idToken", "must be a signed JWT (three base64url parts)", `${o.bulkToken ? "token" : "idToken"}: must be a signed JWT (three base64url parts, as printed once by opencmg token create-bulk)`);
  }
  if (registrationToken && mpTypeOf(mp) !== "Internet") throw new ValidationError("mp", "must be the CMG's token URL (.../CCM_Proxy_ServerAuth/<roleId>) with --token or --id-token", "mp: with --token or --id-token, give the CMG's token URL, https://CMG/CCM_Proxy_ServerAuth/<roleId>");
  if (o.newKey && !o.idToken) throw new ValidationError("newKey", "goes with --id-token", "newKey: --new-key moves a directory device to a new key: give --id-token too");
  const name = o.name ?? defaultName();
  const now = o.now ?? (() => new Date());
  const store = new ClientStore(o.dir);
  if (o.newKey && !(store.installed() && existsSync(store.paths.tokenKey))) throw new ValidationError("newKey", "needs a client folder installed with a key", `newKey: ${store.dir} holds no installed client with a key to prove the change with`);
  store.ensure();
  // Moving off the certificate: a folder that holds a client token (got at a certificate or an
  // approved registration) installs at the CMG's token URL with it, no certificate needed.
  const heldToken = !thumbprint && !registrationToken && isTokenUrl(mp) && existsSync(store.paths.tokenKey) ? store.clientToken() : undefined;
  const logs = new LogSet({ dir: store.paths.logs, now });
  const tls: ClientTls = { certPem: o.certPem, keyPem: o.keyPem, ca: o.caPem ? [o.caPem] : undefined };
  // A client without certificate keeps its token across reinstalls, so it stays the same client.
  const token = thumbprint || registrationToken ? undefined : store.token();
  const transport = new MpTransport(tls, { token: heldToken ? undefined : token, timeoutMs: o.timeoutMs, spread: { key: name, resolver: o.resolver } });
  // Every client has a key of its own: a device without a certificate proves it on every request
  // (its client token is bound to it); one with a certificate gets a client token bound to it too.
  const keyChange = o.newKey ? await newKeyWithProof(store) : undefined;
  const tokenKey = keyChange?.key ?? (await loadOrCreateTokenKey(store.paths.tokenKey));
  const proving = registrationToken?.trim() ?? heldToken;
  if (proving) transport.useProvenToken(proving, tokenKey);
  try {
    const reg = await register(o, {
      mp,
      name,
      thumbprint,
      internalProbe,
      now,
      store,
      transport,
      tokenKey,
      tokenAuth: proving !== undefined,
      how: o.bulkToken ? "a bulk registration token" : o.idToken ? `a directory ID token${keyChange ? `, moving from key ${keyChange.oldJkt} with its proof` : ""}` : "its client token",
      keyChangeProof: keyChange?.proof,
      log: logs.component(LOG_FILES.clientIdManagerStartup),
    });
    // The site bound the new key: it replaces the old one in the folder.
    if (keyChange) renameSync(keyChange.file, store.paths.tokenKey);
    const locLog = logs.component(LOG_FILES.locationServices);
    let loc: LocationAnswer;
    try {
      loc = await transport.call<LocationAnswer>(mp, MP_PATHS.location);
    } catch (e) {
      locLog.error(`First location request to ${mp} failed: ${errorText(e)}`);
      throw e;
    }
    const state: ClientState = { ...store.state(), candidates: loc.mps, siteCode: loc.siteCode, lastLocationAt: now().toISOString(), mpInUse: mp, connectionType: mpTypeOf(mp) === "Internet" ? "internet" : "intranet" };
    store.writeState(state);
    locLog.info(`Location request to ${mp}: site ${loc.siteCode}, ${describeCandidates(loc.mps)}.`);
    return { dir: store.dir, clientId: reg.clientId, name, approved: reg.approved, mp, candidates: loc.mps };
  } finally {
    await transport.close();
    logs.close();
  }
}

interface Registration {
  mp: string;
  name: string;
  thumbprint: string | undefined;
  internalProbe: string | null;
  now: () => Date;
  store: ClientStore;
  transport: MpTransport;
  tokenKey: TokenKey;
  /** Registers with a token and a proof of its key (bulk, directory ID or its own client token). */
  tokenAuth: boolean;
  how: string;
  keyChangeProof: string | undefined;
  log: ComponentLog;
}

/** A new key beside the current one (`token-key.pem.new`) and the current key's proof of the move. */
async function newKeyWithProof(store: ClientStore): Promise<{ key: TokenKey; file: string; proof: string; oldJkt: string }> {
  const old = await loadOrCreateTokenKey(store.paths.tokenKey);
  const file = `${store.paths.tokenKey}.new`;
  rmSync(file, { force: true });
  const key = await loadOrCreateTokenKey(file);
  return { key, file, proof: await makeKeyChangeProof(old, store.config().clientId, key.jkt), oldJkt: old.jkt };
}

/** The registration request; on success the certificate, key, CA, token and configuration are written. */
async function register(o: InstallOptions, r: Registration): Promise<RegisterAnswer> {
  const { mp, name, thumbprint, store } = r;
  let reg: RegisterAnswer;
  try {
    // With a certificate or without any token, the key is proven in the body (the MP issues a client token once the client is approved).
    const tokenKeyProof = r.tokenAuth ? undefined : await makeBindProof(r.tokenKey);
    reg = await r.transport.call<RegisterAnswer>(mp, MP_PATHS.register, { body: { name, ...(thumbprint ? { thumbprint } : {}), alwaysInternet: o.alwaysInternet === true, ...(tokenKeyProof ? { tokenKeyProof } : {}), ...(r.keyChangeProof ? { keyChangeProof: r.keyChangeProof } : {}) } });
  } catch (e) {
    r.log.error(`Registration with ${mp} failed: ${errorText(e)}`);
    throw e;
  }
  if (o.certPem && o.keyPem) {
    writeFileAtomic(store.paths.cert, o.certPem, 0o644);
    writeFileAtomic(store.paths.key, o.keyPem, 0o600);
  }
  if (o.caPem) writeFileAtomic(store.paths.ca, o.caPem, 0o644);
  if (reg.token) {
    writeFileAtomic(store.paths.token, reg.token + "\n", 0o600);
    r.transport.useToken(reg.token);
  }
  if (r.tokenAuth) {
    if (!reg.clientToken) throw new OpenCmgError("net", "NO_CLIENT_TOKEN", `${mp} registered the device but sent no client token`);
    store.writeClientToken(reg.clientToken);
    r.transport.useProvenToken(reg.clientToken, r.tokenKey);
  } else if (reg.clientToken) {
    // Kept for later: the device can move off its certificate with it (install at the CMG's token URL).
    store.writeClientToken(reg.clientToken);
  } else if (reg.clientTokenRefused) {
    r.log.warn(`${mp} sent no client token: ${reg.clientTokenRefused.error}: ${reg.clientTokenRefused.message}`);
  }
  const config: ClientConfig = {
    version: 1,
    name,
    bootstrapMp: mp,
    // A token client has no certificate an intranet management point could check: always the CMG.
    alwaysInternet: o.alwaysInternet === true || r.tokenAuth,
    internalProbe: r.internalProbe,
    clientId: reg.clientId,
    approved: reg.approved,
    hasCertificate: thumbprint !== undefined,
    ...(r.tokenAuth ? { tokenAuth: true } : {}),
    installedAt: r.now().toISOString(),
  };
  store.writeConfig(config);
  r.log.info(
    `Registered with ${mp} as ${reg.clientId} (${name})${thumbprint ? ` with certificate ${thumbprint}` : r.tokenAuth ? ` with ${r.how}` : " without a certificate"}; ${reg.approved ? "approved" : "awaiting approval by the site"}${reg.clientToken ? `; client token valid until ${reg.clientTokenExpiresAt ?? "?"}, bound to key ${r.tokenKey.jkt}` : `; key ${r.tokenKey.jkt}`}${config.alwaysInternet ? "; always on internet (CCMALWAYSINF=1)" : ""}.`,
  );
  return reg;
}

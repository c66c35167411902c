/**
 * Revocation checking against CRLs, for the gateway's "verify client certificate revocation"
 * setting. CRLs are fetched through an injected function (the gateway decides the route: direct
 * or through its proxy), verified against the issuer, cached until their nextUpdate and refreshed
 * in the background shortly before, so a client handshake rarely waits for a download.
 *
 * The check fails closed: when no valid CRL can be had, the answer is "crl_unavailable", never
 * "ok". The documents say the same: with revocation checking on, the CRL must be published and
 * reachable; an admin who cannot publish one switches the check off.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate, webcrypto } from "node:crypto";
import { nullLog, type ComponentLog } from "../../../src/logs/cmtrace.ts";
import { crlUrls, thumbprintOf } from "./cert.ts";
import { looksLikePem, pemBlocks } from "../../../src/pki/pem.ts";

/** Why no CRL could be used: the certificate names none, or none could be had. */
export type CrlCause = "no_crl_distribution_point" | "crl_unreachable";

export type CrlResult = { ok: true } | { ok: false; reason: "revoked"; detail: string } | { ok: false; reason: "crl_unavailable"; cause: CrlCause; detail: string };

export interface CrlCacheOptions {
  /** Downloads a CRL (DER or PEM). Throws or rejects when it cannot. */
  fetch: (url: string) => Promise<Buffer | string>;
  log?: ComponentLog;
  now?: () => Date;
  /** How long before nextUpdate the background refresh starts (default 5 minutes, at most half the CRL's lifetime). */
  refreshBeforeMs?: number;
  /** After a failed download, answer from that failure for this long instead of downloading again (default 10 s). */
  failureBackoffMs?: number;
  /** Shortest wait between background refreshes of one URL, so a CRL close to its nextUpdate is not re-downloaded in a loop (default 30 s). */
  minRefreshMs?: number;
}

interface Entry {
  crl: x509.X509Crl;
  /** Until when the entry answers checks: the CRL's nextUpdate. */
  expires: Date;
  /** Thumbprints of issuers whose key verified this CRL (verification is async and not free). */
  verifiedBy: Set<string>;
  timer?: NodeJS.Timeout;
}

const crypto = webcrypto as unknown as Crypto;
const MAX_TIMER = 2 ** 31 - 1; // setTimeout's largest delay (~24.8 days)
// A CRL may be signed a moment "in the future" by a CA whose clock runs ahead.
const SKEW = 5 * 60_000;

/**
 * A cache of CRLs by URL.
 *
 * @example
 * const crls = new CrlCache({ fetch: async (url) => Buffer.from(await (await egress.request(url)).body.arrayBuffer()), log });
 * const r = await crls.check(leaf, issuer);
 * if (!r.ok) log.warn(`client refused: ${r.reason}: ${r.detail}`);
 * crls.close();
 */
export class CrlCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<Entry>>();
  private readonly failures = new Map<string, { at: number; message: string }>();
  private readonly log: ComponentLog;
  private readonly now: () => Date;
  private readonly refreshBeforeMs: number;
  private readonly failureBackoffMs: number;
  private readonly minRefreshMs: number;
  private closed = false;

  constructor(private readonly options: CrlCacheOptions) {
    this.log = options.log ?? nullLog;
    this.now = options.now ?? (() => new Date());
    this.refreshBeforeMs = options.refreshBeforeMs ?? 5 * 60_000;
    this.failureBackoffMs = options.failureBackoffMs ?? 10_000;
    this.minRefreshMs = options.minRefreshMs ?? 30_000;
  }

  /**
   * Is `cert` (issued by `issuer`) revoked? Tries the certificate's CRL distribution points in
   * order and answers from the first one that yields a valid CRL signed by `issuer`.
   *
   * @example
   * await crls.check(clientCert, issuingCa) // { ok: false, reason: "revoked", detail: "..." }
   */
  async check(cert: X509Certificate, issuer: X509Certificate): Promise<CrlResult> {
    const urls = crlUrls(cert);
    if (urls.length === 0) {
      // Fail closed: a certificate without a distribution point cannot be checked, and letting
      // it through would let any certificate the CA issued without a CDP bypass revocation.
      return { ok: false, reason: "crl_unavailable", cause: "no_crl_distribution_point", detail: `"${oneLine(cert.subject)}" names no CRL distribution point, so its revocation cannot be checked` };
    }
    const problems: string[] = [];
    for (const url of urls) {
      try {
        const entry = await this.entryFor(url, issuer);
        const revoked = entry.crl.findRevoked(cert.serialNumber);
        if (revoked) {
          return {
            ok: false,
            reason: "revoked",
            detail: `certificate serial ${cert.serialNumber} ("${oneLine(cert.subject)}") was revoked on ${revoked.revocationDate.toISOString()} (CRL ${url})`,
          };
        }
        return { ok: true };
      } catch (err) {
        problems.push(`${url}: ${(err as Error).message}`);
      }
    }
    return { ok: false, reason: "crl_unavailable", cause: "crl_unreachable", detail: problems.join("; ") };
  }

  /**
   * Checks every certificate of a chain (leaf first, root last) against its issuer's CRL; the
   * root itself is not checked (nobody above it publishes a CRL for it).
   *
   * @example
   * const r = await crls.checkChain(verified.chain);
   */
  async checkChain(chain: X509Certificate[]): Promise<CrlResult> {
    for (let i = 0; i + 1 < chain.length; i++) {
      const r = await this.check(chain[i]!, chain[i + 1]!);
      if (!r.ok) return r;
    }
    return { ok: true };
  }

  /** Stops background refreshes. Checks after close still work but no longer schedule refreshes. */
  close(): void {
    this.closed = true;
    for (const e of this.entries.values()) clearTimeout(e.timer);
  }

  /** A valid CRL for `url` signed by `issuer`, from the cache or downloaded. */
  private async entryFor(url: string, issuer: X509Certificate): Promise<Entry> {
    const cached = this.entries.get(url);
    if (cached && this.now().getTime() < cached.expires.getTime()) {
      // A certificate naming another CA's CRL URL fails here; the cached CRL stays for its CA.
      await verifyIssuer(cached, issuer);
      return cached;
    }
    // Failures are remembered per URL *and* issuer, so a certificate pointing at another CA's
    // URL cannot hold back that CA's own clients.
    const failureKey = `${url} ${thumbprintOf(issuer.raw)}`;
    const failure = this.failures.get(failureKey);
    if (failure && this.now().getTime() - failure.at < this.failureBackoffMs) throw new Error(failure.message);
    try {
      const entry = await this.download(url);
      await verifyIssuer(entry, issuer);
      this.failures.delete(failureKey);
      if (this.entries.get(url) !== entry) this.store(url, entry, issuer);
      return entry;
    } catch (err) {
      const message = `cannot use the CRL: ${(err as Error).message}`;
      this.failures.set(failureKey, { at: this.now().getTime(), message });
      this.log.warn(`CRL ${url}: ${message}`);
      throw new Error(message, { cause: err });
    }
  }

  /** Downloads and parses a CRL; concurrent callers for one URL share the download. */
  private download(url: string): Promise<Entry> {
    let p = this.inflight.get(url);
    if (!p) {
      p = this.load(url).finally(() => this.inflight.delete(url));
      this.inflight.set(url, p);
    }
    return p;
  }

  private async load(url: string): Promise<Entry> {
    const crl = parseCrl(await this.options.fetch(url));
    const now = this.now().getTime();
    if (crl.thisUpdate.getTime() > now + SKEW) throw new Error(`the CRL is not valid before ${crl.thisUpdate.toISOString()}`);
    const expires = crl.nextUpdate;
    if (!expires) throw new Error("the CRL has no nextUpdate, so it cannot be cached safely");
    if (expires.getTime() <= now) throw new Error(`the CRL expired on ${expires.toISOString()} (the CA has not published a newer one)`);
    return { crl, expires, verifiedBy: new Set() };
  }

  /** Caches a verified CRL and schedules its refresh shortly before its nextUpdate. */
  private store(url: string, entry: Entry, signer: X509Certificate): void {
    clearTimeout(this.entries.get(url)?.timer);
    this.entries.set(url, entry);
    this.log.info(`Downloaded CRL ${url} (${entry.crl.entries.length} revoked, next update ${entry.expires.toISOString()})`);
    if (this.closed) return;
    const now = this.now().getTime();
    const lifetime = entry.expires.getTime() - entry.crl.thisUpdate.getTime();
    const due = entry.expires.getTime() - Math.min(this.refreshBeforeMs, lifetime / 2);
    this.schedule(url, entry, signer, due - now);
  }

  private schedule(url: string, entry: Entry, signer: X509Certificate, delayMs: number): void {
    entry.timer = setTimeout(() => void this.refresh(url, signer), Math.min(Math.max(delayMs, this.minRefreshMs), MAX_TIMER));
    entry.timer.unref();
  }

  /** Background refresh; on failure the cached CRL keeps answering until its nextUpdate. */
  private async refresh(url: string, signer: X509Certificate): Promise<void> {
    if (this.closed) return;
    const before = this.entries.get(url);
    try {
      // Past the cache check on purpose: the cached entry is still valid, we want a new one.
      const entry = await this.download(url);
      await verifyIssuer(entry, signer);
      if (this.closed) return;
      this.store(url, entry, signer);
    } catch (err) {
      this.log.warn(`CRL ${url}: background refresh failed: ${(err as Error).message}`);
      const entry = this.entries.get(url);
      if (!entry || entry !== before || this.closed || entry.expires.getTime() <= this.now().getTime()) return;
      this.schedule(url, entry, signer, this.failureBackoffMs);
    }
  }
}

/** Checks the CRL was issued and signed by `issuer` (remembered per issuer thumbprint). */
async function verifyIssuer(entry: Entry, issuer: X509Certificate): Promise<void> {
  const thumbprint = thumbprintOf(issuer.raw);
  if (entry.verifiedBy.has(thumbprint)) return;
  const p = new x509.X509Certificate(issuer.raw);
  const sameName = Buffer.from(entry.crl.issuerName.toArrayBuffer()).equals(Buffer.from(p.subjectName.toArrayBuffer()));
  if (!sameName) throw new Error(`the CRL was issued by "${entry.crl.issuer}", not by "${p.subject}"`);
  let valid = false;
  try {
    valid = await entry.crl.verify({ publicKey: p }, crypto);
  } catch {
    valid = false;
  }
  if (!valid) throw new Error(`the CRL signature does not verify with the key of "${p.subject}"`);
  entry.verifiedBy.add(thumbprint);
}

function oneLine(name: string): string {
  return name.replaceAll("\n", ", ");
}

/** A CRL from DER bytes or PEM text ("X509 CRL" or "CRL" label). */
export function parseCrl(data: Buffer | string): x509.X509Crl {
  if (looksLikePem(data)) {
    const text = typeof data === "string" ? data : data.toString("utf8");
    const block = pemBlocks(text).find((b) => b.label === "X509 CRL" || b.label === "CRL");
    if (!block) throw new Error("the download holds no CRL");
    data = block.der;
  }
  if (typeof data === "string") throw new Error("the download is neither PEM nor DER");
  try {
    return new x509.X509Crl(Uint8Array.from(data));
  } catch (err) {
    throw new Error(`the download is not a CRL (${(err as Error).message})`);
  }
}

/**
 * `opencmg client diagnose`: why this device cannot connect through a CMG, and what to fix. It
 * checks the client certificate as the gateway would (what it can without the CMG's trusted
 * roots: presence, validity, usage, signature and key strength, CRL distribution point), then
 * asks every CMG it knows (the internet management points of its last location answer, or the one
 * it was installed with) and names the check that refused it, from the reason code the gateway
 * answers with (src/wire/refusals.ts). The last recorded refusal is shown with its time.
 */
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { crlUrls, hasClientAuthEku, validityOf } from "../pki/cert.ts";
import { certificateWeakness } from "../pki/verify.ts";
import { MP_PATHS } from "../wire/mp.ts";
import { explainRefusal, type RefusalExplained } from "../wire/refusals.ts";
import { errorText, mpTypeOf } from "./mp-url.ts";
import { ClientStore, type RecordedRefusal } from "./store.ts";
import { GatewayRefusedError, MpRefusedError, MpTransport, recordRefusal } from "./transport.ts";
import { loadOrCreateTokenKey } from "./token-key.ts";

export type CheckStatus = "pass" | "fail" | "skip";

/** One line of the diagnosis. */
export interface DiagnoseCheck {
  check: string;
  status: CheckStatus;
  detail: string;
  /** What to do, for a failed check. */
  fix?: string;
  /** The gateway's (or management point's) reason code, when one answered. */
  reason?: string;
  cause?: string;
}

export interface ClientDiagnosis {
  dir: string;
  clientId: string;
  checks: DiagnoseCheck[];
  /**
   * Which check refused the device, and what to fix: the CMG's own answer when one refused, else
   * what the device's own certificate check found.
   */
  refusedBy: (RefusalExplained & { byGateway: boolean; url?: string }) | null;
  lastRefusal: RecordedRefusal | null;
  ok: boolean;
}

const DAY = 86_400_000;

/**
 * @example
 * const d = await diagnoseClient(dir);
 * if (!d.ok) console.log(`${d.refusedBy?.check}: ${d.refusedBy?.fix}`);
 */
export async function diagnoseClient(dir: string, o: { timeoutMs?: number; now?: () => Date } = {}): Promise<ClientDiagnosis> {
  const store = new ClientStore(dir);
  const config = store.config();
  const state = store.state();
  const now = o.now ?? (() => new Date());
  // A device installed with a token has no certificate to judge: its token is what the CMG checks.
  const tokenAuth = config.tokenAuth === true && existsSync(store.paths.tokenKey);
  const clientToken = tokenAuth ? store.clientToken() : undefined;
  const checks: DiagnoseCheck[] = [
    tokenAuth
      ? { check: "client certificate", status: "skip", detail: "installed with a token: the client token and the device's key authenticate it (the CMG checks them below)" }
      : certificateCheck(store, config.hasCertificate, now()),
  ];

  const cmgs = [...new Set([...state.candidates.filter((m) => m.type === "Internet").map((m) => m.url), ...(mpTypeOf(config.bootstrapMp) === "Internet" ? [config.bootstrapMp] : [])])];
  const refusals: RecordedRefusal[] = [];
  if (cmgs.length === 0) {
    checks.push({ check: "CMG", status: "skip", detail: "this client knows no CMG (no internet management point in its last location answer, none given at install)" });
  } else {
    const transport = new MpTransport(store.tls(), {
      token: config.hasCertificate ? undefined : store.token(),
      timeoutMs: o.timeoutMs ?? 15_000,
      onRefusal: (e) => refusals.push(recordRefusal(e, now())),
    });
    // As the agent sends it: the client token with a proof of the device's key.
    if (clientToken) transport.useProvenToken(clientToken, await loadOrCreateTokenKey(store.paths.tokenKey));
    try {
      for (const url of cmgs) checks.push(await cmgCheck(transport, url));
    } finally {
      await transport.close();
    }
  }
  if (refusals.length > 0) {
    const s = store.state();
    s.lastRefusal = refusals.find((r) => r.byGateway) ?? refusals[refusals.length - 1]!;
    store.writeState(s);
  }
  const gateway = refusals.find((r) => r.byGateway);
  const local = checks[0]!.status === "fail" ? checks[0]! : undefined;
  const refusedBy = gateway
    ? { ...explainRefusal(gateway.reason, gateway.cause), byGateway: true, url: gateway.url }
    : local?.reason
      ? { ...explainRefusal(local.reason, local.cause), byGateway: false }
      : null;
  return { dir: store.dir, clientId: config.clientId, checks, refusedBy, lastRefusal: store.state().lastRefusal, ok: checks.every((c) => c.status !== "fail") };
}

/** The client certificate as far as the device can judge it alone. */
function certificateCheck(store: ClientStore, hasCertificate: boolean, now: Date): DiagnoseCheck {
  const check = "client certificate";
  const explained = (reason: string, detail: string, cause?: string): DiagnoseCheck => ({ check, status: "fail", detail, reason, ...(cause ? { cause } : {}), fix: explainRefusal(reason, cause).fix });
  if (!existsSync(store.paths.cert) || !existsSync(store.paths.key)) {
    const detail = hasCertificate ? `the client folder has no certificate or key (${store.paths.cert}, ${store.paths.key})` : "installed without a certificate (registration token only); a CMG asks every device for a client certificate";
    return explained("no_certificate", detail);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(store.paths.cert));
  } catch (e) {
    return explained("no_certificate", `${store.paths.cert} is not a readable certificate (${errorText(e)})`);
  }
  const subject = cert.subject.replaceAll("\n", ", ");
  const { notBefore, notAfter } = validityOf(cert);
  if (now.getTime() > notAfter.getTime()) return explained("expired", `"${subject}" expired on ${notAfter.toISOString()}`);
  if (now.getTime() < notBefore.getTime()) return explained("not_yet_valid", `"${subject}" is valid from ${notBefore.toISOString()}`);
  const weak = certificateWeakness(cert);
  if (weak) return explained(weak.reason, weak.detail, weak.cause);
  if (!hasClientAuthEku(cert)) return explained("wrong_usage", `"${subject}" does not allow client authentication (no clientAuth EKU)`);
  const notes = [`"${subject}", valid until ${notAfter.toISOString()}`];
  if (notAfter.getTime() - now.getTime() < 30 * DAY) notes.push("expires within 30 days: renew it");
  if (crlUrls(cert).length === 0) notes.push("names no CRL distribution point: a CMG that checks revocation refuses it");
  return { check, status: "pass", detail: notes.join("; ") };
}

/** One request through a CMG (the management point's ping): who answered, and if refused, why. */
async function cmgCheck(transport: MpTransport, url: string): Promise<DiagnoseCheck> {
  const check = `CMG ${url}`;
  try {
    await transport.call(url, MP_PATHS.ping);
    return { check, status: "pass", detail: "the CMG relayed the request and the management point answered" };
  } catch (e) {
    if (e instanceof GatewayRefusedError) {
      const x = explainRefusal(String(e.reason), e.refusalCause);
      return { check, status: "fail", reason: x.reason, ...(x.cause ? { cause: x.cause } : {}), detail: `refused by the CMG's ${x.check} check (${e.status} ${x.reason}${x.cause ? `, ${x.cause}` : ""})`, fix: x.fix };
    }
    if (e instanceof MpRefusedError) {
      return { check, status: "fail", reason: String(e.reason), detail: `the management point behind the CMG refused the request: ${e.message}`, fix: "see the management point's answer above and MP_*.log at the site" };
    }
    return { check, status: "fail", detail: `cannot reach the CMG: ${errorText(e)}`, fix: "check that the CMG's name resolves, that its instances run and that nothing blocks HTTPS to it (opencmg cmg analyze NAME at the site)" };
  }
}

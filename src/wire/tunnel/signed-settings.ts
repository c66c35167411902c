/**
 * The settings an instance enforces, as the SITE issued and signed them: a JWS in the JSON general
 * serialization (RFC 7515 section 7.2.1), payload the settings (`CmgSettings`), one EdDSA
 * (Ed25519) signature per settings-signing key the site holds in force (the current one and, after
 * a rotation, the previous one). Connection points carry the document; they cannot author one: the
 * signing keys never leave the site, and an instance learns their public halves from its start-up
 * bundle and from earlier documents it accepted (a new key is announced in a document the old key
 * signed too). docs/protocol.md section 2 says the same in prose.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject, X509Certificate } from "node:crypto";
import { z } from "zod";
import { OpenCmgError, ValidationError } from "../../errors.ts";
import { CONNECTION_POINT_CN_PREFIX, parseSettings, type CmgSettings, type PublicJwk } from "./protocol.ts";

/** `typ` of the protected header: a settings document and nothing else (a token is no settings). */
export const SETTINGS_TYP = "opencmg-settings+jws";
export const SETTINGS_ALG = "EdDSA";
/** Signatures a document carries at most (current and previous key; room for one more). */
export const MAX_SETTINGS_SIGNATURES = 4;

/** A signed settings document as it crosses the tunnel. */
export interface SignedSettings {
  payload: string;
  signatures: { protected: string; signature: string }[];
}

const b64u = z.string().regex(/^[A-Za-z0-9_-]*$/, "must be base64url");
export const signedSettingsSchema = z
  .object({
    payload: b64u.max(6 * 1024 * 1024),
    signatures: z.array(z.object({ protected: b64u.max(1024), signature: b64u.max(512) }).strict()).min(1).max(MAX_SETTINGS_SIGNATURES),
  })
  .strict();

const headerSchema = z.object({ alg: z.literal(SETTINGS_ALG), kid: z.string().min(1).max(128), typ: z.literal(SETTINGS_TYP) }).strict();

/** A settings-signing key of the site, private half opened (site side only). */
export interface SettingsSigningKey {
  kid: string;
  privateKeyPem: string;
}

const enc = (s: string | Buffer): string => Buffer.from(s).toString("base64url");

/**
 * Signs `settings` with every key given (the instances accept any one they trust).
 *
 * @example
 * const doc = signSettings(settings, [{ kid, privateKeyPem }]);
 */
export function signSettings(settings: CmgSettings, keys: readonly SettingsSigningKey[]): SignedSettings {
  if (keys.length === 0 || keys.length > MAX_SETTINGS_SIGNATURES) throw new ValidationError("keys", `from 1 to ${MAX_SETTINGS_SIGNATURES} settings-signing keys`);
  const payload = enc(JSON.stringify(settings));
  return {
    payload,
    signatures: keys.map((k) => {
      const protectedHeader = enc(JSON.stringify({ alg: SETTINGS_ALG, kid: k.kid, typ: SETTINGS_TYP }));
      const signature = sign(null, Buffer.from(`${protectedHeader}.${payload}`), createPrivateKey(k.privateKeyPem)).toString("base64url");
      return { protected: protectedHeader, signature };
    }),
  };
}

/** The settings in a document, NOT verified: for the connection point (which got it from the site) and for log lines. */
export function unverifiedSettings(doc: SignedSettings): CmgSettings {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(doc.payload, "base64url").toString("utf8"));
  } catch {
    throw new ValidationError("settings.payload", "must be base64url of a JSON object");
  }
  return parseSettings(json);
}

/** Why an instance refuses a settings document (CMGService.log names it with the details). */
export type SettingsRefusal = "malformed" | "unknown_key" | "bad_signature" | "invalid" | "wrong_cmg" | "stale_revision" | "revision_reused";

export class SettingsRefused extends OpenCmgError {
  constructor(
    readonly reason: SettingsRefusal,
    message: string,
    /** The revision the document claims, when it could be read. */
    readonly revision: number | null = null,
  ) {
    super("forbidden", reason, message);
  }
}

/** A public settings-signing key as instances hold it. */
export interface TrustedSettingsKey {
  kid: string;
  key: KeyObject;
}

/** Public JWKs -> keys; only Ed25519 public keys are taken (a private member is refused by the schema). */
export function trustedKeys(jwks: readonly PublicJwk[]): TrustedSettingsKey[] {
  return jwks.map((j, i) => {
    if (j.kty !== "OKP" || j.crv !== "Ed25519" || !j.x) throw new ValidationError(`settingsKeys.${i}`, "must be an Ed25519 public key (kty OKP, crv Ed25519, x)");
    return { kid: j.kid, key: createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: j.x }, format: "jwk" }) };
  });
}

/**
 * Checks the signatures of `input` against `trusted` and returns the settings. Every signature by
 * a trusted key must verify, and at least one must be by a trusted key. Throws SettingsRefused.
 * The caller checks the CMG name and the revision (it knows what is in force).
 */
export function verifySettings(input: unknown, trusted: readonly TrustedSettingsKey[]): CmgSettings {
  const r = signedSettingsSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new SettingsRefused("malformed", `not a signed settings document (${["document", ...issue.path].join(".")}: ${issue.message})`);
  }
  const doc = r.data;
  let claimed: number | null = null;
  try {
    const j = JSON.parse(Buffer.from(doc.payload, "base64url").toString("utf8")) as { revision?: unknown };
    if (typeof j.revision === "number") claimed = j.revision;
  } catch {
    // reported below as malformed or unsigned
  }
  let verified = false;
  const kids: string[] = [];
  for (const s of doc.signatures) {
    let header: z.infer<typeof headerSchema>;
    try {
      header = headerSchema.parse(JSON.parse(Buffer.from(s.protected, "base64url").toString("utf8")));
    } catch {
      throw new SettingsRefused("malformed", `a signature's protected header is not {alg: ${SETTINGS_ALG}, kid, typ: ${SETTINGS_TYP}}`, claimed);
    }
    kids.push(header.kid);
    const key = trusted.find((k) => k.kid === header.kid);
    if (!key) continue;
    let ok = false;
    try {
      ok = verify(null, Buffer.from(`${s.protected}.${doc.payload}`), key.key, Buffer.from(s.signature, "base64url"));
    } catch {
      ok = false;
    }
    if (!ok) throw new SettingsRefused("bad_signature", `the signature of settings-signing key ${header.kid} does not verify`, claimed);
    verified = true;
  }
  if (!verified) throw new SettingsRefused("unknown_key", `signed by ${kids.join(", ")}, none of them a settings-signing key this instance trusts (${trusted.map((k) => k.kid).join(", ") || "none"})`, claimed);
  try {
    return unverifiedSettings(doc);
  } catch (e) {
    throw new SettingsRefused("invalid", (e as Error).message, claimed);
  }
}

/** Who a connection point is, as its tunnel certificate says. */
export interface ConnectionPointIdentity {
  /** Server FQDN (the certificate's CN after `opencmg-cp:`). */
  name: string;
  /** Serial number, uppercase hex. */
  serial: string;
  /** SHA-256 of the certificate's SubjectPublicKeyInfo (DER), base64url. */
  spki: string;
}

/**
 * The admission identity of a connection point certificate.
 *
 * @example
 * connectionPointIdentity(new X509Certificate(pem)); // { name: "cp01.contoso.com", serial: "1A2B...", spki: "..." }
 */
export function connectionPointIdentity(cert: X509Certificate): ConnectionPointIdentity {
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? "";
  const name = cn.startsWith(CONNECTION_POINT_CN_PREFIX) ? cn.slice(CONNECTION_POINT_CN_PREFIX.length) : cn;
  const spki = createHash("sha256").update(cert.publicKey.export({ type: "spki", format: "der" })).digest("base64url");
  return { name: name.toLowerCase(), serial: cert.serialNumber.toUpperCase(), spki };
}

/** True when `list` admits `who` (same name, serial and key). */
export function admits(list: readonly ConnectionPointIdentity[], who: ConnectionPointIdentity): boolean {
  return list.some((a) => a.name.toLowerCase() === who.name && a.serial.toUpperCase() === who.serial && a.spki === who.spki);
}

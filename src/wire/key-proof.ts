/**
 * Proofs about a client's token key, carried in the body of a registration request
 * (wire/mp.ts `registerRequest`). Both are compact JWS signed by the key they speak for, with its
 * public half in the header (as a DPoP proof, RFC 9449), and typ `opencmg-key-proof+jwt`:
 *
 *   tokenKeyProof   purpose "bind", made with the key to bind: a client that registers with a
 *                   certificate or a request token proves the key its client token is to be bound to.
 *   keyChangeProof  purpose "replace", made with the key bound now (the OLD key), naming the client
 *                   (`sub`) and the new key's thumbprint (`new_jkt`): the only way a device replaces
 *                   its bound key without an administrator's approval.
 *
 * JOSE is loaded when a proof is made or checked (few processes do either).
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";

export const KEY_PROOF_TYPE = "opencmg-key-proof+jwt";
export const KEY_PROOF_ALGS = ["ES256", "EdDSA"] as const;
/** How old a proof may be, and how far ahead of the MP's clock its `iat` may be, seconds. */
export const KEY_PROOF_MAX_AGE_SEC = 300;
export const KEY_PROOF_SKEW_SEC = 60;
/** Longest proof accepted. */
export const MAX_KEY_PROOF_BYTES = 2048;

export type KeyProofPurpose = "bind" | "replace";

/** A compact JWS as it appears in a request body (checked further when verified). */
export const keyProofText = z
  .string()
  .max(MAX_KEY_PROOF_BYTES, `must be at most ${MAX_KEY_PROOF_BYTES} characters`)
  .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, "must be a compact JWS (three base64url parts)");

/** What a verified proof says. */
export interface VerifiedKeyProof {
  /** RFC 7638 thumbprint of the key that signed it. */
  jkt: string;
  purpose: KeyProofPurpose;
  /** "replace" only: the client and the new key. */
  sub?: string;
  newJkt?: string;
}

/** The key a client signs with (src/client/token-key.ts TokenKey has these). */
export interface SigningKey {
  privateKey: CryptoKey;
  publicJwk: Record<string, unknown>;
}

/** A proof that the caller holds `key` (purpose "bind"). */
export async function makeBindProof(key: SigningKey): Promise<string> {
  return sign(key, { purpose: "bind" });
}

/** A proof by the old key that client `clientId` moves to the key with thumbprint `newJkt`. */
export async function makeKeyChangeProof(oldKey: SigningKey, clientId: string, newJkt: string): Promise<string> {
  return sign(oldKey, { purpose: "replace", sub: clientId, new_jkt: newJkt });
}

async function sign(key: SigningKey, claims: Record<string, unknown>): Promise<string> {
  const { SignJWT } = await import("jose");
  const alg = key.publicJwk.kty === "OKP" ? "EdDSA" : "ES256";
  return new SignJWT(claims).setProtectedHeader({ alg, typ: KEY_PROOF_TYPE, jwk: key.publicJwk }).setIssuedAt().setJti(randomUUID()).sign(key.privateKey);
}

/** Why a proof is not taken: a sentence for the refusal (never the proof itself). */
export class KeyProofError extends Error {}

/**
 * Checks a proof's signature (by the key in its header), type, age and purpose.
 *
 * @example
 * const p = await verifyKeyProof(body.keyChangeProof, "replace", new Date());
 * if (p.jkt !== client.tokenKey || p.newJkt !== proven || p.sub !== client.id) refuse();
 */
export async function verifyKeyProof(proof: string, purpose: KeyProofPurpose, now: Date): Promise<VerifiedKeyProof> {
  const { jwtVerify, EmbeddedJWK, calculateJwkThumbprint, errors } = await import("jose");
  let r: Awaited<ReturnType<typeof jwtVerify>>;
  try {
    r = await jwtVerify(proof, EmbeddedJWK, { typ: KEY_PROOF_TYPE, algorithms: [...KEY_PROOF_ALGS], maxTokenAge: KEY_PROOF_MAX_AGE_SEC, clockTolerance: KEY_PROOF_SKEW_SEC, currentDate: now, requiredClaims: ["iat", "jti"] });
  } catch (e) {
    throw new KeyProofError(`the ${purpose === "bind" ? "token key" : "key change"} proof does not verify (${e instanceof errors.JOSEError ? e.code : "malformed"})`);
  }
  const jwk = r.protectedHeader.jwk;
  if (!jwk) throw new KeyProofError("the proof carries no public key");
  if (r.payload.purpose !== purpose) throw new KeyProofError(`the proof is for ${JSON.stringify(String(r.payload.purpose ?? "")).slice(0, 20)}, not ${purpose}`);
  const jkt = await calculateJwkThumbprint(jwk, "sha256");
  if (purpose === "bind") return { jkt, purpose };
  const sub = r.payload.sub;
  const newJkt = r.payload.new_jkt;
  if (typeof sub !== "string" || typeof newJkt !== "string") throw new KeyProofError("a key change proof names the client (sub) and the new key (new_jkt)");
  return { jkt, purpose, sub, newJkt };
}

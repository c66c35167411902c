/**
 * The client's own key for token authentication: generated on the device at install (ES256), kept
 * in the client folder (0600), never sent anywhere. Its public half goes in each proof of
 * possession (RFC 9449 DPoP); the site binds the client token to its thumbprint.
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { calculateJwkThumbprint, decodeJwt, exportJWK, exportPKCS8, generateKeyPair, importPKCS8, SignJWT, type JWK } from "jose";
import { PROOF_TYPE } from "../wire/tokens.ts";
import { writeFileAtomic } from "./store.ts";

const ALG = "ES256";

export interface TokenKey {
  privateKey: CryptoKey;
  publicJwk: JWK;
  /** RFC 7638 thumbprint: what the client token's `cnf.jkt` names. */
  jkt: string;
}

/** The key in `file`, or a new one written there with mode 0600. */
export async function loadOrCreateTokenKey(file: string): Promise<TokenKey> {
  let privateKey: CryptoKey;
  if (existsSync(file)) {
    privateKey = await importPKCS8(readFileSync(file, "utf8"), ALG, { extractable: true });
  } else {
    const pair = await generateKeyPair(ALG, { extractable: true });
    privateKey = pair.privateKey;
    writeFileAtomic(file, await exportPKCS8(privateKey), 0o600);
  }
  const full = await exportJWK(privateKey);
  const publicJwk: JWK = { kty: full.kty!, crv: full.crv!, x: full.x!, y: full.y! };
  return { privateKey, publicJwk, jkt: await calculateJwkThumbprint(publicJwk, "sha256") };
}

/**
 * A proof of possession for one request (RFC 9449 section 4.2), with the nonce the instance at
 * `url` handed out last (section 8), if any.
 */
export async function makeProof(key: TokenKey, method: string, url: string, token: string, nonce?: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const u = new URL(url);
  return new SignJWT({ htm: method, htu: `${u.origin}${u.pathname}`, ath: createHash("sha256").update(token).digest("base64url"), ...(nonce !== undefined ? { nonce } : {}) })
    .setProtectedHeader({ alg: ALG, typ: PROOF_TYPE, jwk: key.publicJwk })
    .setIssuedAt()
    .setJti(randomUUID())
    .sign(key.privateKey);
}

/** When a token was issued and when it expires (read, not verified: the client trusts its own site's answer). */
export function tokenTimes(token: string): { issuedAt: Date; expiresAt: Date } {
  const p = decodeJwt(token);
  return { issuedAt: new Date((p.iat ?? 0) * 1000), expiresAt: new Date((p.exp ?? 0) * 1000) };
}

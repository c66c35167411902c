/**
 * A stand-in for the site's settings-signing key in tests that run instances and connection points
 * without a site: signs settings documents as the site does, and gives the start-up trust an
 * instance gets from its bundle.
 */
import { generateKeyPairSync, randomUUID, X509Certificate } from "node:crypto";
import type { StartupTrust } from "../../src/gateway/settings-store.ts";
import type { CertKeyPem } from "../../src/pki/issue.ts";
import type { AdmittedConnectionPoint, CmgSettings, CmgSettingsBase, PublicJwk } from "../../src/wire/tunnel/protocol.ts";
import { connectionPointIdentity, signSettings, type SettingsSigningKey, type SignedSettings } from "../../src/wire/tunnel/signed-settings.ts";

export interface SettingsSigner {
  /** The public keys the instances trust (current first). */
  readonly keys: PublicJwk[];
  /** Signs with every key in force. */
  sign(s: CmgSettings): SignedSettings;
  /** A new current key; the previous one keeps signing beside it, the one before is dropped. */
  rotate(): void;
}

/** A new Ed25519 settings-signing key pair. */
export function newSettingsKey(): { signing: SettingsSigningKey; jwk: PublicJwk } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const kid = randomUUID();
  const jwk = { ...(publicKey.export({ format: "jwk" }) as Record<string, string>), kid, alg: "EdDSA", use: "sig" } as PublicJwk;
  return { signing: { kid, privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }) as string }, jwk };
}

export function makeSettingsSigner(): SettingsSigner {
  let inForce = [newSettingsKey()];
  return {
    get keys() {
      return inForce.map((k) => k.jwk);
    },
    sign: (s) => signSettings(s, inForce.map((k) => k.signing)),
    rotate() {
      inForce = [newSettingsKey(), inForce[0]!];
    },
  };
}

/** The admission entry of a connection point certificate. */
export function admitted(cert: CertKeyPem | string): AdmittedConnectionPoint {
  return connectionPointIdentity(new X509Certificate(typeof cert === "string" ? cert : cert.certPem));
}

/** Start-up trust for an instance: these keys, these connection point certificates. */
export function startupTrust(keys: PublicJwk[], certs: (CertKeyPem | string)[], minRevision = 0): StartupTrust {
  return { settingsKeys: keys, connectionPoints: certs.map(admitted), minRevision };
}

/** Settings of CMG cmg1 signed by a new stand-in site key, admitting `tunnelClient`, and the matching start-up trust (benchmarks). */
export function siteSigned(base: CmgSettingsBase, tunnelClient: CertKeyPem): { settings: SignedSettings; trust: StartupTrust } {
  const signer = makeSettingsSigner();
  const trust = startupTrust(signer.keys, [tunnelClient]);
  return { settings: signer.sign({ ...base, cmg: "cmg1", settingsKeys: signer.keys, connectionPoints: trust.connectionPoints }), trust };
}

/**
 * Secrets at rest: AES-256-GCM with the site key (32 random bytes in `<data>/site.key`, mode 0600,
 * created at `site init`). The account name is bound as associated data, so a sealed secret copied
 * onto another account does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { OpenCmgError } from "../errors.ts";

export class SiteKey {
  private constructor(private readonly key: Buffer) {}

  /** Creates the key file if missing (never overwrites one: sealed secrets depend on it). */
  static ensure(path: string): SiteKey {
    if (!existsSync(path)) writeFileSync(path, randomBytes(32).toString("base64") + "\n", { mode: 0o600, flag: "wx" });
    return SiteKey.load(path);
  }

  static load(path: string): SiteKey {
    if (!existsSync(path)) throw new OpenCmgError("internal", "SITE_KEY_MISSING", `the site key ${path} is missing: run \`opencmg site init\` first, or restore the key from backup`);
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077) chmodSync(path, 0o600); // tighten a key someone copied with loose permissions
    const key = Buffer.from(readFileSync(path, "utf8").trim(), "base64");
    if (key.length !== 32) throw new OpenCmgError("internal", "SITE_KEY_INVALID", `the site key ${path} is not 32 bytes of base64`);
    return new SiteKey(key);
  }

  seal(plain: string, context: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", this.key, iv);
    c.setAAD(Buffer.from(context, "utf8"));
    const ct = Buffer.concat([c.update(plain, "utf8"), c.final()]);
    return ["v1", iv.toString("base64"), c.getAuthTag().toString("base64"), ct.toString("base64")].join(":");
  }

  open(sealed: string, context: string): string {
    const [v, iv, tag, ct] = sealed.split(":");
    if (v !== "v1" || !iv || !tag || ct === undefined) throw new OpenCmgError("internal", "SECRET_FORMAT", `a stored secret for ${context} has an unknown format`);
    try {
      const d = createDecipheriv("aes-256-gcm", this.key, Buffer.from(iv, "base64"));
      d.setAAD(Buffer.from(context, "utf8"));
      d.setAuthTag(Buffer.from(tag, "base64"));
      return Buffer.concat([d.update(Buffer.from(ct, "base64")), d.final()]).toString("utf8");
    } catch {
      throw new OpenCmgError("internal", "SECRET_UNREADABLE", `the stored secret for ${context} cannot be opened with this site key (was the key replaced?)`);
    }
  }
}

/**
 * The site key file of a data folder, read when first needed: `site init` creates it after the
 * site is opened, and commands that never touch a secret never read it.
 */
export class SiteKeyFile {
  #key: SiteKey | undefined;
  constructor(readonly path: string) {}

  /** The key, or undefined while the file does not exist. */
  current(): SiteKey | undefined {
    if (!this.#key && existsSync(this.path)) this.#key = SiteKey.load(this.path);
    return this.#key;
  }

  /** Creates the key file if missing, then loads it. */
  ensure(): SiteKey {
    this.#key = SiteKey.ensure(this.path);
    return this.#key;
  }
}

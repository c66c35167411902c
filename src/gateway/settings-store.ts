/**
 * The settings an instance enforces: only documents the site issued and signed (signed-settings.ts),
 * for this CMG, with a revision higher than the one in force. Connection points carry them; a
 * connection point cannot write one. In memory only: an instance that restarts has none until a
 * connection point brings the current document (and answers 503 meanwhile).
 *
 * Which settings-signing keys it trusts and which connection points it admits come first from the
 * start-up bundle (site-issued too), then from each document it applies.
 */
import { isDeepStrictEqual } from "node:util";
import type { AdmittedConnectionPoint, CmgSettings, PublicJwk } from "../wire/tunnel/protocol.ts";
import { admits, SettingsRefused, trustedKeys, verifySettings, type ConnectionPointIdentity, type TrustedSettingsKey } from "../wire/tunnel/signed-settings.ts";

/** What the start-up bundle says about trust, before any document arrives. */
export interface StartupTrust {
  /** Public settings-signing keys of the site in force when the bundle was written. */
  settingsKeys: PublicJwk[];
  /** Connection points admitted when the bundle was written. */
  connectionPoints: AdmittedConnectionPoint[];
  /** The site's settings revision then: an older document is never applied (it may admit a connection point removed since). */
  minRevision: number;
}

export type OfferResult =
  | { result: "applied"; settings: CmgSettings }
  /** The document in force, once more. */
  | { result: "same"; settings: CmgSettings }
  | { result: "refused"; error: SettingsRefused };

export class SettingsStore {
  private settings: CmgSettings | null = null;
  /** The signed document of the settings in force, as the site issued it (workers pass it on). */
  private doc: unknown = null;
  private gen = 0;
  private keys: TrustedSettingsKey[];
  private admitted: readonly AdmittedConnectionPoint[];
  private readonly listeners = new Set<(s: CmgSettings) => void>();

  constructor(
    private readonly cmgName: string,
    private readonly startup: StartupTrust,
  ) {
    this.keys = trustedKeys(startup.settingsKeys);
    this.admitted = startup.connectionPoints;
  }

  /** The settings in force, or null before any connection point has brought some. */
  current(): CmgSettings | null {
    return this.settings;
  }

  /** The site-signed document of the settings in force, or null. */
  document(): unknown {
    return this.doc;
  }

  /** Increases on every applied change; caches keyed on it go stale with the settings. */
  get generation(): number {
    return this.gen;
  }

  /** The settings-signing keys trusted now (kid), for log lines. */
  trustedKids(): string[] {
    return this.keys.map((k) => k.kid);
  }

  /** True when the site admits this connection point now (the settings in force, else the start-up bundle). */
  admits(who: ConnectionPointIdentity): boolean {
    return admits(this.admitted, who);
  }

  /**
   * Applies `doc` if the site signed it with a trusted key, for this CMG, with a revision higher
   * than the one in force (and not below the bundle's). The same revision with the same content is
   * the document in force ("same"); with other content it is refused: the site never reuses one.
   */
  offer(doc: unknown): OfferResult {
    let s: CmgSettings;
    try {
      s = verifySettings(doc, this.keys);
      if (s.cmg.toLowerCase() !== this.cmgName.toLowerCase()) throw new SettingsRefused("wrong_cmg", `the document is for CMG ${s.cmg}, this instance serves ${this.cmgName}`, s.revision);
      const floor = this.settings?.revision ?? this.startup.minRevision;
      if (this.settings && s.revision === this.settings.revision) {
        if (isDeepStrictEqual(s, this.settings)) return { result: "same", settings: s };
        throw new SettingsRefused("revision_reused", `revision ${s.revision} is the one in force, with other content`, s.revision);
      }
      if (s.revision < floor || (this.settings && s.revision <= this.settings.revision)) {
        throw new SettingsRefused("stale_revision", `revision ${s.revision} is older than ${this.settings ? `the one in force (${floor})` : `the start-up bundle's (${floor})`}`, s.revision);
      }
    } catch (e) {
      if (e instanceof SettingsRefused) return { result: "refused", error: e };
      throw e;
    }
    this.settings = s;
    this.doc = doc;
    this.keys = trustedKeys(s.settingsKeys);
    this.admitted = s.connectionPoints;
    this.gen++;
    for (const l of this.listeners) l(s);
    return { result: "applied", settings: s };
  }

  /** Calls `listener` after each applied change. Returns an unsubscribe function. */
  onChange(listener: (s: CmgSettings) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/**
 * The settings an instance enforces, as the connection points pushed them. In memory only: an
 * instance that restarts has none until a connection point reconnects (and answers 503 meanwhile).
 */
import type { CmgSettings } from "../wire/tunnel/protocol.ts";

export type OfferResult = { result: "applied" } | { result: "ignored"; current: number };

export class SettingsStore {
  private settings: CmgSettings | null = null;
  private gen = 0;
  private readonly listeners = new Set<(s: CmgSettings) => void>();

  /** The settings in force, or null before any connection point has sent some. */
  current(): CmgSettings | null {
    return this.settings;
  }

  /** Increases on every applied change; caches keyed on it go stale with the settings. */
  get generation(): number {
    return this.gen;
  }

  /**
   * Applies `s` if it is newer than the settings in force. Equal revisions are ignored even when
   * the content differs (two connection points with different views of the same revision would
   * otherwise flip the instance back and forth); the site raises the revision on every change.
   */
  offer(s: CmgSettings): OfferResult {
    if (this.settings && s.revision <= this.settings.revision) return { result: "ignored", current: this.settings.revision };
    this.settings = s;
    this.gen++;
    for (const l of this.listeners) l(s);
    return { result: "applied" };
  }

  /** Calls `listener` after each applied change. Returns an unsubscribe function. */
  onChange(listener: (s: CmgSettings) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

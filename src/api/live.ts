/**
 * What the console's live views follow: a change notice ("status" or "cmg") whenever the site
 * records a status message or a component changes state (`topics.siteStatus`), or a connection
 * point reports health (`topics.connectionPointHealth`). Roles that run in other processes write
 * to the same database without reaching these channels, so a cheap fingerprint of the status
 * tables and the CMGs' states is also compared every `pollMs`.
 *
 * Notices carry no data: the console reads the views again through the API, with the same checks
 * as any other read.
 */
import { Subscriptions, topics } from "../observe/channels.ts";
import type { OpenedSite } from "../site/site.ts";

export type LiveTopic = "status" | "cmg";

export interface LiveFeedOptions {
  /** How often the database fingerprint is compared (default 5 s; 0: channels only). */
  pollMs?: number;
  /** Notices of one topic within this window are sent once (default 200 ms). */
  coalesceMs?: number;
}

export class LiveFeed {
  readonly #listeners = new Set<(t: LiveTopic) => void>();
  readonly #subs = new Subscriptions();
  readonly #pending = new Map<LiveTopic, NodeJS.Timeout>();
  readonly #site: OpenedSite;
  readonly #coalesceMs: number;
  #poll: NodeJS.Timeout | undefined;
  #polling = false;
  #fingerprint: Record<LiveTopic, string> = { status: "", cmg: "" };

  constructor(site: OpenedSite, o: LiveFeedOptions = {}) {
    this.#site = site;
    this.#coalesceMs = o.coalesceMs ?? 200;
    this.#subs.add(
      topics.siteStatus.subscribe(() => this.notify("status")),
      topics.connectionPointHealth.subscribe(() => {
        this.notify("cmg");
        this.notify("status");
      }),
    );
    const pollMs = o.pollMs ?? 5000;
    if (pollMs > 0) {
      this.#poll = setInterval(() => void this.#compare(), pollMs);
      this.#poll.unref();
    }
  }

  /** Calls `fn` on every notice until the returned function is called. */
  listen(fn: (t: LiveTopic) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  get listeners(): number {
    return this.#listeners.size;
  }

  notify(t: LiveTopic): void {
    if (this.#pending.has(t)) return;
    const timer = setTimeout(() => {
      this.#pending.delete(t);
      for (const fn of this.#listeners) fn(t);
    }, this.#coalesceMs);
    timer.unref();
    this.#pending.set(t, timer);
  }

  close(): void {
    this.#subs.close();
    clearInterval(this.#poll);
    for (const t of this.#pending.values()) clearTimeout(t);
    this.#pending.clear();
    this.#listeners.clear();
  }

  async #compare(): Promise<void> {
    if (this.#polling || this.#listeners.size === 0) return;
    this.#polling = true;
    try {
      const db = this.#site.database.db;
      const m = await db.selectFrom("status_messages").select((eb) => eb.fn.max("id").as("id")).executeTakeFirst();
      const c = await db.selectFrom("component_status").select(["server", "component", "status", "updated_at"]).execute();
      const status = JSON.stringify([m?.id ?? 0, c]);
      const cmg = JSON.stringify((await this.#site.services.cmgs.list()).map((x) => [x.name, x.status, x.instanceCount, x.revision]));
      for (const [t, v] of [["status", status], ["cmg", cmg]] as const) {
        if (this.#fingerprint[t] && this.#fingerprint[t] !== v) this.notify(t);
        this.#fingerprint[t] = v;
      }
    } catch {
      // A busy database is read again on the next round.
    } finally {
      this.#polling = false;
    }
  }
}

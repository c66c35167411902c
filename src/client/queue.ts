/**
 * Status messages waiting for upload, one file per message in `<client dir>/queue/`. A message is
 * written atomically (temporary file, fsync, rename) before `add` returns, and its file is removed
 * only when a management point acknowledged it, so nothing is lost when an upload fails, the
 * agent stops or the machine restarts. File names sort by the time they were queued; each message
 * carries a unique ID, so an upload retried after a lost answer is stored only once by the site.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { checkObject } from "../errors.ts";
import { statusItem, type StatusItem } from "../wire/mp.ts";
import { fsyncDir, writeFileAtomic } from "./store.ts";

export interface NewStatus {
  messageId: number;
  text: string;
  severity?: StatusItem["severity"] | undefined;
  component?: string | undefined;
  properties?: Record<string, unknown> | undefined;
}

export interface QueuedMessage {
  file: string;
  item: StatusItem;
}

const FILE = /^(\d{14})-(\d{8})-([A-Za-z0-9._:-]+)\.json$/;

export class StatusQueue {
  private seq = 0;
  /** Messages that can never be accepted (a management point said they are invalid). */
  readonly rejectedDir: string;

  constructor(
    readonly dir: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.rejectedDir = join(dir, "rejected");
  }

  /**
   * Queues messages; each is on disk when this returns. Throws ValidationError for a message the
   * management point would refuse, before writing any.
   *
   * @example
   * queue.add([{ messageId: 10002, text: "Client agent started" }]);
   */
  add(messages: NewStatus[]): StatusItem[] {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const at = this.now();
    const items = messages.map((m) =>
      checkObject(statusItem, {
        type: "status",
        id: randomUUID(),
        messageId: m.messageId,
        severity: m.severity ?? "informational",
        component: m.component ?? "CCMExec",
        text: m.text,
        time: at.toISOString(),
        ...(m.properties ? { properties: m.properties } : {}),
      }),
    );
    const stamp = String(at.getTime()).padStart(14, "0");
    for (const item of items) {
      const name = `${stamp}-${String(this.seq++ % 1e8).padStart(8, "0")}-${item.id}.json`;
      // One folder fsync for the whole batch (below) instead of one per file.
      writeFileAtomic(join(this.dir, name), JSON.stringify(item), 0o600, false);
    }
    fsyncDir(this.dir);
    return items;
  }

  private files(): string[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => FILE.test(f))
      .sort();
  }

  count(): number {
    return this.files().length;
  }

  /** The oldest `limit` messages. A file that cannot be read is set aside in `rejected/`. */
  peek(limit: number): QueuedMessage[] {
    const out: QueuedMessage[] = [];
    for (const file of this.files()) {
      if (out.length >= limit) break;
      try {
        out.push({ file, item: checkObject(statusItem, JSON.parse(readFileSync(join(this.dir, file), "utf8"))) });
      } catch {
        this.reject([file]);
      }
    }
    return out;
  }

  /** Forgets acknowledged messages. A lost unlink only means one more (deduplicated) upload. */
  remove(files: string[]): void {
    for (const f of files) rmSync(join(this.dir, f), { force: true });
  }

  /** Moves messages a management point refused as invalid out of the way, for an administrator to look at. */
  reject(files: string[]): void {
    mkdirSync(this.rejectedDir, { recursive: true, mode: 0o700 });
    for (const f of files) {
      try {
        renameSync(join(this.dir, f), join(this.rejectedDir, f));
      } catch {
        // already gone
      }
    }
  }
}

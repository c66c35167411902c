/**
 * CMTrace-format log files, one per component, under `<data>/logs/`.
 *
 *   <![LOG[text]LOG]!><time="HH:MM:SS.mmm+zzz" date="MM-DD-YYYY" component="Name" context="" type="1" thread="1234" file="">
 *
 * Writes are synchronous on a kept-open descriptor: a line is on disk before the call returns, so
 * a crash never loses the line that explains it. A per-request log (an access log, `perRequest` in
 * files.ts) is the exception for its info and warning lines: they are written in one batch per
 * turn of the event loop, not a system call each; an error line, a close or the process's exit
 * writes them first. Size-based rotation keeps one previous file as `NAME.lo_`, as the platform does.
 */
import { chmodSync, closeSync, fchmodSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Logger as PinoLogger } from "pino";
import type { LogFileSpec } from "./files.ts";

export type Severity = "info" | "warning" | "error";
const TYPE: Record<Severity, number> = { info: 1, warning: 2, error: 3 };

/**
 * The least severe line a log set writes: `info` writes everything (the default), `warning`
 * warnings and errors, `error` errors only. The names are CMTrace's own severities (type 1, 2, 3).
 */
export type LogLevel = Severity;
export const LOG_LEVELS: readonly LogLevel[] = ["info", "warning", "error"];

export function isLogLevel(v: string): v is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(v);
}

/** pino's name for the same level (for the structured copy on stdout). */
export const PINO_LEVEL: Record<LogLevel, "info" | "warn" | "error"> = { info: "info", warning: "warn", error: "error" };

export interface ComponentLog {
  readonly file: string;
  readonly component: string;
  info(text: string, fields?: Record<string, unknown>): void;
  warn(text: string, fields?: Record<string, unknown>): void;
  error(text: string, fields?: Record<string, unknown>): void;
}

const pad = (n: number, w = 2): string => String(n).padStart(w, "0");

/** The marker that ends a message; escaped inside text so a viewer never cuts a line short. */
export function escapeText(text: string): string {
  // A search first: replaceAll builds a new string every time, and almost no line holds the marker.
  return text.includes("]LOG]!>") ? text.replaceAll("]LOG]!>", "]LOG]!&gt;") : text;
}

/**
 * The local time fields of the last second formatted: `HH:MM:SS`, the zone and the date are the
 * same for every line of one second (a busy gateway writes a line per request).
 */
let stampCache: { second: number; hms: string; zone: string; date: string } | null = null;

function stamp(at: Date): { hms: string; zone: string; date: string } {
  const second = Math.floor(at.getTime() / 1000);
  if (stampCache?.second === second) return stampCache;
  // The platform writes its time-zone *bias* (UTC = local + bias): the sign of getTimezoneOffset().
  const bias = at.getTimezoneOffset();
  stampCache = {
    second,
    hms: `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`,
    zone: `${bias < 0 ? "-" : "+"}${pad(Math.abs(bias), 3)}`,
    date: `${pad(at.getMonth() + 1)}-${pad(at.getDate())}-${at.getFullYear()}`,
  };
  return stampCache;
}

/** One CMTrace line (with the trailing CRLF viewers expect). */
export function formatLine(text: string, component: string, severity: Severity, at: Date, thread = process.pid): string {
  const s = stamp(at);
  const time = `${s.hms}.${pad(at.getMilliseconds(), 3)}${s.zone}`;
  return (
    `<![LOG[${escapeText(text)}]LOG]!><time="${time}" date="${s.date}" component="${component}" ` +
    `context="" type="${TYPE[severity]}" thread="${thread}" file="">\r\n`
  );
}

const LINE = /^<!\[LOG\[([\s\S]*?)\]LOG\]!><time="([^"]*)" date="([^"]*)" component="([^"]*)" context="[^"]*" type="(\d)" thread="(\d+)" file="[^"]*">$/;

export interface ParsedLine {
  text: string;
  time: string;
  date: string;
  component: string;
  type: number;
  thread: number;
}

/** Parses the lines of a CMTrace file (tests and `opencmg logs` read files back with it). */
export function parseLines(content: string): ParsedLine[] {
  const out: ParsedLine[] = [];
  for (const raw of content.split("\r\n")) {
    if (!raw) continue;
    const m = LINE.exec(raw);
    if (!m) continue;
    out.push({ text: m[1]!.replaceAll("]LOG]!&gt;", "]LOG]!>"), time: m[2]!, date: m[3]!, component: m[4]!, type: Number(m[5]), thread: Number(m[6]) });
  }
  return out;
}

/** A per-request log's waiting lines are written once they reach this many characters, without waiting for the turn to end. */
const BATCH_CHARS = 64 * 1024;

/** Files with lines waiting: written when the process exits, if not before (one listener for all). */
const waiting = new Set<LogFile>();
let exitListener = false;

/** A rotation lock older than this was left by a process that died while rotating: it is removed. */
const STALE_LOCK_MS = 10_000;
/** A file that cannot be written is reported on standard error at most this often. */
const REPORT_EVERY_MS = 60_000;

class LogFile {
  private fd: number;
  private size: number;
  /** Lines of a per-request log not written yet, and their length in characters. */
  private pending: string[] = [];
  private pendingChars = 0;
  private flushing: NodeJS.Immediate | null = null;
  /** Lines lost since the file last failed, and when that was reported. */
  private dropped = 0;
  private reportedAt = -Infinity;
  constructor(
    readonly path: string,
    private readonly maxBytes: number,
  ) {
    this.fd = openSync(path, "a", 0o600);
    const st = fstatSync(this.fd);
    // A file from an older version, or copied. Only a regular file: a link to a device is not ours to change.
    if (st.isFile() && (st.mode & 0o077) !== 0) fchmodSync(this.fd, 0o600);
    this.size = st.size;
  }
  /** Writes a line now, after any waiting ones. */
  write(line: string): void {
    this.flush();
    this.append(line);
  }
  /** Queues a line; it is written at the end of this turn of the event loop (or sooner, see BATCH_CHARS). */
  defer(line: string): void {
    this.pending.push(line);
    this.pendingChars += line.length;
    if (this.pendingChars >= BATCH_CHARS) return this.flush();
    if (this.flushing) return;
    // Unreferenced: waiting lines never keep a process alive; the exit listener writes them.
    this.flushing = setImmediate(() => this.flush()).unref();
    waiting.add(this);
    if (!exitListener) {
      exitListener = true;
      process.on("exit", () => {
        for (const f of waiting) f.flush();
      });
    }
  }
  /** Writes the waiting lines, in one append. */
  flush(): void {
    if (this.flushing) clearImmediate(this.flushing);
    this.flushing = null;
    waiting.delete(this);
    if (this.pending.length === 0) return;
    const text = this.pending.length === 1 ? this.pending[0]! : this.pending.join("");
    const lines = this.pending.length;
    this.pending = [];
    this.pendingChars = 0;
    this.append(text, lines);
  }
  /**
   * Appends whole lines. Logging never throws into the code that logs: a request must not fail, nor
   * a gateway worker die, because its log cannot be written (a full disk, a file removed). The
   * lines are dropped then, and standard error says so (the journal, under systemd).
   */
  private append(text: string, lines = 1): void {
    const buf = Buffer.from(text, "utf8");
    try {
      // The file's own size, not this writer's count: other processes may append to it too.
      this.size = fstatSync(this.fd).size;
      if (this.size > 0 && this.size + buf.length > this.maxBytes) this.rotate();
      writeSync(this.fd, buf);
      this.size += buf.length;
    } catch (err) {
      this.dropped += lines;
      const now = Date.now();
      if (now - this.reportedAt < REPORT_EVERY_MS) return;
      this.reportedAt = now;
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`opencmg: cannot write ${this.path} (${e.code ?? "error"}: ${e.message}); ${this.dropped} line(s) lost so far. Check the disk and the folder's permissions; writing resumes by itself.\n`);
    }
  }
  /**
   * Several processes may append to one file (the worker processes of a gateway instance): each
   * line (or batch of whole lines) is one append, so lines never mix. One process rotates at a
   * time, under `NAME.lock` (created exclusively); a process that finds it taken keeps appending and
   * looks again at its next write. The rotator renames the file only when it is still the one
   * its descriptor holds (another process may have rotated it already), and opens the new file
   * before closing the old one, so the descriptor in use is always open.
   */
  private rotate(): void {
    const lock = this.path.replace(/\.log$/i, "") + ".lock";
    let held: number;
    try {
      held = openSync(lock, "wx", 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS) rmSync(lock, { force: true });
      } catch {
        // Released meanwhile.
      }
      return;
    }
    try {
      const mine = fstatSync(this.fd);
      let current: { ino: number; dev: number } | null = null;
      try {
        current = statSync(this.path);
      } catch {
        // Renamed by another process, not created again yet.
      }
      // rename() replaces the previous file in one step: no moment without one.
      if (current && current.ino === mine.ino && current.dev === mine.dev) renameSync(this.path, this.path.replace(/\.log$/i, "") + ".lo_");
      const fd = openSync(this.path, "a", 0o600);
      closeSync(this.fd);
      this.fd = fd;
      this.size = fstatSync(fd).size;
    } finally {
      closeSync(held);
      rmSync(lock, { force: true });
    }
  }
  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

export interface LogSetOptions {
  /** Folder of the .log files; created when missing. */
  dir: string;
  /** Rotation size per file (default 2.5 MB, the platform's default). */
  maxBytes?: number;
  /** Structured copy of every line but a per-request log's info lines (stdout for servers); none for one-shot CLI commands. */
  pino?: PinoLogger;
  /** Lines less severe than this are dropped, from the files and the structured copy alike (default info: all). */
  level?: LogLevel;
  /** Clock, for tests. */
  now?: () => Date;
}

/** The set of component log files of one process. */
export class LogSet {
  private readonly files = new Map<string, LogFile>();
  /** The size at which each file rotates. */
  readonly maxBytes: number;
  private readonly now: () => Date;
  private readonly minType: number;
  constructor(private readonly options: LogSetOptions) {
    // Logs name servers, clients and URLs: for the service account only.
    mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    if ((statSync(options.dir).mode & 0o077) !== 0) chmodSync(options.dir, 0o700);
    this.maxBytes = options.maxBytes ?? 2_621_440;
    this.now = options.now ?? (() => new Date());
    this.minType = TYPE[options.level ?? "info"];
  }

  /** The least severe line written. */
  get level(): LogLevel {
    return this.options.level ?? "info";
  }

  get dir(): string {
    return this.options.dir;
  }

  /** A logger writing to one of the product's log files (`LOG_FILES.ruleengine`: ruleengine.log, SMS_RULE_ENGINE). */
  component(spec: LogFileSpec): ComponentLog {
    const { file, component } = spec;
    const write = (severity: Severity, text: string, fields?: Record<string, unknown>): void => {
      if (TYPE[severity] < this.minType) return;
      const perRequest = spec.perRequest === true;
      this.write(file, component, severity, text, perRequest && severity !== "error");
      const p = this.options.pino;
      // A per-request log's info lines (one per request served) stay in its file: at a busy
      // gateway's rate they would flood the journal, which then drops lines (journald's rate limit
      // is 10,000 per 30 s per service by default), the service's own among them.
      if (p && !(perRequest && severity === "info")) {
        const obj = { component, log: file, ...fields };
        if (severity === "error") p.error(obj, text);
        else if (severity === "warning") p.warn(obj, text);
        else p.info(obj, text);
      }
    };
    return {
      file,
      component,
      info: (t, f) => write("info", t, f),
      warn: (t, f) => write("warning", t, f),
      error: (t, f) => write("error", t, f),
    };
  }

  private write(file: string, component: string, severity: Severity, text: string, deferred: boolean): void {
    let f = this.files.get(file);
    if (!f) {
      f = new LogFile(join(this.options.dir, file), this.maxBytes);
      this.files.set(file, f);
    }
    const line = formatLine(text, component, severity, this.now());
    if (deferred) f.defer(line);
    else f.write(line);
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }
}

/** A logger that drops everything (for library use without a data folder). */
export const nullLog: ComponentLog = { file: "", component: "", info() {}, warn() {}, error() {} };

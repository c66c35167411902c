/**
 * CMTrace-format log files, one per component, under `<data>/logs/`.
 *
 *   <![LOG[text]LOG]!><time="HH:MM:SS.mmm+zzz" date="MM-DD-YYYY" component="Name" context="" type="1" thread="1234" file="">
 *
 * Writes are synchronous on a kept-open descriptor: a line is on disk before the call returns, so
 * a crash never loses the line that explains it. Size-based rotation keeps one previous file as
 * `NAME.lo_`, as the platform does.
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

class LogFile {
  private fd: number;
  private size: number;
  constructor(
    readonly path: string,
    private readonly maxBytes: number,
  ) {
    this.fd = openSync(path, "a", 0o600);
    const st = fstatSync(this.fd);
    if ((st.mode & 0o077) !== 0) fchmodSync(this.fd, 0o600); // a file from an older version, or copied
    this.size = st.size;
  }
  write(line: string): void {
    const buf = Buffer.from(line, "utf8");
    // The file's own size, not this writer's count: other processes may append to it too.
    this.size = fstatSync(this.fd).size;
    if (this.size > 0 && this.size + buf.length > this.maxBytes) this.rotate();
    writeSync(this.fd, buf);
    this.size += buf.length;
  }
  /**
   * Several processes may append to one file (the worker processes of a gateway instance): each
   * line is one append, so lines never mix; before rotating, the file's real size and identity are
   * read, so a file another process rotated already is reopened, not rotated again.
   */
  private rotate(): void {
    const mine = fstatSync(this.fd);
    let current: { ino: number; dev: number } | null = null;
    try {
      current = statSync(this.path);
    } catch {
      // Renamed by another process, not created again yet.
    }
    if (!current || current.ino !== mine.ino || current.dev !== mine.dev) {
      closeSync(this.fd);
      this.fd = openSync(this.path, "a", 0o600);
      this.size = fstatSync(this.fd).size;
      return;
    }
    closeSync(this.fd);
    const previous = this.path.replace(/\.log$/i, "") + ".lo_";
    rmSync(previous, { force: true });
    renameSync(this.path, previous);
    this.fd = openSync(this.path, "a", 0o600);
    this.size = 0;
  }
  close(): void {
    closeSync(this.fd);
  }
}

export interface LogSetOptions {
  /** Folder of the .log files; created when missing. */
  dir: string;
  /** Rotation size per file (default 2.5 MB, the platform's default). */
  maxBytes?: number;
  /** Structured copy of every line (stdout for servers); none for one-shot CLI commands. */
  pino?: PinoLogger;
  /** Lines less severe than this are dropped, from the files and the structured copy alike (default info: all). */
  level?: LogLevel;
  /** Clock, for tests. */
  now?: () => Date;
}

/** The set of component log files of one process. */
export class LogSet {
  private readonly files = new Map<string, LogFile>();
  private readonly maxBytes: number;
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
      this.write(file, component, severity, text);
      const p = this.options.pino;
      if (p) {
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

  private write(file: string, component: string, severity: Severity, text: string): void {
    let f = this.files.get(file);
    if (!f) {
      f = new LogFile(join(this.options.dir, file), this.maxBytes);
      this.files.set(file, f);
    }
    f.write(formatLine(text, component, severity, this.now()));
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }
}

/** A logger that drops everything (for library use without a data folder). */
export const nullLog: ComponentLog = { file: "", component: "", info() {}, warn() {}, error() {} };

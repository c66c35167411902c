/**
 * The client agent's folder: its settings (from install), its state (what the last cycle learnt),
 * its certificate and key (0600), the CA it trusts, its registration token, the status upload
 * queue and its logs. Every file is replaced atomically (write, fsync, rename), so a crash leaves
 * the old or the new version, never half of one.
 *
 *   <dir>/client.json   install settings and identity      <dir>/state.json  last cycle
 *   <dir>/client.pem    client authentication certificate  <dir>/client.key  its key (0600)
 *   <dir>/ca.pem        trusted roots for MPs and CMGs      <dir>/token       registration token (0600)
 *   <dir>/queue/        status messages waiting for upload <dir>/logs/       CMTrace logs
 *   <dir>/client-token  the site's client token (0600)     <dir>/token-key.pem  the key it is bound to (0600)
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { OpenCmgError } from "../errors.ts";
import type { MpCandidate } from "../wire/mp.ts";
import type { ClientSettings } from "../wire/mp.ts";

export type ClientConnectionType = "intranet" | "internet";

/** What `client install` decided; changes only with another install. */
export interface ClientConfig {
  version: 1;
  name: string;
  /** The MP given at install (`--mp`): used when no candidate of the needed kind answers. */
  bootstrapMp: string;
  /** Installed with `--always-internet` (the documents' CCMALWAYSINF=1). */
  alwaysInternet: boolean;
  /** An internal URL whose answer means "on the intranet" (`--internal-probe`). */
  internalProbe: string | null;
  clientId: string;
  approved: boolean;
  hasCertificate: boolean;
  /** Installed with a bulk registration token or a directory ID token: authenticates with its client token. */
  tokenAuth?: boolean;
  installedAt: string;
}

/** A refusal as the agent records it (`client status`, `client diagnose`). */
export interface RecordedRefusal {
  at: string;
  url: string;
  status: number;
  /** Reason code: the CMG's (src/wire/refusals.ts) or the management point's (MpReason). */
  reason: string;
  /** The CMG's finer cause, e.g. no_crl_distribution_point. */
  cause?: string;
  /** True when the CMG refused; false when a management point did. */
  byGateway: boolean;
  message: string;
}

/** What the agent learnt; rewritten after each step of a cycle. */
export interface ClientState {
  connectionType: ClientConnectionType | null;
  mpInUse: string | null;
  siteCode: string | null;
  candidates: MpCandidate[];
  lastLocationAt: string | null;
  lastPolicyAt: string | null;
  policy: ClientSettings | null;
  lastUploadAt: string | null;
  lastCycleAt: string | null;
  lastError: string | null;
  /** The last refusal by a CMG or a management point (kept after later successes, with its time). */
  lastRefusal: RecordedRefusal | null;
}

export const EMPTY_STATE: ClientState = {
  connectionType: null,
  mpInUse: null,
  siteCode: null,
  candidates: [],
  lastLocationAt: null,
  lastPolicyAt: null,
  policy: null,
  lastUploadAt: null,
  lastCycleAt: null,
  lastError: null,
  lastRefusal: null,
};

export class ClientNotInstalledError extends OpenCmgError {
  constructor(dir: string) {
    super("not_found", "NOT_INSTALLED", `no client is installed in ${dir}: run opencmg client install --mp URL (or give --client-dir)`);
  }
}

/** The client folder: `--client-dir`, else `$OPENCMG_CLIENT_DIR`, else `./opencmg-client`. */
export function clientDir(option: string | undefined, env: NodeJS.ProcessEnv): string {
  return resolve(option ?? env.OPENCMG_CLIENT_DIR ?? "./opencmg-client");
}

/** Writes `data` to `path` atomically: a temporary file, fsync, rename, fsync of the folder. */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644, syncDir = true): void {
  const tmp = join(dirname(path), `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const fd = openSync(tmp, "w", mode);
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data, "utf8") : data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  if (syncDir) fsyncDir(dirname(path));
}

/** Makes a rename or a new file in `dir` durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class ClientStore {
  readonly dir: string;
  readonly paths: { config: string; state: string; cert: string; key: string; ca: string; token: string; queue: string; logs: string; clientToken: string; tokenKey: string };

  constructor(dir: string) {
    this.dir = resolve(dir);
    const p = (f: string): string => join(this.dir, f);
    this.paths = { config: p("client.json"), state: p("state.json"), cert: p("client.pem"), key: p("client.key"), ca: p("ca.pem"), token: p("token"), queue: p("queue"), logs: p("logs"), clientToken: p("client-token"), tokenKey: p("token-key.pem") };
  }

  /** Creates the folder (0700: it holds a private key). */
  ensure(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  installed(): boolean {
    return existsSync(this.paths.config);
  }

  config(): ClientConfig {
    if (!this.installed()) throw new ClientNotInstalledError(this.dir);
    return JSON.parse(readFileSync(this.paths.config, "utf8")) as ClientConfig;
  }

  writeConfig(c: ClientConfig): void {
    writeFileAtomic(this.paths.config, JSON.stringify(c, null, 2) + "\n");
  }

  state(): ClientState {
    if (!existsSync(this.paths.state)) return { ...EMPTY_STATE };
    try {
      return { ...EMPTY_STATE, ...(JSON.parse(readFileSync(this.paths.state, "utf8")) as Partial<ClientState>) };
    } catch {
      // Atomic writes make this unlikely; a damaged state is relearnt by the next cycle.
      return { ...EMPTY_STATE };
    }
  }

  writeState(s: ClientState): void {
    writeFileAtomic(this.paths.state, JSON.stringify(s, null, 2) + "\n");
  }

  /** Certificate, key and trusted roots for TLS to MPs and CMGs. */
  tls(): { certPem?: string; keyPem?: string; ca?: string[] } {
    const read = (f: string): string | undefined => (existsSync(f) ? readFileSync(f, "utf8") : undefined);
    const certPem = read(this.paths.cert);
    const keyPem = read(this.paths.key);
    const ca = read(this.paths.ca);
    return { ...(certPem && keyPem ? { certPem, keyPem } : {}), ...(ca ? { ca: [ca] } : {}) };
  }

  clientToken(): string | undefined {
    return existsSync(this.paths.clientToken) ? readFileSync(this.paths.clientToken, "utf8").trim() : undefined;
  }

  writeClientToken(token: string): void {
    writeFileAtomic(this.paths.clientToken, token + "\n", 0o600);
  }

  token(): string | undefined {
    return existsSync(this.paths.token) ? readFileSync(this.paths.token, "utf8").trim() : undefined;
  }
}

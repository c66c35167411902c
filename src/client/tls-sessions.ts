/**
 * The client's TLS sessions, one per server name, held for the transport's life and offered on
 * every new connection. undici keeps sessions only through weak references, so once collected the
 * next connection is a full handshake, with a full client-certificate check at the gateway. After
 * an instance restarts every device reconnects at once; with its session kept, a device resumes
 * (TLS session tickets, whose keys a CMG's instances and workers share) instead.
 */
import type { TLSSocket } from "node:tls";
import { buildConnector } from "undici";

/** Server names a transport talks to are few (the MP, the CMG, the SUP); this only bounds them. */
const MAX_NAMES = 64;

export class TlsSessions {
  private readonly sessions = new Map<string, Buffer>();

  /** The last session a server under `name` gave, if any. */
  get(name: string): Buffer | undefined {
    return this.sessions.get(name);
  }

  private keep(name: string, session: Buffer): void {
    this.sessions.delete(name);
    this.sessions.set(name, session);
    if (this.sessions.size > MAX_NAMES) this.sessions.delete(this.sessions.keys().next().value!);
  }

  /** An undici connector with `options` that offers the kept session and keeps each new one. */
  connector(options: buildConnector.BuildOptions): buildConnector.connector {
    return (opts, callback) => {
      const name = opts.servername || (options as { servername?: string }).servername || opts.hostname;
      const session = this.sessions.get(name);
      const connect = buildConnector({ ...options, ...(session ? { session } : {}) });
      connect(opts, (err, socket) => {
        if (socket) (socket as TLSSocket).on("session", (s: Buffer) => this.keep(name, s));
        // undici types its callback as a union of its two forms.
        (callback as (e: Error | null, s: typeof socket) => void)(err, socket);
      });
    };
  }
}

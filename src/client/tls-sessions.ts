/**
 * The client's TLS sessions, one per server name, held for the transport's life and offered on
 * every new connection. undici keeps sessions only through weak references, so once collected the
 * next connection is a full handshake, with a full client-certificate check at the gateway. After
 * an instance restarts every device reconnects at once; with its session kept, a device resumes
 * (TLS session tickets, whose keys a CMG's instances and workers share) instead.
 */
import type { DetailedPeerCertificate, TLSSocket } from "node:tls";
import { buildConnector } from "undici";

/** Server names a transport talks to are few (the MP, the CMG, the SUP); this only bounds them. */
const MAX_NAMES = 64;

export class TlsSessions {
  private readonly sessions = new Map<string, Buffer>();
  /** What each name's server presented at its last full handshake: a resumed one presents nothing. */
  private readonly presentedBy = new Map<string, DetailedPeerCertificate>();

  /** The last session a server under `name` gave, if any. */
  get(name: string): Buffer | undefined {
    return this.sessions.get(name);
  }

  private keep<T>(map: Map<string, T>, name: string, value: T): void {
    map.delete(name);
    map.set(name, value);
    if (map.size > MAX_NAMES) map.delete(map.keys().next().value!);
  }

  /** The name a connection's session is kept under. */
  static nameOf(opts: buildConnector.Options, options: buildConnector.BuildOptions): string {
    return opts.servername || (options as { servername?: string }).servername || opts.hostname;
  }

  /**
   * The server's certificates (leaf first, with their issuers) for a connection this connector
   * made: the socket's own after a full handshake; after a resumed one, which carries no
   * certificate, those the server presented when the session was made.
   */
  presented(name: string, socket: TLSSocket): DetailedPeerCertificate | undefined {
    return socket.isSessionReused() ? this.presentedBy.get(name) : socket.getPeerCertificate(true);
  }

  /** An undici connector with `options` that offers the kept session and keeps each new one. */
  connector(options: buildConnector.BuildOptions): buildConnector.connector {
    return (opts, callback) => {
      const name = TlsSessions.nameOf(opts, options);
      const session = this.sessions.get(name);
      const connect = buildConnector({ ...options, ...(session ? { session } : {}) });
      connect(opts, (err, socket) => {
        if (socket) {
          const tls = socket as TLSSocket;
          if (!tls.isSessionReused()) this.keep(this.presentedBy, name, tls.getPeerCertificate(true));
          tls.on("session", (s: Buffer) => this.keep(this.sessions, name, s));
        }
        // undici types its callback as a union of its two forms.
        (callback as (e: Error | null, s: typeof socket) => void)(err, socket);
      });
    };
  }
}

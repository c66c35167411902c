/**
 * The TLS stage's trust: the system's roots plus the extra CAs of the run, and a handshake that
 * verifies the chain and the certificate's names against the host.
 */
import { isIP, type Socket } from "node:net";
import { connect as tlsConnect, createSecureContext, rootCertificates, type SecureContext, type TLSSocket } from "node:tls";

/**
 * The trusted roots of a run: undefined (Node's default context) without extra CAs. Node's `ca`
 * replaces the default roots, so they are kept and ours added. Built once per run, since parsing
 * the ~140 roots for every handshake costs more than the handshake itself.
 */
export function trustContext(ca: readonly string[] | undefined): SecureContext | undefined {
  return ca && ca.length > 0 ? createSecureContext({ ca: [...rootCertificates, ...ca] }) : undefined;
}

/** TLS over an open connection (direct, or a proxy's tunnel), chain and name verified. */
export function handshake(socket: Socket, host: string, secureContext: SecureContext | undefined, signal: AbortSignal): Promise<TLSSocket> {
  return new Promise((ok, fail) => {
    const tls = tlsConnect({
      socket,
      // SNI only for names; the certificate is checked against `host` either way.
      ...(isIP(host) ? {} : { servername: host }),
      host,
      ...(secureContext ? { secureContext } : {}),
      ALPNProtocols: ["http/1.1"],
      rejectUnauthorized: true,
    });
    const onAbort = (): void => {
      tls.destroy();
      fail(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    tls.once("secureConnect", () => {
      signal.removeEventListener("abort", onAbort);
      ok(tls);
    });
    tls.once("error", (e) => {
      signal.removeEventListener("abort", onAbort);
      tls.destroy();
      fail(e);
    });
  });
}

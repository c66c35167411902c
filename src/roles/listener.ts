/**
 * Listening for an HTTPS site role (management point, software update point): bind, keep track of
 * open sockets so that close() does not wait on idle keep-alive clients, and say where clients reach it.
 */
import type { Server } from "node:https";
import { isIP, type AddressInfo, type Socket } from "node:net";
import type { ComponentLog } from "../logs/cmtrace.ts";

export interface RoleListener {
  port: number;
  /** Where clients reach the role: the server's FQDN when bound to every address. */
  url: string;
  /** Stops accepting, drops open connections; idempotent. */
  close(): Promise<void>;
}

export async function listenRole(server: Server, listen: { host: string; port: number }, fqdn: string, log: ComponentLog): Promise<RoleListener> {
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.on("tlsClientError", (err, socket) => log.warn(`TLS handshake with ${socket.remoteAddress ?? "?"} failed: ${err.message}`));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const wildcard = listen.host === "0.0.0.0" || listen.host === "::" || listen.host === "";
  const host = wildcard ? fqdn : isIP(listen.host) === 6 ? `[${listen.host}]` : listen.host;
  const url = `https://${host}${port === 443 ? "" : `:${port}`}`;
  let closing: Promise<void> | undefined;
  return {
    port,
    url,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}

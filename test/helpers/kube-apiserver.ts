/**
 * A stand-in for a Kubernetes API server on loopback (HTTPS, a bearer token), for the kubernetes
 * provider's tests: no real API server can run here. It answers what the provider sends as the
 * API documents it (discovery, server-side apply, get, list by label, delete) for the kinds a CMG
 * has, stores the objects, and checks every request: method, path, content type, field manager,
 * force, and the body against the Kubernetes schemas (kubernetes-models). A request it does not
 * expect is answered with an error and kept in `problems`.
 *
 *   const api = await startKubeApiServer({ certPem, keyPem, caPem });
 *   writeFileSync(file, api.kubeconfig("opencmg"));
 *   api.setReady("opencmg", "cmg1", 3);         // the StatefulSet's readyReplicas from now on
 *   await api.close();
 */
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";

interface Kind {
  group: string;
  version: string;
  kind: string;
  plural: string;
  validate(o: unknown): void;
}
const KINDS: Kind[] = [
  { group: "apps", version: "v1", kind: "StatefulSet", plural: "statefulsets", validate: (o) => new StatefulSet(o as never).validate() },
  { group: "policy", version: "v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", validate: (o) => new PodDisruptionBudget(o as never).validate() },
  { group: "", version: "v1", kind: "Service", plural: "services", validate: (o) => new Service(o as never).validate() },
  { group: "", version: "v1", kind: "Secret", plural: "secrets", validate: (o) => new Secret(o as never).validate() },
];
const apiVersionOf = (k: Kind): string => (k.group ? `${k.group}/${k.version}` : k.version);
const prefixOf = (k: Kind): string => (k.group ? `/apis/${k.group}/${k.version}` : `/api/${k.version}`);

/** One request as the stand-in saw it. */
export interface KubeRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  /** "Kind/namespace/name" of the object it is about (or "Kind/namespace" for a list). */
  object: string;
}

type Stored = Record<string, unknown> & { metadata: { name: string; namespace: string; labels?: Record<string, string> }; spec?: { replicas?: number } };

export interface KubeApiServer {
  url: string;
  token: string;
  /** Every request, in order (discovery included). */
  requests: KubeRequest[];
  /** What was wrong with a request: empty when the provider sent only what the API documents. */
  problems: string[];
  /** Stored objects by "Kind/namespace/name". */
  objects: Map<string, Stored>;
  /** The StatefulSet's status.readyReplicas from now on (at most its replicas). */
  setReady(namespace: string, name: string, ready: number): void;
  /** A kubeconfig for this server, its CA and token, with `namespace` as the context's. */
  kubeconfig(namespace: string): string;
  close(): Promise<void>;
}

export async function startKubeApiServer(tls: { certPem: string; keyPem: string; caPem: string }): Promise<KubeApiServer> {
  const token = `test-token-${process.pid}-${Date.now()}`;
  const requests: KubeRequest[] = [];
  const problems: string[] = [];
  const objects = new Map<string, Stored>();
  const ready = new Map<string, number>();
  let rv = 1;

  const withStatus = (key: string, o: Stored): Stored => {
    if (!key.startsWith("StatefulSet/")) return o;
    const replicas = o.spec?.replicas ?? 1;
    return { ...o, status: { replicas, readyReplicas: Math.min(replicas, ready.get(key) ?? 0), availableReplicas: Math.min(replicas, ready.get(key) ?? 0), observedGeneration: 1 } };
  };

  const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "https://127.0.0.1");
      const query = Object.fromEntries(url.searchParams);
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      const status = (code: number, reason: string, message: string): void => send(code, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code });
      const refuse = (code: number, reason: string, message: string): void => {
        problems.push(`${req.method} ${url.pathname}: ${message}`);
        status(code, reason, message);
      };
      const record = (object: string): void => void requests.push({ method: req.method ?? "", path: url.pathname, query, contentType: req.headers["content-type"], object });
      if (req.headers.authorization !== `Bearer ${token}`) return (record("-"), refuse(401, "Unauthorized", "no or wrong bearer token"));

      // Discovery: the resources of a group version.
      const discovery = KINDS.filter((k) => prefixOf(k) === url.pathname);
      if (discovery.length > 0) {
        record("discovery");
        if (req.method !== "GET") return refuse(405, "MethodNotAllowed", "discovery is GET");
        return send(200, {
          kind: "APIResourceList",
          apiVersion: "v1",
          groupVersion: apiVersionOf(discovery[0]!),
          resources: discovery.map((k) => ({ name: k.plural, singularName: k.kind.toLowerCase(), namespaced: true, kind: k.kind, verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"] })),
        });
      }
      const kind = KINDS.find((k) => url.pathname.startsWith(`${prefixOf(k)}/namespaces/`) && url.pathname.split("/")[k.group ? 6 : 5] === k.plural);
      const parts = url.pathname.split("/");
      const at = kind ? (kind.group ? 5 : 4) : 0;
      const namespace = parts[at] ?? "";
      const name = parts[at + 2];
      if (!kind || parts.length > at + 3) return (record("-"), refuse(404, "NotFound", `no such resource path ${url.pathname}`));
      const key = `${kind.kind}/${namespace}/${name ?? ""}`;
      record(name ? key : `${kind.kind}/${namespace}`);

      if (req.method === "PATCH" && name) {
        if (req.headers["content-type"] !== "application/apply-patch+yaml") return refuse(415, "UnsupportedMediaType", `content type ${req.headers["content-type"]}: a server-side apply is application/apply-patch+yaml`);
        if (query.fieldManager !== "opencmg") return refuse(400, "BadRequest", `fieldManager ${query.fieldManager ?? "(none)"}: the provider's is opencmg`);
        if (query.force !== "true") return refuse(409, "Conflict", "not forced: the site owns these fields (force=true)");
        let body: Stored;
        try {
          // A server-side apply body is YAML; JSON is YAML too, and is what the client sends.
          body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Stored;
        } catch (e) {
          return refuse(400, "BadRequest", `body is not JSON: ${(e as Error).message}`);
        }
        if (body.kind !== kind.kind || body.apiVersion !== apiVersionOf(kind)) return refuse(400, "BadRequest", `body is ${body.apiVersion} ${body.kind}, the path ${apiVersionOf(kind)} ${kind.kind}`);
        if (body.metadata?.name !== name || body.metadata?.namespace !== namespace) return refuse(400, "BadRequest", `body names ${body.metadata?.namespace}/${body.metadata?.name}, the path ${namespace}/${name}`);
        try {
          kind.validate(body);
        } catch (e) {
          return refuse(422, "Invalid", `${kind.kind} ${name} is invalid: ${(e as Error).message}`);
        }
        const existing = objects.get(key);
        const stored: Stored = { ...body, metadata: { ...body.metadata, uid: (existing?.metadata as { uid?: string } | undefined)?.uid ?? `uid-${rv}`, resourceVersion: String(++rv) } as Stored["metadata"] };
        objects.set(key, stored);
        return send(existing ? 200 : 201, withStatus(key, stored));
      }
      if (req.method === "GET" && name) {
        const o = objects.get(key);
        return o ? send(200, withStatus(key, o)) : status(404, "NotFound", `${kind.plural} "${name}" not found`);
      }
      if (req.method === "GET" && !name) {
        const selector = query.labelSelector ?? "";
        const [lk, lv] = selector.split("=");
        if (!lk || lv === undefined) return refuse(400, "BadRequest", `list without the CMG's label selector (${selector})`);
        const items = [...objects.entries()].filter(([k, o]) => k.startsWith(`${kind.kind}/${namespace}/`) && o.metadata.labels?.[lk] === lv).map(([k, o]) => withStatus(k, o));
        return send(200, { kind: `${kind.kind}List`, apiVersion: apiVersionOf(kind), metadata: { resourceVersion: String(rv) }, items });
      }
      if (req.method === "DELETE" && name) {
        if (!objects.delete(key)) return status(404, "NotFound", `${kind.plural} "${name}" not found`);
        return send(200, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", details: { name, kind: kind.plural } });
      }
      return refuse(405, "MethodNotAllowed", `${req.method} is not what the provider sends here`);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    token,
    requests,
    problems,
    objects,
    setReady: (namespace, name, n) => void ready.set(`StatefulSet/${namespace}/${name}`, n),
    kubeconfig: (namespace) =>
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "stand-in", cluster: { server: url, "certificate-authority-data": Buffer.from(tls.caPem).toString("base64") } }],
        users: [{ name: "opencmg-site", user: { token } }],
        contexts: [{ name: "stand-in", context: { cluster: "stand-in", user: "opencmg-site", namespace } }],
        "current-context": "stand-in",
      }),
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

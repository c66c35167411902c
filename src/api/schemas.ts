/**
 * What the admin API answers with, as zod schemas: the OpenAPI document's response schemas come
 * from these. Objects the site may grow are open (`looseObject`): a new field is not a break.
 */
import { z } from "zod";
import { ADMIN_ROLES } from "../site/services/admin-roles.ts";
import { CHECK_STAGES } from "../endpoints/check-report.ts";
import { endpointSchema, portSchema } from "../endpoints/catalog-schema.ts";
import { CMG_STATUSES, RUN_STATES } from "../site/services/cmg-model.ts";
import { cmgDeleted as cmgDeletedView } from "../site/services/cmgs.ts";
import { connectionPointCertView, signingKeyView } from "../site/services/cmg-trust.ts";
import { createdJoinToken, joinTokenView } from "../site/services/joins.ts";

const time = z.string().describe("ISO-8601 time");

export const site = z.looseObject({ code: z.string(), name: z.string(), type: z.enum(["primary", "cas", "secondary"]), parentCode: z.string().nullable() });
export const server = z.looseObject({ id: z.number(), fqdn: z.string(), siteCode: z.string(), isSiteServer: z.boolean() });
export const role = z.looseObject({ id: z.number(), kind: z.string(), serverFqdn: z.string(), settings: z.record(z.string(), z.unknown()) });
export const account = z.looseObject({ id: z.number(), name: z.string(), username: z.string() }).describe("An account; its secret is never returned");
export const proxyConfig = z.looseObject({ server: z.string(), enabled: z.boolean(), host: z.string(), port: z.number(), account: z.string().nullable() });
export const proxyDecision = z.looseObject({ use: z.enum(["proxy", "direct"]), reason: z.string() });

export const statusMessage = z.looseObject({
  id: z.number().describe("the row's id: the paging cursor"),
  messageId: z.number(),
  severity: z.enum(["informational", "warning", "error"]),
  component: z.string(),
  server: z.string(),
  time,
  text: z.string(),
  properties: z.record(z.string(), z.unknown()),
  source: z.enum(["site", "client"]).describe("site: the site's own components; client: a device uploaded it"),
  clientId: z.string().nullable().describe("the client that uploaded it (source client)"),
  claimedTime: time.nullable().describe("when the client says it happened (source client); not trusted"),
});
export const componentStatus = z.looseObject({ server: z.string(), component: z.string(), status: z.enum(["OK", "Warning", "Critical"]), reason: z.string(), updatedAt: time });

/** A page, newest first: pass `nextCursor` as `cursor` for the next (older) one. */
export const page = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), nextCursor: z.number().nullable() });

export const client = z.looseObject({
  id: z.string(),
  name: z.string(),
  thumbprint: z.string().nullable(),
  subject: z.string().nullable(),
  approved: z.boolean(),
  alwaysInternet: z.boolean(),
  lastContactAt: time.nullable(),
  connectionType: z.enum(["intranet", "internet"]).nullable(),
  registeredAt: time,
  blocked: z.boolean().describe("refused everywhere by an administrator"),
  statusRefused: z.number().describe("status messages refused for the client's limits (429)"),
  statusRefusedAt: time.nullable().describe("when one was last refused"),
  tokenKey: z.string().nullable().describe("RFC 7638 thumbprint of the key the client's tokens are bound to (a token-registered client), else null"),
  approvedTokenKey: z.string().nullable().describe("a key an administrator approved to replace tokenKey at the next registration, until it is used"),
});
export const bulkToken = z.looseObject({
  id: z.string(),
  createdAt: time,
  expiresAt: time,
  maxUses: z.number().nullable(),
  devices: z.number(),
  lastUsedAt: time.nullable(),
  revokedAt: time.nullable(),
  state: z.enum(["active", "used", "revoked", "expired"]),
});
export const clientCommunication = z.looseObject({ usePkiClientCertificate: z.boolean(), clientsCheckCrl: z.boolean() });
export const clientSettings = z.looseObject({ locationIntervalMinutes: z.number(), policyIntervalMinutes: z.number(), useCmg: z.boolean(), alwaysOnInternet: z.boolean() });

export const certInfo = z.looseObject({ subject: z.string(), thumbprint: z.string(), notAfter: time, dnsNames: z.array(z.string()).optional() });
export const trafficAlert = z.looseObject({ thresholdGb: z.number(), warningPct: z.number(), criticalPct: z.number(), stopOnCritical: z.boolean().optional() });
export const cmgInstance = z.looseObject({
  index: z.number(),
  clientUrl: z.string(),
  clientPort: z.number(),
  listenHost: z.string(),
  tunnelHost: z.string(),
  tunnelPort: z.number(),
  metricsPort: z.number().nullable(),
  connectionPoints: z.array(z.looseObject({ server: z.string(), connected: z.boolean(), detail: z.string(), reportedAt: time })),
  restarts: z.number(),
  lastRestartAt: time.nullable(),
  lastExit: z.string().nullable(),
});
export const cmgDeploy = z.looseObject({
  listenHost: z.string(),
  publicHost: z.string(),
  clientPortBase: z.number(),
  tunnelPortBase: z.number(),
  instanceHost: z.string(),
  instanceAddresses: z.array(z.string()).optional(),
  metricsPortBase: z.number(),
  metricsHost: z.string().optional(),
  trafficAlert: trafficAlert.nullable().optional(),
});
export const cmg = z.looseObject({
  name: z.string(),
  serviceFqdn: z.string(),
  serviceName: z.string(),
  cloud: z.string(),
  provider: z.string(),
  region: z.string(),
  resourceGroup: z.string(),
  instanceCount: z.number(),
  crlCheck: z.boolean(),
  minRsaBits: z.number(),
  serverCertificate: certInfo,
  trustedRoots: z.array(certInfo),
  intermediates: z.array(certInfo),
  deploy: cmgDeploy,
  connectionPointServers: z.array(z.string()),
  status: z.enum(CMG_STATUSES),
  statusReason: z.string(),
  runState: z.enum(RUN_STATES).describe("what the administrator asked for: running unless stopped or being deleted"),
  runStateAt: time.nullable(),
  instances: z.array(cmgInstance),
  revision: z.number(),
});
export const cmgDeleted = cmgDeletedView.loose();

const trafficTotals = { requests: z.number(), failed: z.number(), bytesToClients: z.number(), bytesFromClients: z.number() };
export const cmgTraffic = z.looseObject({
  cmg: z.string(),
  days: z.number(),
  from: time,
  to: time,
  total: z.looseObject(trafficTotals),
  outbound14Days: z.number().describe("bytes to the devices over the last 14 days"),
  perDay: z.array(z.looseObject({ day: z.string(), ...trafficTotals })),
  byInstance: z.array(z.looseObject({ instance: z.number().nullable(), ...trafficTotals })),
  byConnectionPoint: z.array(z.looseObject({ connectionPoint: z.string(), ...trafficTotals })),
  byRoleKind: z.array(z.looseObject({ roleKind: z.string(), ...trafficTotals })),
  perDayByRoleKind: z.array(z.looseObject({ day: z.string(), roleKind: z.string(), ...trafficTotals })),
  alert: trafficAlert.nullable(),
  alertStates: z.array(z.looseObject({ alert: z.enum(["traffic", "certificate-30d", "certificate-7d"]), level: z.string(), subject: z.string(), changedAt: time })),
});
export const analyzeCheck = z.looseObject({
  check: z.string(),
  status: z.enum(["pass", "fail", "skip"]),
  detail: z.string(),
  fix: z.string().optional().describe("what to do, in the console's words"),
  cliFix: z.string().optional().describe("the same in the command line's words"),
  reason: z.string().optional(),
  cause: z.string().optional(),
  instance: z.number().optional(),
});
export const cmgAnalysis = z.looseObject({ cmg: z.string(), serviceFqdn: z.string(), checks: z.array(analyzeCheck), passed: z.number(), failed: z.number(), skipped: z.number(), ok: z.boolean() });

/** A signing key of the site (tokens or CMG settings): never its key material. */
export const signingKey = signingKeyView.loose();
export const keyRotation = z.looseObject({ current: z.string(), previous: z.string().nullable(), retired: z.array(z.string()) });
export const connectionPointCert = connectionPointCertView.loose();
export const newBulkToken = z.looseObject({ id: z.string(), token: z.string().describe("shown this once"), expiresAt: time, maxUses: z.number().nullable() });
export const joinToken = joinTokenView.loose();
export const newJoinToken = createdJoinToken.loose();
export const setting = z.looseObject({ key: z.string(), value: z.string(), default: z.string(), isDefault: z.boolean(), description: z.string(), rule: z.string(), updatedAt: time.nullable() });

export const directoryStatus = z.looseObject({ configured: z.boolean(), redirectUri: z.string().nullable().describe("register it at the directory"), issuer: z.string().nullable() });
export const consoleSession = z.object({ csrfToken: z.string().describe("send it as x-opencmg-csrf with every change"), expiresAt: time });

export const update = z.looseObject({
  id: z.string(),
  title: z.string(),
  classification: z.string(),
  product: z.string(),
  releaseDate: z.string(),
  files: z.array(z.looseObject({ name: z.string(), url: z.string(), size: z.number(), sha256: z.string() })),
});
export const ruleAfterSync = z.looseObject({ rule: z.string(), matched: z.number().optional(), files: z.number().optional(), failed: z.number().optional(), error: z.string().optional().describe("why the rule did not run") });
export const syncResult = z.looseObject({
  server: z.string(),
  upstreamUrl: z.string(),
  route: z.string(),
  updates: z.number(),
  added: z.number(),
  rulesRun: z.array(ruleAfterSync).describe("the enabled rules that run after each synchronisation, run after this one"),
});
export const syncSchedule = z.looseObject({
  server: z.string(),
  syncIntervalHours: z.number().nullable().describe("null: off (synchronises only when asked)"),
  lastSync: z.looseObject({ time, succeeded: z.boolean(), text: z.string() }).nullable(),
  nextSync: time.nullable().describe("null when off"),
});
export const feedResult = z.looseObject({ server: z.string(), url: z.string(), route: z.string(), latestVersion: z.string(), releases: z.number() });
export const adr = z.looseObject({
  id: z.number(),
  name: z.string(),
  server: z.string(),
  products: z.array(z.string()),
  classifications: z.array(z.string()),
  titleContains: z.string().nullable(),
  enabled: z.boolean(),
  runAfterSync: z.boolean(),
});
export const adrDeleted = adr.extend({ resultsDeleted: z.number().describe("its recorded download results, deleted with it") });
export const adrFile = z.looseObject({
  updateId: z.string(),
  file: z.string(),
  status: z.enum(["downloaded", "present", "failed"]),
  code: z.union([z.number(), z.string()]).nullable(),
  bytes: z.number(),
  message: z.string(),
});
export const adrRun = z.looseObject({ rule: z.string(), matched: z.number(), files: z.array(adrFile), failed: z.number() });

/** A catalog entry with its placeholders replaced (ResolvedEndpoint): the catalog's own schema and what resolving adds. */
export const endpoint = endpointSchema.extend({
  resolvedAddress: z.string().describe("the address with its placeholders replaced"),
  host: z.string().describe("lower-case host name; wildcards keep their *. prefix"),
  targets: z.array(z.strictObject({ scheme: portSchema.shape.scheme, port: z.number().int(), url: z.string() })).describe("one per entry of ports"),
});
export const endpointSelection = z.strictObject({
  endpoints: z.array(endpoint),
  omitted: z.array(z.strictObject({ id: z.string(), address: z.string(), reason: z.string() })),
});
const checkStage = z.enum(CHECK_STAGES);
export const checkResult = z.looseObject({
  url: z.string(),
  address: z.string(),
  required: z.boolean(),
  result: z.enum(["pass", "fail", "warn", "not-testable", "skipped"]),
  stage: checkStage.nullable().describe("the stage that decided; null when nothing ran"),
  code: z.number().nullable().describe("the error code of a failure (12002, 12007, 12029, 12030, 12175, 407)"),
  hop: z.string().nullable().describe("which hop failed (the proxy or the target)"),
  httpStatus: z.number().nullable(),
  ms: z.number(),
  message: z.string(),
  stages: z.array(z.looseObject({ stage: checkStage, result: z.enum(["pass", "fail", "warn", "skipped"]), ms: z.number(), detail: z.string() })),
});
export const checkRecord = z.looseObject({
  id: z.number(),
  state: z.enum(["running", "done", "failed"]),
  requestedBy: z.string(),
  server: z.string().nullable(),
  request: z.record(z.string(), z.unknown()),
  result: z
    .looseObject({
      report: z.looseObject({ ok: z.boolean(), route: z.string(), summary: z.record(z.string(), z.number()), results: z.array(checkResult) }),
      transition: z.enum(["raised", "unchanged", "recovered", "ok"]).optional().describe("the site's check: what it did to the status"),
      statusMessage: z.number().nullable().optional(),
      component: z.enum(["OK", "Critical"]).optional(),
      omitted: z.array(z.record(z.string(), z.unknown())).optional().describe("a server's check: entries left out and why"),
    })
    .nullable()
    .optional()
    .describe("every endpoint with its stages, when done"),
  error: z.looseObject({ code: z.union([z.string(), z.number()]), message: z.string() }).nullable(),
  startedAt: time,
  finishedAt: time.nullable(),
});

export const token = z.looseObject({ name: z.string(), role: z.enum(ADMIN_ROLES), readOnly: z.boolean(), createdAt: time, revokedAt: time.nullable() });
export const adminUser = z.object({ kind: z.enum(["user", "group"]), value: z.string(), role: z.enum(ADMIN_ROLES), createdAt: time, updatedAt: time });
export const newToken = token.extend({ token: z.string().describe("shown this once; the site keeps only its hash") });
export const auditEntry = z.looseObject({
  id: z.number(),
  time,
  actor: z.string().describe("the admin token's name, or the local user for the CLI"),
  via: z.string().describe("api or cli"),
  action: z.string().describe("service.method, e.g. proxies.set"),
  object: z.string().describe("e.g. server/scp01.contoso.com/proxy"),
  before: z.unknown().describe("the object before, secrets redacted; null when it did not exist"),
  after: z.unknown().describe("the object after, secrets redacted; null when it no longer exists"),
});

export const error = z
  .object({
    error: z.looseObject({
      code: z.union([z.string(), z.number()]).describe("stable code: VALIDATION, NOT_FOUND, ROUTE_NOT_FOUND, CONFLICT, ADMIN_TOKEN, FORBIDDEN, a network code..."),
      kind: z.string(),
      message: z.string(),
      field: z.string().optional().describe("the field at fault (validation, not found, conflict)"),
      rule: z.string().optional().describe("the rule it breaks (validation)"),
      errors: z
        .array(
          z.object({
            field: z.string().describe("the API's field name or path, e.g. deploy.trafficAlert.thresholdGb or trustedRoots.0"),
            rule: z.string().describe("the rule it breaks"),
            message: z.string().describe("the field in words and the rule, e.g. \"14-day threshold (GB): must be a number of GB above 0\""),
          }),
        )
        .optional()
        .describe("validation: every field problem of the request, the top-level field first; a form shows each beside its field"),
    }),
  })
  .describe("Every error answer has this shape");

/**
 * The shapes the OpenAPI document names (components/schemas): a response refers to them by name,
 * so the console's generated types have one type per shape.
 */
export const named = z.registry<{ id: string }>();
for (const [id, schema] of Object.entries({
  Site: site, Server: server, Role: role, Account: account, ProxyConfig: proxyConfig, ProxyDecision: proxyDecision,
  StatusMessage: statusMessage, ComponentStatus: componentStatus, Client: client, BulkToken: bulkToken, ClientSettings: clientSettings, ClientCommunication: clientCommunication,
  CertInfo: certInfo, TrafficAlert: trafficAlert, CmgInstance: cmgInstance, CmgDeploy: cmgDeploy, Cmg: cmg, CmgDeleted: cmgDeleted, CmgTraffic: cmgTraffic,
  AnalyzeCheck: analyzeCheck, CmgAnalysis: cmgAnalysis, SigningKey: signingKey, KeyRotation: keyRotation, ConnectionPointCert: connectionPointCert,
  NewBulkToken: newBulkToken, JoinToken: joinToken, NewJoinToken: newJoinToken, Setting: setting, DirectoryStatus: directoryStatus, ConsoleSession: consoleSession,
  Update: update, SyncResult: syncResult, FeedResult: feedResult, Adr: adr, AdrDeleted: adrDeleted, AdrFile: adrFile, AdrRun: adrRun,
  RuleAfterSync: ruleAfterSync, SyncSchedule: syncSchedule,
  Endpoint: endpoint, EndpointSelection: endpointSelection, CheckResult: checkResult, CheckRecord: checkRecord, AdminToken: token, NewAdminToken: newToken, AdminUser: adminUser, AuditEntry: auditEntry,
} satisfies Record<string, z.ZodType>)) named.add(schema, { id });

/**
 * Monitoring > Cloud Management: the CMG's traffic over 14 days per role, its instances and their
 * tunnels (live), and the clients with their connection type and last contact.
 */
import { useState } from "react";
import { Badge, Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Dropdown, Field, Input, MessageBar, MessageBarBody, Option, Spinner, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from "@fluentui/react-components";
import { api, type Client, type Cmg, type CmgTraffic } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { DataTable } from "../table.tsx";
import { ErrorBar, PageTitle, Show, errorOf, fieldErrors, useGet } from "../ui.tsx";
import { statusColor } from "./Cmg.tsx";

/** One bar segment of the chart: a day, a role kind, bytes to the devices. */
export interface TrafficPoint {
  day: string;
  role: string;
  bytes: number;
}

/** How the connection points name the role kinds of their traffic. */
const ROLE_KINDS: Record<string, string> = { mp: "Management point", sup: "Software update point", tunnel: "Tunnel (TLS and framing)", "-": "Other role", "": "Before the breakdown" };

/** The summary's per-day, per-role-kind series as chart points (bytes to the devices). */
export function trafficPoints(t: CmgTraffic): TrafficPoint[] {
  return t.perDayByRoleKind.map((r) => ({ day: r.day, role: ROLE_KINDS[r.roleKind] ?? r.roleKind, bytes: r.bytesToClients }));
}

const PALETTE = ["#0f6cbd", "#c50f1f", "#107c10", "#8764b8", "#ca5010", "#038387"];

export function TrafficChart({ points, days }: { points: TrafficPoint[]; days: string[] }) {
  const roles = [...new Set(points.map((p) => p.role))].sort();
  const at = (day: string, role: string) => points.filter((p) => p.day === day && p.role === role).reduce((a, p) => a + p.bytes, 0);
  const max = Math.max(1, ...days.map((d) => roles.reduce((a, r) => a + at(d, r), 0)));
  const W = 700;
  const H = 220;
  const bw = (W - 60) / days.length;
  return (
    <figure style={{ margin: 0 }}>
      <svg width={W} height={H + 40} role="img" aria-label={`Outbound traffic per day over the last 14 days, per role: ${roles.join(", ") || "no traffic"}`}>
        {days.map((d, i) => {
          let y = H;
          return (
            <g key={d}>
              {roles.map((r, j) => {
                const h = (at(d, r) / max) * (H - 10);
                y -= h;
                return <rect key={r} x={50 + i * bw + 2} y={y} width={bw - 4} height={h} fill={PALETTE[j % PALETTE.length]} />;
              })}
              <text x={50 + i * bw + bw / 2} y={H + 14} fontSize="10" textAnchor="middle">
                {d.slice(5)}
              </text>
            </g>
          );
        })}
        <line x1={48} y1={H} x2={W} y2={H} stroke="#616161" />
        <text x={4} y={14} fontSize="10">
          {formatBytes(max)}
        </text>
      </svg>
      <figcaption>
        {roles.map((r, j) => (
          <span key={r} style={{ marginRight: 16 }}>
            <span aria-hidden style={{ display: "inline-block", width: 10, height: 10, background: PALETTE[j % PALETTE.length], marginRight: 4 }} />
            {r}: {formatBytes(points.filter((p) => p.role === r).reduce((a, p) => a + p.bytes, 0))}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

export function formatBytes(n: number): string {
  const u = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function CmgMonitoringPage() {
  const cmgs = useGet<Cmg[]>("/api/v1/cmgs", ["cmg"]);
  const [chosen, setChosen] = useState<string>();
  const name = chosen ?? cmgs.data?.[0]?.name;
  const cmg = cmgs.data?.find((c) => c.name === name);
  // Clients whose last contact came through a CMG (the site does not tell which CMG a client used).
  const internetClients = useGet<Client[]>("/api/v1/clients?connectionType=internet", ["status"]);
  const traffic = useGet<CmgTraffic>(name ? `/api/v1/cmgs/${encodeURIComponent(name)}/traffic?days=14` : null, ["cmg"]);
  return (
    <>
      <PageTitle>Cloud Management Gateway</PageTitle>
      <Show l={cmgs} what="Cloud management gateways">
        {(list) =>
          list.length === 0 ? (
            <p>No cloud management gateway yet.</p>
          ) : (
            <>
              <Field label="Cloud management gateway">
                <Dropdown value={name ?? ""} selectedOptions={name ? [name] : []} onOptionSelect={(_, d) => setChosen(d.optionValue)}>
                  {list.map((c) => (
                    <Option key={c.name} value={c.name}>
                      {c.name}
                    </Option>
                  ))}
                </Dropdown>
              </Field>
              {cmg && (
                <>
                  <p>
                    Status:{" "}
                    <Badge appearance="tint" color={statusColor(cmg.status)}>
                      {cmg.status}
                    </Badge>{" "}
                    {cmg.statusReason}
                  </p>
                  <h2 style={{ fontSize: 18 }}>Traffic over the last 14 days, per role</h2>
                  {name && (
                    <Show l={traffic} what="CMG traffic">
                      {(d) => (
                        <>
                          <TrafficChart points={trafficPoints(d)} days={d.perDay.map((p) => p.day)} />
                          <p>
                            Outbound traffic over 14 days: {formatBytes(d.outbound14Days)}
                            {d.alert ? ` (alert threshold ${d.alert.thresholdGb} GB: warning at ${d.alert.warningPct}%, critical at ${d.alert.criticalPct}%)` : " (no traffic alert)"}. Requests: {d.total.requests}, failed: {d.total.failed}.
                          </p>
                        </>
                      )}
                    </Show>
                  )}
                  <p data-testid="internet-clients">
                    Clients connected through a cloud management gateway (last contact over the internet):{" "}
                    {internetClients.data ? internetClients.data.length : internetClients.error ? internetClients.error.message : "..."}
                  </p>
                  <h2 style={{ fontSize: 18 }}>Instances and their tunnels</h2>
                  <Table aria-label="Instances and tunnels" size="small">
                    <TableHeader>
                      <TableRow>
                        <TableHeaderCell>Instance</TableHeaderCell>
                        <TableHeaderCell>Client URL</TableHeaderCell>
                        <TableHeaderCell>Tunnel endpoint</TableHeaderCell>
                        <TableHeaderCell>Connection points</TableHeaderCell>
                        <TableHeaderCell>Restarts</TableHeaderCell>
                      </TableRow>
                    </TableHeader>
                    <TableBody>
                      {cmg.instances.map((i) => (
                        <TableRow key={i.index}>
                          <TableCell>{i.index}</TableCell>
                          <TableCell>{i.clientUrl}</TableCell>
                          <TableCell>
                            {i.tunnelHost}:{i.tunnelPort}
                          </TableCell>
                          <TableCell>{i.connectionPoints.map((c) => `${c.server}: ${c.connected ? "connected" : `not connected (${c.detail})`}`).join("; ") || "no report yet"}</TableCell>
                          <TableCell>{i.restarts}</TableCell>
                        </TableRow>
                      ))}
                    </TableBody>
                  </Table>
                </>
              )}
            </>
          )
        }
      </Show>
    </>
  );
}

const CONNECTION: Record<string, string> = { "": "All", intranet: "Intranet", internet: "Internet" };
const APPROVAL: Record<string, string> = { "": "All", true: "Approved", false: "Awaiting approval" };

export function ClientsPage() {
  const [name, setName] = useState("");
  const [connectionType, setConnectionType] = useState("");
  const [approved, setApproved] = useState("");
  const [applied, setApplied] = useState({ name: "", connectionType: "", approved: "" });
  const q = new URLSearchParams();
  if (applied.name.trim()) q.set("name", applied.name.trim());
  if (applied.connectionType) q.set("connectionType", applied.connectionType);
  if (applied.approved) q.set("approved", applied.approved);
  const clients = useGet<Client[]>(`/api/v1/clients${q.size ? `?${q}` : ""}`, ["status"]);
  const [actionError, setActionError] = useState<Error>();
  const [notice, setNotice] = useState<string>();
  const [approvingKey, setApprovingKey] = useState<Client>();
  const errors = clients.error ? fieldErrors(clients.error, ["name", "connectionType", "approved"]) : {};
  const err = (k: string) => ({ validationMessage: errors[k], validationState: errors[k] ? ("error" as const) : ("none" as const) });
  const act = async (c: Client, method: "POST" | "PUT" | "DELETE", path: string, done: string) => {
    try {
      await api(method, `/api/v1/clients/${encodeURIComponent(c.id)}/${path}`);
      setActionError(undefined);
      setNotice(done);
      clients.reload();
    } catch (e) {
      setNotice(undefined);
      setActionError(e as Error);
    }
  };
  return (
    <>
      <PageTitle>Clients</PageTitle>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ name, connectionType, approved });
        }}
        style={{ display: "flex", gap: 8, alignItems: "start", flexWrap: "wrap", marginBottom: 12 }}
        aria-label="Client filters"
      >
        <Field label="Computer name" {...err("name")}>
          <Input value={name} onChange={(_, d) => setName(d.value)} />
        </Field>
        <Field label="Connection type" {...err("connectionType")}>
          <Dropdown value={CONNECTION[connectionType]} selectedOptions={[connectionType]} onOptionSelect={(_, d) => setConnectionType(d.optionValue ?? "")}>
            {Object.entries(CONNECTION).map(([k, v]) => (
              <Option key={k} value={k}>
                {v}
              </Option>
            ))}
          </Dropdown>
        </Field>
        <Field label="Approval" {...err("approved")}>
          <Dropdown value={APPROVAL[approved]} selectedOptions={[approved]} onOptionSelect={(_, d) => setApproved(d.optionValue ?? "")}>
            {Object.entries(APPROVAL).map(([k, v]) => (
              <Option key={k} value={k}>
                {v}
              </Option>
            ))}
          </Dropdown>
        </Field>
        <Button type="submit" appearance="primary" style={{ marginTop: 26 }}>
          Apply filters
        </Button>
      </form>
      {errors.form && <ErrorBar error={new Error(errors.form)} />}
      <ErrorBar error={actionError} />
      {notice && (
        <MessageBar intent="success" role="status">
          <MessageBarBody>{notice}</MessageBarBody>
        </MessageBar>
      )}
      {clients.data === undefined && !clients.error && <Spinner label="Loading The client list" size="small" />}
      {clients.data && (
        <DataTable
          label="Clients"
          rows={clients.data}
          rowKey={(c) => c.id}
          rowProps={(c) => ({ "data-client": c.name })}
          initialSort={{ column: "name", direction: "ascending" }}
          empty="No client matches the filters."
          columns={[
            { id: "name", label: "Name", width: "14%", text: (c) => c.name },
            { id: "id", label: "Client ID", width: "24%", truncate: true, text: (c) => c.id },
            { id: "connection", label: "Connection type", width: "11%", text: (c) => (c.connectionType ? CONNECTION[c.connectionType]! : "Not yet") },
            { id: "contact", label: "Last contact", width: "15%", text: (c) => (c.lastContactAt ? new Date(c.lastContactAt).toLocaleString() : "Never"), sortValue: (c) => c.lastContactAt ?? "" },
            { id: "approved", label: "Approved", width: "9%", filter: true, text: (c) => (c.approved ? "Yes" : "No") },
            { id: "blocked", label: "Blocked", width: "9%", filter: true, text: (c) => (c.blocked ? "Yes" : "No") },
            {
              id: "actions",
              label: "Actions",
              width: "18%",
              unsortable: true,
              text: () => "",
              render: (c) => (
                <div style={{ display: "flex", gap: 4, flexWrap: "wrap" }}>
                  {!c.approved && (
                    <ChangeButton size="small" onClick={() => void act(c, "POST", "approve", `${c.name} is approved.`)} aria-label={`Approve ${c.name}`}>
                      Approve
                    </ChangeButton>
                  )}
                  {c.tokenKey !== null && (
                    <ChangeButton size="small" onClick={() => setApprovingKey(c)} aria-label={`Approve new key for ${c.name}`}>
                      Approve new key
                    </ChangeButton>
                  )}
                  {c.blocked ? (
                    <ChangeButton size="small" onClick={() => void act(c, "DELETE", "block", `${c.name} is unblocked.`)} aria-label={`Unblock ${c.name}`}>
                      Unblock
                    </ChangeButton>
                  ) : (
                    <ChangeButton size="small" onClick={() => void act(c, "PUT", "block", `${c.name} is blocked.`)} aria-label={`Block ${c.name}`}>
                      Block
                    </ChangeButton>
                  )}
                </div>
              ),
            },
          ]}
        />
      )}
      {approvingKey && (
        <ApproveKey
          client={approvingKey}
          onClose={() => setApprovingKey(undefined)}
          onApproved={(c) => {
            setApprovingKey(undefined);
            setActionError(undefined);
            setNotice(`${c.name} may bind key ${c.approvedTokenKey ?? ""} at its next registration.`);
            clients.reload();
          }}
        />
      )}
    </>
  );
}

const KEY_LABELS: Record<string, string> = { jkt: "Key thumbprint" };

/**
 * `opencmg site clients approve-key ID -- JKT`: a device that lost its bound key (reinstalled, disk
 * replaced) is refused with the new key's thumbprint; approved here, it binds that key at its next
 * registration.
 */
function ApproveKey({ client, onClose, onApproved }: { client: Client; onClose: () => void; onApproved: (c: Client) => void }) {
  const [jkt, setJkt] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const approve = async () => {
    try {
      onApproved(await api<Client>("POST", `/api/v1/clients/${encodeURIComponent(client.id)}/approve-key`, { jkt }));
    } catch (e) {
      setErrors(fieldErrors(e, ["jkt"], KEY_LABELS));
    }
  };
  return (
    <Dialog open onOpenChange={(_, d) => !d.open && onClose()} modalType="alert">
      <DialogSurface>
        <DialogBody>
          <DialogTitle>Approve a new key for {client.name}</DialogTitle>
          <DialogContent>
            <p>
              {client.name}'s tokens are bound to key {client.tokenKey}. Approve a new key only for a device you know lost that key (reinstalled, disk replaced): the device binds the approved key at its next registration, and the old key's tokens stop working. The site's refusal of the device names the new key's thumbprint.
            </p>
            {errors.form && <ErrorBar error={new Error(errors.form)} />}
            <Field label={KEY_LABELS.jkt} hint="43 characters, as the refusal and the client's log name it." {...errorOf(errors, "jkt")}>
              <Input value={jkt} onChange={(_, d) => setJkt(d.value)} />
            </Field>
          </DialogContent>
          <DialogActions>
            <ChangeButton appearance="primary" onClick={() => void approve()}>
              Approve key
            </ChangeButton>
            <Button onClick={onClose}>Cancel</Button>
          </DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}

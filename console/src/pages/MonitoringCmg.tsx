/**
 * Monitoring > Cloud Management: the CMG's traffic over 14 days per role, its instances and their
 * tunnels (live), and the clients with their connection type and last contact.
 */
import { useState } from "react";
import { Badge, Dropdown, Field, Option, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from "@fluentui/react-components";
import type { Cmg } from "../api.ts";
import { PageTitle, Show, useGet } from "../ui.tsx";
import { statusColor } from "./Cmg.tsx";

/** One bar of the chart: a day, a role, bytes out. */
export interface TrafficPoint {
  day: string;
  role: string;
  bytes: number;
}

type TrafficRow = { day?: string; date?: string; role?: string; bytes?: number; bytesOut?: number; requests?: number };

/** The traffic answer as points, whether the API lists rows or gives series per role. */
export function trafficPoints(data: unknown): TrafficPoint[] {
  const d = data as { days?: TrafficRow[]; rows?: TrafficRow[]; series?: { role: string; points: TrafficRow[] }[] } | TrafficRow[] | null;
  if (!d) return [];
  const rows: TrafficRow[] = Array.isArray(d) ? d : (d.rows ?? d.days ?? (d.series ?? []).flatMap((s) => s.points.map((p) => ({ ...p, role: s.role }))));
  return rows.map((r) => ({ day: String(r.day ?? r.date ?? "").slice(0, 10), role: r.role ?? "all", bytes: Number(r.bytes ?? r.bytesOut ?? r.requests ?? 0) }));
}

const PALETTE = ["#0f6cbd", "#c50f1f", "#107c10", "#8764b8", "#ca5010", "#038387"];

function lastDays(n: number): string[] {
  const out: string[] = [];
  const today = new Date();
  for (let i = n - 1; i >= 0; i--) out.push(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i)).toISOString().slice(0, 10));
  return out;
}

export function TrafficChart({ points }: { points: TrafficPoint[] }) {
  const days = lastDays(14);
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
  const traffic = useGet<unknown>(name ? `/api/v1/cmgs/${encodeURIComponent(name)}/traffic?days=14` : null, ["cmg"]);
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
                          <TrafficChart points={trafficPoints(d)} />
                          {typeof (d as { connectedClients?: number }).connectedClients === "number" && <p>Connected clients: {(d as { connectedClients: number }).connectedClients}</p>}
                        </>
                      )}
                    </Show>
                  )}
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

interface ClientRow {
  name?: string;
  netbiosName?: string;
  id?: string;
  smsId?: string;
  connectionType?: string;
  lastContact?: string;
  lastSeenAt?: string;
  lastContactAt?: string;
  approved?: boolean;
  blocked?: boolean;
}

export function ClientsPage() {
  const clients = useGet<ClientRow[] | { items: ClientRow[] }>("/api/v1/clients", ["status"]);
  return (
    <>
      <PageTitle>Clients</PageTitle>
      <Show l={clients} what="The client list">
        {(data) => {
          const list = Array.isArray(data) ? data : data.items;
          return (
            <Table aria-label="Clients" size="small">
              <TableHeader>
                <TableRow>
                  <TableHeaderCell>Name</TableHeaderCell>
                  <TableHeaderCell>Client ID</TableHeaderCell>
                  <TableHeaderCell>Connection type</TableHeaderCell>
                  <TableHeaderCell>Last contact</TableHeaderCell>
                  <TableHeaderCell>Approved</TableHeaderCell>
                </TableRow>
              </TableHeader>
              <TableBody>
                {list.map((c, i) => (
                  <TableRow key={c.smsId ?? c.id ?? i}>
                    <TableCell>{c.name ?? c.netbiosName ?? ""}</TableCell>
                    <TableCell>{c.smsId ?? c.id ?? ""}</TableCell>
                    <TableCell>{c.connectionType === "internet" ? "Internet" : c.connectionType === "intranet" ? "Intranet" : (c.connectionType ?? "")}</TableCell>
                    <TableCell>{c.lastContact ?? c.lastContactAt ?? c.lastSeenAt ?? ""}</TableCell>
                    <TableCell>{c.blocked ? "Blocked" : c.approved === undefined ? "" : c.approved ? "Yes" : "No"}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          );
        }}
      </Show>
    </>
  );
}

/**
 * Internet endpoints (document 002): what each role and feature must reach, the exports as
 * downloads, and a connectivity check run with each endpoint's stages (dns, proxy, connect, tls, http).
 */
import { useState } from "react";
import { Badge, Button, Dropdown, Field, Input, Link, Option, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from "@fluentui/react-components";
import { api, ApiError } from "../api.ts";
import { ErrorBar, NotAvailable, PageTitle, Show, useGet } from "../ui.tsx";

interface EndpointRow {
  id?: string;
  address: string;
  resolvedAddress?: string;
  roles?: string[];
  features?: string[];
  feature?: string;
  section?: string;
  ports?: { scheme?: string; port?: number }[];
  required?: boolean;
  cloud?: string;
  notes?: string;
}

interface StageRow {
  stage: string;
  result: string;
  ms?: number;
  detail?: string;
}
interface CheckRow {
  url: string;
  result: string;
  code?: number | string | null;
  hop?: string | null;
  message?: string;
  stages?: StageRow[];
}

const FORMATS = ["text", "json", "csv", "squid", "pac"] as const;
const RESULT_COLOR: Record<string, "success" | "danger" | "warning" | "informative"> = { pass: "success", fail: "danger", warn: "warning" };

export function EndpointsPage() {
  const [role, setRole] = useState("");
  const [cloud, setCloud] = useState("public");
  const [server, setServer] = useState("");
  const q = new URLSearchParams();
  if (role) q.set("role", role);
  if (cloud) q.set("cloud", cloud);
  const endpoints = useGet<EndpointRow[] | { endpoints: EndpointRow[] }>(`/api/v1/endpoints?${q}`);
  const [check, setCheck] = useState<CheckRow[]>();
  const [checkError, setCheckError] = useState<ApiError | Error>();
  const [running, setRunning] = useState(false);
  const runCheck = async () => {
    setRunning(true);
    setCheckError(undefined);
    try {
      const r = await api<{ results?: CheckRow[]; report?: { results: CheckRow[] } } | CheckRow[]>("POST", "/api/v1/endpoints/checks", { ...(role ? { role: [role] } : {}), ...(server ? { server } : {}), cloud });
      setCheck(Array.isArray(r) ? r : (r.results ?? r.report?.results ?? []));
    } catch (e) {
      setCheckError(e as Error);
    } finally {
      setRunning(false);
    }
  };
  return (
    <>
      <PageTitle>Internet endpoints</PageTitle>
      <form onSubmit={(e) => e.preventDefault()} style={{ display: "flex", gap: 8, alignItems: "end", flexWrap: "wrap" }} aria-label="Endpoint selection">
        <Field label="Role or feature">
          <Input value={role} onChange={(_, d) => setRole(d.value)} placeholder="all" />
        </Field>
        <Field label="Cloud">
          <Dropdown value={cloud === "usgov" ? "US Government" : "Public"} selectedOptions={[cloud]} onOptionSelect={(_, d) => setCloud(d.optionValue ?? "public")}>
            <Option value="public">Public</Option>
            <Option value="usgov">US Government</Option>
          </Dropdown>
        </Field>
      </form>
      <h2 style={{ fontSize: 18 }}>Exports</h2>
      <p>
        {FORMATS.map((f) => (
          <span key={f} style={{ marginRight: 12 }}>
            <Link href={`/api/v1/endpoints/export?${new URLSearchParams({ ...Object.fromEntries(q), format: f })}`} download={`opencmg-endpoints.${f === "text" ? "txt" : f === "squid" ? "conf" : f}`}>
              Download {f}
            </Link>
          </span>
        ))}
      </p>
      <Show l={endpoints} what="The internet endpoint list">
        {(data) => {
          const list = Array.isArray(data) ? data : data.endpoints;
          return (
            <Table aria-label="Internet endpoints" size="small">
              <TableHeader>
                <TableRow>
                  <TableHeaderCell>Endpoint</TableHeaderCell>
                  <TableHeaderCell>Roles and features</TableHeaderCell>
                  <TableHeaderCell>Ports</TableHeaderCell>
                  <TableHeaderCell>Required</TableHeaderCell>
                </TableRow>
              </TableHeader>
              <TableBody>
                {list.map((e, i) => (
                  <TableRow key={`${e.id ?? e.address}-${i}`}>
                    <TableCell>{e.resolvedAddress ?? e.address}</TableCell>
                    <TableCell>{[...(e.roles ?? []), ...(e.features ?? []), ...(e.feature ? [e.feature] : [])].join(", ")}</TableCell>
                    <TableCell>{(e.ports ?? []).map((p) => `${p.scheme ?? ""} ${p.port ?? ""}`.trim()).join(", ")}</TableCell>
                    <TableCell>{e.required === undefined ? "" : e.required ? "Yes" : "No"}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          );
        }}
      </Show>
      <h2 style={{ fontSize: 18 }}>Connectivity check</h2>
      <div style={{ display: "flex", gap: 8, alignItems: "end" }}>
        <Field label="Through the proxy of site system server (FQDN)">
          <Input value={server} onChange={(_, d) => setServer(d.value)} />
        </Field>
        <Button appearance="primary" onClick={() => void runCheck()} disabled={running}>
          Run check
        </Button>
      </div>
      {checkError instanceof ApiError && checkError.notAvailable ? <NotAvailable what="The connectivity check" /> : <ErrorBar error={checkError} />}
      {running && <p role="status">Checking the endpoints...</p>}
      {check && (
        <Table aria-label="Check results" size="small">
          <TableHeader>
            <TableRow>
              <TableHeaderCell>Endpoint</TableHeaderCell>
              <TableHeaderCell>Result</TableHeaderCell>
              <TableHeaderCell>Stages</TableHeaderCell>
              <TableHeaderCell>Message</TableHeaderCell>
            </TableRow>
          </TableHeader>
          <TableBody>
            {check.map((c, i) => (
              <TableRow key={`${c.url}-${i}`}>
                <TableCell>{c.url}</TableCell>
                <TableCell>
                  <Badge appearance="tint" color={RESULT_COLOR[c.result] ?? "informative"}>
                    {c.result}
                  </Badge>
                </TableCell>
                <TableCell>{(c.stages ?? []).map((s) => `${s.stage}: ${s.result}`).join(" > ")}</TableCell>
                <TableCell>{[c.code, c.hop, c.message].filter(Boolean).join(" ")}</TableCell>
              </TableRow>
            ))}
          </TableBody>
        </Table>
      )}
    </>
  );
}

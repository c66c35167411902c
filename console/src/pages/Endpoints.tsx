/**
 * Internet endpoints (document 002): what each role and feature must reach, the exports as
 * downloads, and a connectivity check run with each endpoint's stages (dns, proxy, connect, tls, http).
 */
import { useEffect, useState } from "react";
import { Badge, Button, Dropdown, Field, Input, Link, Option, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from "@fluentui/react-components";
import { api, get, type CheckRecord, type EndpointSelection } from "../api.ts";
import { ChangeButton } from "../roles.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";

const FORMATS = ["text", "json", "csv", "squid", "pac"] as const;
const RESULT_COLOR: Record<string, "success" | "danger" | "warning" | "informative"> = { pass: "success", fail: "danger", warn: "warning" };
const CLOUDS: Record<string, string> = { "": "The site's CMGs' cloud", public: "Public", usgov: "US Government" };
/** How often the page asks whether a running check is done. */
const CHECK_POLL_MS = 1000;

interface Selection {
  role: string;
  feature: string;
  cloud: string;
}

function selectionQuery(f: Selection): URLSearchParams {
  const q = new URLSearchParams();
  if (f.role.trim()) q.set("role", f.role.trim());
  if (f.feature.trim()) q.set("feature", f.feature.trim());
  if (f.cloud) q.set("cloud", f.cloud);
  return q;
}

export function EndpointsPage() {
  const [form, setForm] = useState<Selection>({ role: "", feature: "", cloud: "" });
  const [applied, setApplied] = useState<Selection>(form);
  const [pacProxy, setPacProxy] = useState("");
  const q = selectionQuery(applied);
  const endpoints = useGet<EndpointSelection>(`/api/v1/endpoints${q.size ? `?${q}` : ""}`);
  const errors = endpoints.error ? fieldErrors(endpoints.error, ["role", "feature", "cloud"]) : {};
  const err = (k: string) => ({ validationMessage: errors[k], validationState: errors[k] ? ("error" as const) : ("none" as const) });
  return (
    <>
      <PageTitle>Internet endpoints</PageTitle>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(form);
        }}
        style={{ display: "flex", gap: 8, alignItems: "start", flexWrap: "wrap" }}
        aria-label="Endpoint selection"
      >
        <Field label="Roles (comma-separated)" hint="default: the roles installed at the site" {...err("role")}>
          <Input value={form.role} onChange={(_, d) => setForm((f) => ({ ...f, role: d.value }))} />
        </Field>
        <Field label="Features (comma-separated)" hint="e.g. cmg, software-updates" {...err("feature")}>
          <Input value={form.feature} onChange={(_, d) => setForm((f) => ({ ...f, feature: d.value }))} />
        </Field>
        <Field label="Cloud" {...err("cloud")}>
          <Dropdown value={CLOUDS[form.cloud]} selectedOptions={[form.cloud]} onOptionSelect={(_, d) => setForm((f) => ({ ...f, cloud: d.optionValue ?? "" }))}>
            {Object.entries(CLOUDS).map(([k, v]) => (
              <Option key={k} value={k}>
                {v}
              </Option>
            ))}
          </Dropdown>
        </Field>
        <Button type="submit" appearance="primary" style={{ marginTop: 26 }}>
          Show endpoints
        </Button>
      </form>
      {errors.form && <ErrorBar error={new Error(errors.form)} />}
      <h2 style={{ fontSize: 18 }}>Exports</h2>
      <div style={{ display: "flex", gap: 12, alignItems: "end", flexWrap: "wrap" }}>
        {FORMATS.filter((f) => f !== "pac").map((f) => (
          <Link key={f} href={`/api/v1/endpoints/export?${new URLSearchParams([...q, ["format", f]])}`} download>
            Download {f}
          </Link>
        ))}
        <Field label="Proxy of the PAC file (host:port)">
          <Input value={pacProxy} onChange={(_, d) => setPacProxy(d.value)} />
        </Field>
        {pacProxy.trim() ? (
          <Link href={`/api/v1/endpoints/export?${new URLSearchParams([...q, ["format", "pac"], ["proxy", pacProxy.trim()]])}`} download>
            Download pac
          </Link>
        ) : (
          <span>Download pac: give the proxy first</span>
        )}
      </div>
      <Show l={endpoints} what="The internet endpoint list">
        {(data) => (
          <>
            <Table aria-label="Internet endpoints" size="small">
              <TableHeader>
                <TableRow>
                  <TableHeaderCell>Endpoint</TableHeaderCell>
                  <TableHeaderCell>Roles</TableHeaderCell>
                  <TableHeaderCell>Features</TableHeaderCell>
                  <TableHeaderCell>Ports</TableHeaderCell>
                  <TableHeaderCell>Required</TableHeaderCell>
                </TableRow>
              </TableHeader>
              <TableBody>
                {data.endpoints.map((e) => (
                  <TableRow key={e.id}>
                    <TableCell>{e.resolvedAddress}</TableCell>
                    <TableCell>{(e.roles ?? []).join(", ")}</TableCell>
                    <TableCell>{(e.features ?? []).join(", ")}</TableCell>
                    <TableCell>{(e.ports ?? []).map((p) => `${p.scheme ?? ""} ${p.port ?? ""}`.trim()).join(", ")}</TableCell>
                    <TableCell>{e.required ? "Yes" : "No"}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
            {data.omitted.length > 0 && <p>Left out: {data.omitted.map((o) => `${o.address} (${o.reason})`).join("; ")}</p>}
          </>
        )}
      </Show>
      <ConnectivityCheck />
    </>
  );
}

/** Starts a check (POST answers at once with the running check), then reads it until it is done. */
function ConnectivityCheck() {
  const [server, setServer] = useState("");
  const [check, setCheck] = useState<CheckRecord>();
  const [errors, setErrors] = useState<Record<string, string>>({});
  const running = check?.state === "running";
  useEffect(() => {
    if (!check || check.state !== "running") return;
    const t = setTimeout(() => {
      get<CheckRecord>(`/api/v1/endpoints/checks/${check.id}`)
        .then(setCheck)
        .catch((e: unknown) => setErrors(fieldErrors(e, [])));
    }, CHECK_POLL_MS);
    return () => clearTimeout(t);
  }, [check]);
  const start = async () => {
    setErrors({});
    try {
      setCheck(await api<CheckRecord>("POST", "/api/v1/endpoints/checks", server.trim() ? { server: server.trim() } : {}));
    } catch (e) {
      setCheck(undefined);
      setErrors(fieldErrors(e, ["server"]));
    }
  };
  const report = check?.result?.report;
  return (
    <>
      <h2 style={{ fontSize: 18 }}>Connectivity check</h2>
      <div style={{ display: "flex", gap: 8, alignItems: "start" }}>
        <Field
          label="Through the proxy of site system server (FQDN)"
          hint="empty: the site's own check from the service connection point's server"
          validationMessage={errors.server}
          validationState={errors.server ? "error" : "none"}
        >
          <Input value={server} onChange={(_, d) => setServer(d.value)} />
        </Field>
        <ChangeButton appearance="primary" onClick={() => void start()} disabled={running} style={{ marginTop: 26 }}>
          Run check
        </ChangeButton>
      </div>
      {errors.form && <ErrorBar error={new Error(errors.form)} />}
      {running && <p role="status">Check {check.id} is running: checking the endpoints...</p>}
      {check?.state === "failed" && <ErrorBar error={new Error(`Check ${check.id} failed: ${check.error?.message ?? "no reason given"}`)} />}
      {check?.state === "done" && report && (
        <>
          <p role="status" data-testid="check-summary">
            Check {check.id} {report.ok ? "passed" : "found problems"} ({report.route}): {Object.entries(report.summary)
              .map(([k, v]) => `${k} ${v}`)
              .join(", ")}
            .
          </p>
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
              {report.results.map((c, i) => (
                <TableRow key={`${c.url}-${i}`}>
                  <TableCell>{c.url}</TableCell>
                  <TableCell>
                    <Badge appearance="tint" color={RESULT_COLOR[c.result] ?? "informative"}>
                      {c.result}
                    </Badge>
                  </TableCell>
                  <TableCell>
                    <ol aria-label={`Stages of ${c.url}`} style={{ display: "flex", flexWrap: "wrap", gap: 6, listStyle: "none", margin: 0, padding: 0 }}>
                      {c.stages.map((s) => (
                        <li key={s.stage} title={s.detail}>
                          <Badge appearance="outline" color={RESULT_COLOR[s.result] ?? "informative"}>
                            {s.stage}: {s.result}
                          </Badge>
                        </li>
                      ))}
                    </ol>
                  </TableCell>
                  <TableCell>{[c.code, c.hop, c.message].filter((x) => x !== null && x !== "").join(" ")}</TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        </>
      )}
    </>
  );
}

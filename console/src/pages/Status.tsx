/** Monitoring > System Status: Component Status and Status Messages (with filters), both live. */
import { useState } from "react";
import { Badge, Button, Dropdown, Field, Input, Option, Spinner, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from "@fluentui/react-components";
import type { ComponentStatus, Paged, StatusMessage } from "../api.ts";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";

const COLOR = { OK: "success", Warning: "warning", Critical: "danger" } as const;

export function ComponentStatusPage() {
  const comps = useGet<ComponentStatus[]>("/api/v1/status/components", ["status"]);
  return (
    <>
      <PageTitle>Component Status</PageTitle>
      <Show l={comps} what="Component status">
        {(list) => (
          <Table aria-label="Component status" size="small">
            <TableHeader>
              <TableRow>
                <TableHeaderCell>Status</TableHeaderCell>
                <TableHeaderCell>Site System</TableHeaderCell>
                <TableHeaderCell>Component</TableHeaderCell>
                <TableHeaderCell>Reason</TableHeaderCell>
                <TableHeaderCell>Last changed</TableHeaderCell>
              </TableRow>
            </TableHeader>
            <TableBody>
              {list.map((c) => (
                <TableRow key={`${c.server}/${c.component}`} data-component={c.component}>
                  <TableCell>
                    <Badge appearance="tint" color={COLOR[c.status]} data-testid={`component-${c.server}-${c.component}`}>
                      {c.status}
                    </Badge>
                  </TableCell>
                  <TableCell>{c.server}</TableCell>
                  <TableCell>{c.component}</TableCell>
                  <TableCell>{c.reason}</TableCell>
                  <TableCell>{new Date(c.updatedAt).toLocaleString()}</TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        )}
      </Show>
    </>
  );
}

const SEVERITIES = { "": "All", informational: "Informational", warning: "Warning", error: "Error" } as const;
const SOURCES = { "": "All", site: "Site", client: "Clients" } as const;

interface Filters {
  component: string;
  server: string;
  messageId: string;
  severity: keyof typeof SEVERITIES;
  source: keyof typeof SOURCES;
  since: string;
  until: string;
}
const NO_FILTERS: Filters = { component: "", server: "", messageId: "", severity: "", source: "", since: "", until: "" };
const PAGE_SIZE = 50;

/** The API's query for the filters (only the ones set; times as ISO-8601 in UTC). */
export function messagesQuery(f: Filters, cursor: number | undefined): string {
  const q = new URLSearchParams();
  if (f.component.trim()) q.set("component", f.component.trim());
  if (f.server.trim()) q.set("server", f.server.trim());
  if (f.messageId.trim()) q.set("messageId", f.messageId.trim());
  if (f.severity) q.set("severity", f.severity);
  if (f.source) q.set("source", f.source);
  const time = (v: string) => (Number.isNaN(new Date(v).getTime()) ? v : new Date(v).toISOString());
  if (f.since) q.set("since", time(f.since));
  if (f.until) q.set("until", time(f.until));
  q.set("limit", String(PAGE_SIZE));
  if (cursor !== undefined) q.set("cursor", String(cursor));
  return q.toString();
}

const FILTER_FIELDS = ["component", "server", "messageId", "severity", "source", "since", "until", "limit", "cursor"] as const;

/**
 * Where a message comes from: a site system, or a device with its client ID. A device's message
 * never reads as the site's, whatever name the device gave itself.
 */
export function sourceText(m: Pick<StatusMessage, "source" | "server" | "clientId">): string {
  return m.source === "site" ? m.server : `Client ${m.server} (${m.clientId ?? "unknown ID"})`;
}

export function StatusMessagesPage() {
  const [form, setForm] = useState<Filters>(NO_FILTERS);
  const [applied, setApplied] = useState<Filters>(NO_FILTERS);
  // The cursors of the pages before this one (the first page has none), so Previous goes back.
  const [cursors, setCursors] = useState<(number | undefined)[]>([undefined]);
  const cursor = cursors[cursors.length - 1];
  const msgs = useGet<Paged<StatusMessage>>(`/api/v1/status/messages?${messagesQuery(applied, cursor)}`, cursor === undefined ? ["status"] : []);
  // The site's filters do the filtering; a filter it refuses shows its message next to that filter.
  const errors = msgs.error ? fieldErrors(msgs.error, FILTER_FIELDS) : {};
  const err = (k: keyof Filters) => ({ validationMessage: errors[k], validationState: errors[k] ? ("error" as const) : ("none" as const) });
  const set = (k: keyof Filters, v: string) => setForm((f) => ({ ...f, [k]: v }));
  return (
    <>
      <PageTitle>Status Messages</PageTitle>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(form);
          setCursors([undefined]);
        }}
        style={{ display: "flex", gap: 8, alignItems: "start", flexWrap: "wrap", marginBottom: 12 }}
        aria-label="Status message filters"
      >
        <Field label="Component" {...err("component")}>
          <Input value={form.component} onChange={(_, d) => set("component", d.value)} />
        </Field>
        <Field label="Site system" {...err("server")}>
          <Input value={form.server} onChange={(_, d) => set("server", d.value)} />
        </Field>
        <Field label="Message ID" {...err("messageId")}>
          <Input value={form.messageId} onChange={(_, d) => set("messageId", d.value)} inputMode="numeric" />
        </Field>
        <Field label="Severity" {...err("severity")}>
          <Dropdown value={SEVERITIES[form.severity]} selectedOptions={[form.severity]} onOptionSelect={(_, d) => set("severity", d.optionValue ?? "")}>
            {Object.entries(SEVERITIES).map(([k, v]) => (
              <Option key={k} value={k}>
                {v}
              </Option>
            ))}
          </Dropdown>
        </Field>
        <Field label="Source" {...err("source")}>
          <Dropdown value={SOURCES[form.source]} selectedOptions={[form.source]} onOptionSelect={(_, d) => set("source", d.optionValue ?? "")}>
            {Object.entries(SOURCES).map(([k, v]) => (
              <Option key={k} value={k}>
                {v}
              </Option>
            ))}
          </Dropdown>
        </Field>
        <Field label="Since" {...err("since")}>
          <Input type="datetime-local" value={form.since} onChange={(_, d) => set("since", d.value)} />
        </Field>
        <Field label="Until" {...err("until")}>
          <Input type="datetime-local" value={form.until} onChange={(_, d) => set("until", d.value)} />
        </Field>
        <Button type="submit" appearance="primary" style={{ marginTop: 26 }}>
          Apply filters
        </Button>
      </form>
      {errors.form && <ErrorBar error={new Error(errors.form)} />}
      {msgs.data === undefined && !msgs.error && <Spinner label="Loading Status messages" size="small" />}
      {msgs.data && (
        <>
          <Table aria-label="Status messages" size="small">
            <TableHeader>
              <TableRow>
                <TableHeaderCell>Severity</TableHeaderCell>
                <TableHeaderCell>Time</TableHeaderCell>
                <TableHeaderCell>Source</TableHeaderCell>
                <TableHeaderCell>Site System or Client</TableHeaderCell>
                <TableHeaderCell>Component</TableHeaderCell>
                <TableHeaderCell>Message ID</TableHeaderCell>
                <TableHeaderCell>Description</TableHeaderCell>
              </TableRow>
            </TableHeader>
            <TableBody>
              {msgs.data.items.map((m) => (
                <TableRow key={m.id} data-message-id={m.messageId} data-source={m.source}>
                  <TableCell>{SEVERITIES[m.severity]}</TableCell>
                  <TableCell title={m.claimedTime ? `The client says: ${new Date(m.claimedTime).toLocaleString()}` : undefined}>{new Date(m.time).toLocaleString()}</TableCell>
                  <TableCell>
                    <Badge appearance="outline" color={m.source === "site" ? "brand" : "informative"}>
                      {m.source === "site" ? "Site" : "Client"}
                    </Badge>
                  </TableCell>
                  <TableCell>{sourceText(m)}</TableCell>
                  <TableCell>{m.component}</TableCell>
                  <TableCell>{m.messageId}</TableCell>
                  <TableCell>{m.text}</TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
          {msgs.data.items.length === 0 && <p>No status message matches the filters.</p>}
          <div style={{ display: "flex", gap: 8, marginTop: 8 }}>
            <Button disabled={cursors.length < 2} onClick={() => setCursors((c) => c.slice(0, -1))}>
              Newer messages
            </Button>
            <Button disabled={msgs.data.nextCursor === null} onClick={() => msgs.data?.nextCursor != null && setCursors((c) => [...c, msgs.data!.nextCursor!])}>
              Older messages
            </Button>
          </div>
        </>
      )}
    </>
  );
}

/** Monitoring > System Status: Component Status and Status Messages (with filters), both live. */
import { useState } from "react";
import { Badge, Button, Dropdown, Field, Input, Option, Spinner, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from "@fluentui/react-components";
import type { ComponentStatus, Paged, StatusMessage } from "../api.ts";
import { DataTable } from "../table.tsx";
import { ErrorBar, PageTitle, Show, fieldErrors, useGet } from "../ui.tsx";

const COLOR = { OK: "success", Warning: "warning", Critical: "danger" } as const;

export function ComponentStatusPage() {
  const comps = useGet<ComponentStatus[]>("/api/v1/status/components", ["status"]);
  return (
    <>
      <PageTitle>Component Status</PageTitle>
      <Show l={comps} what="Component status">
        {(list) => (
          <DataTable
            label="Component status"
            rows={list}
            rowKey={(c) => `${c.server}/${c.component}`}
            rowProps={(c) => ({ "data-component": c.component })}
            initialSort={{ column: "server", direction: "ascending" }}
            columns={[
              {
                id: "status",
                label: "Status",
                width: "10%",
                filter: true,
                text: (c) => c.status,
                render: (c) => (
                  <Badge appearance="tint" color={COLOR[c.status]} data-testid={`component-${c.server}-${c.component}`}>
                    {c.status}
                  </Badge>
                ),
              },
              { id: "server", label: "Site System", width: "18%", filter: true, text: (c) => c.server },
              { id: "component", label: "Component", width: "20%", filter: true, text: (c) => c.component },
              { id: "reason", label: "Reason", width: "34%", text: (c) => c.reason },
              { id: "changed", label: "Last changed", width: "18%", text: (c) => new Date(c.updatedAt).toLocaleString(), sortValue: (c) => c.updatedAt },
            ]}
          />
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
          {/* The site's filters above filter the messages; the table sorts and searches the page shown. */}
          <DataTable
            label="Status messages"
            rows={msgs.data.items}
            rowKey={(m) => String(m.id)}
            rowProps={(m) => ({ "data-message-id": String(m.messageId), "data-source": m.source })}
            empty="No status message matches the filters."
            columns={[
              { id: "severity", label: "Severity", width: "9%", text: (m) => SEVERITIES[m.severity] },
              {
                id: "time",
                label: "Time",
                width: "13%",
                text: (m) => new Date(m.time).toLocaleString(),
                sortValue: (m) => m.time,
                render: (m) => <span title={m.claimedTime ? `The client says: ${new Date(m.claimedTime).toLocaleString()}` : undefined}>{new Date(m.time).toLocaleString()}</span>,
              },
              {
                id: "source",
                label: "Source",
                width: "7%",
                text: (m) => (m.source === "site" ? "Site" : "Client"),
                render: (m) => (
                  <Badge appearance="outline" color={m.source === "site" ? "brand" : "informative"}>
                    {m.source === "site" ? "Site" : "Client"}
                  </Badge>
                ),
              },
              { id: "system", label: "Site System or Client", width: "17%", text: sourceText },
              { id: "component", label: "Component", width: "13%", text: (m) => m.component },
              { id: "id", label: "Message ID", width: "8%", text: (m) => String(m.messageId), sortValue: (m) => m.messageId },
              { id: "text", label: "Description", width: "33%", truncate: true, text: (m) => m.text },
            ]}
          />
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

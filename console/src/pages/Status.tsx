/** Monitoring > System Status: Component Status and Status Messages (with filters), both live. */
import { useState } from "react";
import { Badge, Button, Dropdown, Field, Input, Option, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow } from "@fluentui/react-components";
import type { ComponentStatus, StatusMessage } from "../api.ts";
import { PageTitle, Show, useGet } from "../ui.tsx";

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

export function StatusMessagesPage() {
  const [component, setComponent] = useState("");
  const [messageId, setMessageId] = useState("");
  const [severity, setSeverity] = useState<keyof typeof SEVERITIES>("");
  const [since, setSince] = useState("");
  const [applied, setApplied] = useState({ component: "", messageId: "", severity: "", since: "" });
  const q = new URLSearchParams();
  if (applied.component) q.set("component", applied.component);
  if (applied.messageId) q.set("messageId", applied.messageId);
  if (applied.severity) q.set("severity", applied.severity);
  if (applied.since) q.set("since", new Date(applied.since).toISOString());
  q.set("limit", "500");
  const msgs = useGet<StatusMessage[] | { items: StatusMessage[] }>(`/api/v1/status/messages?${q}`, ["status"]);
  return (
    <>
      <PageTitle>Status Messages</PageTitle>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ component, messageId, severity, since });
        }}
        style={{ display: "flex", gap: 8, alignItems: "end", flexWrap: "wrap", marginBottom: 12 }}
        aria-label="Status message filters"
      >
        <Field label="Component">
          <Input value={component} onChange={(_, d) => setComponent(d.value)} />
        </Field>
        <Field label="Message ID">
          <Input value={messageId} onChange={(_, d) => setMessageId(d.value)} inputMode="numeric" />
        </Field>
        <Field label="Severity">
          <Dropdown value={SEVERITIES[severity]} selectedOptions={[severity]} onOptionSelect={(_, d) => setSeverity((d.optionValue ?? "") as keyof typeof SEVERITIES)}>
            {Object.entries(SEVERITIES).map(([k, v]) => (
              <Option key={k} value={k}>
                {v}
              </Option>
            ))}
          </Dropdown>
        </Field>
        <Field label="Since">
          <Input type="datetime-local" value={since} onChange={(_, d) => setSince(d.value)} />
        </Field>
        <Button type="submit" appearance="primary">
          Apply filters
        </Button>
      </form>
      <Show l={msgs} what="Status messages">
        {(data) => {
          let list = Array.isArray(data) ? data : data.items;
          // Filters the API of this site may not apply yet are applied here too.
          if (applied.severity) list = list.filter((m) => m.severity === applied.severity);
          if (applied.since) list = list.filter((m) => m.time >= new Date(applied.since).toISOString());
          return (
            <Table aria-label="Status messages" size="small">
              <TableHeader>
                <TableRow>
                  <TableHeaderCell>Severity</TableHeaderCell>
                  <TableHeaderCell>Time</TableHeaderCell>
                  <TableHeaderCell>Site System</TableHeaderCell>
                  <TableHeaderCell>Component</TableHeaderCell>
                  <TableHeaderCell>Message ID</TableHeaderCell>
                  <TableHeaderCell>Description</TableHeaderCell>
                </TableRow>
              </TableHeader>
              <TableBody>
                {[...list].reverse().map((m) => (
                  <TableRow key={m.id}>
                    <TableCell>{SEVERITIES[m.severity]}</TableCell>
                    <TableCell>{new Date(m.time).toLocaleString()}</TableCell>
                    <TableCell>{m.server}</TableCell>
                    <TableCell>{m.component}</TableCell>
                    <TableCell>{m.messageId}</TableCell>
                    <TableCell>{m.text}</TableCell>
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

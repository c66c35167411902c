/**
 * Monitoring > System Status > Audit: who changed what, newest first, filtered by who, action,
 * object and time range (the API's own filters), a page at a time; the page shown sorts, searches
 * and filters like every list (DataTable). Before and after are shown as the API gives them
 * (secrets already redacted), wrapped so the table stays readable at 1280 px.
 */
import { useState, type FormEvent } from "react";
import { Button, Field, Input, makeStyles } from "@fluentui/react-components";
import type { AuditEntry, Paged } from "../api.ts";
import { DataTable } from "../table.tsx";
import { PageTitle, Show, useGet } from "../ui.tsx";

const useStyles = makeStyles({
  // Wraps rather than squeezes: a date-and-time input has a width of its own.
  filters: { display: "flex", flexWrap: "wrap", gap: "8px 12px", alignItems: "end", marginBottom: "12px" },
  filter: { width: "240px", "& input": { minWidth: 0 } },
  json: { fontFamily: "monospace", fontSize: "12px", overflowWrap: "anywhere", whiteSpace: "pre-wrap", margin: 0, maxHeight: "8em", overflow: "auto" },
});

interface Filters {
  actor: string;
  action: string;
  object: string;
  since: string;
  until: string;
}
const EMPTY: Filters = { actor: "", action: "", object: "", since: "", until: "" };

/** A datetime-local value (the browser's local time) as ISO-8601 UTC. */
const toIso = (local: string): string => new Date(local).toISOString();

function query(f: Filters, cursor: number | null): string {
  const q = new URLSearchParams();
  if (f.actor.trim()) q.set("actor", f.actor.trim());
  if (f.action.trim()) q.set("action", f.action.trim());
  if (f.object.trim()) q.set("object", f.object.trim());
  if (f.since) q.set("since", toIso(f.since));
  if (f.until) q.set("until", toIso(f.until));
  q.set("limit", "50");
  if (cursor !== null) q.set("cursor", String(cursor));
  return `/api/v1/audit?${q.toString()}`;
}

const short = (v: unknown): string => (v === null || v === undefined ? "-" : JSON.stringify(v, null, 1));

export function AuditPage() {
  const s = useStyles();
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [applied, setApplied] = useState<Filters>(EMPTY);
  const [cursors, setCursors] = useState<(number | null)[]>([null]);
  const page = useGet<Paged<AuditEntry>>(query(applied, cursors[cursors.length - 1]!));
  const apply = (e: FormEvent) => {
    e.preventDefault();
    setApplied(draft);
    setCursors([null]);
  };
  const field = (k: keyof Filters) => ({ value: draft[k], onChange: (_: unknown, d: { value: string }) => setDraft((x) => ({ ...x, [k]: d.value })) });
  return (
    <>
      <PageTitle>Audit</PageTitle>
      <form className={s.filters} onSubmit={apply} aria-label="Audit filters">
        <Field label="Who" className={s.filter}>
          <Input {...field("actor")} placeholder="alice@contoso.com" />
        </Field>
        <Field label="Action" className={s.filter}>
          <Input {...field("action")} placeholder="proxies.set or proxies" />
        </Field>
        <Field label="Object starts with" className={s.filter}>
          <Input {...field("object")} placeholder="server/sup01" />
        </Field>
        <Field label="From" className={s.filter}>
          <Input type="datetime-local" {...field("since")} />
        </Field>
        <Field label="To" className={s.filter}>
          <Input type="datetime-local" {...field("until")} />
        </Field>
        <Button type="submit" appearance="primary">
          Apply filters
        </Button>
      </form>
      <Show l={page} what="The audit log">
        {(p) => (
          <>
            <DataTable
              label="Audit log"
              rows={p.items}
              rowKey={(e) => String(e.id)}
              initialSort={{ column: "time", direction: "descending" }}
              empty="No changes match these filters."
              columns={[
                { id: "time", label: "Time", text: (e) => new Date(e.time).toLocaleString(), sortValue: (e) => e.time, width: "15%" },
                { id: "actor", label: "Who", text: (e) => e.actor, filter: true, width: "14%" },
                { id: "via", label: "Via", text: (e) => e.via, filter: true, width: "7%" },
                { id: "action", label: "Action", text: (e) => e.action, filter: true, width: "14%" },
                { id: "object", label: "Object", text: (e) => e.object, width: "16%" },
                {
                  id: "before",
                  label: "Before",
                  text: (e) => short(e.before),
                  render: (e) => (
                    <pre className={s.json} tabIndex={0} aria-label={`Before, entry ${e.id}`}>
                      {short(e.before)}
                    </pre>
                  ),
                  unsortable: true,
                  width: "17%",
                },
                {
                  id: "after",
                  label: "After",
                  text: (e) => short(e.after),
                  render: (e) => (
                    <pre className={s.json} tabIndex={0} aria-label={`After, entry ${e.id}`}>
                      {short(e.after)}
                    </pre>
                  ),
                  unsortable: true,
                  width: "17%",
                },
              ]}
            />
            <div style={{ display: "flex", gap: 8, marginTop: 8 }}>
              <Button disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
                Newer
              </Button>
              <Button disabled={p.nextCursor === null} onClick={() => setCursors((c) => [...c, p.nextCursor])}>
                Older
              </Button>
            </div>
          </>
        )}
      </Show>
    </>
  );
}

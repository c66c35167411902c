/** Small pieces every page uses: data loading that follows the live feed, "not available", errors by field. */
import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { MessageBar, MessageBarBody, MessageBarTitle, Spinner } from "@fluentui/react-components";
import { ApiError, get } from "./api.ts";

export type LiveTopic = "status" | "cmg";

type Listener = (t: LiveTopic) => void;
const listeners = new Set<Listener>();
let source: EventSource | undefined;

/** One EventSource for the whole console, opened after sign-in. */
export function openLive(): void {
  if (source) return;
  source = new EventSource("/api/v1/events");
  source.addEventListener("change", (e) => {
    const { topic } = JSON.parse((e as MessageEvent<string>).data) as { topic: LiveTopic };
    for (const l of listeners) l(topic);
  });
}

export function closeLive(): void {
  source?.close();
  source = undefined;
}

/** Calls `fn` when the site says something of `topics` changed. */
export function useLive(topics: readonly LiveTopic[], fn: () => void): void {
  const ref = useRef(fn);
  ref.current = fn;
  const key = topics.join(",");
  useEffect(() => {
    const l: Listener = (t) => {
      if (key.split(",").includes(t)) ref.current();
    };
    listeners.add(l);
    return () => void listeners.delete(l);
  }, [key]);
}

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | Error | undefined;
  loading: boolean;
  reload: () => void;
}

/** GET `path`, again whenever `live` topics change. */
export function useGet<T>(path: string | null, live: readonly LiveTopic[] = []): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<ApiError | Error>();
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const reload = useCallback(() => {
    if (path === null) return;
    const mine = ++seq.current;
    get<T>(path)
      .then((d) => {
        if (mine !== seq.current) return;
        setData(d);
        setError(undefined);
      })
      .catch((e: unknown) => mine === seq.current && setError(e as Error))
      .finally(() => mine === seq.current && setLoading(false));
  }, [path]);
  useEffect(() => {
    setLoading(true);
    reload();
  }, [reload]);
  useLive(live, reload);
  return { data, error, loading, reload };
}

export function NotAvailable({ what }: { what: string }) {
  return (
    <MessageBar intent="info" role="status">
      <MessageBarBody>
        <MessageBarTitle>Not available</MessageBarTitle>
        {what} is not available on this site's admin API yet (the route answered 404). Update OpenCMG to use it here; the command line has it meanwhile.
      </MessageBarBody>
    </MessageBar>
  );
}

export function ErrorBar({ error }: { error: Error | undefined }) {
  if (!error) return null;
  return (
    <MessageBar intent="error" role="alert">
      <MessageBarBody>{error.message}</MessageBarBody>
    </MessageBar>
  );
}

/** Loading, not available, an error, or the content. */
export function Show<T>({ l, what, children }: { l: Loaded<T>; what: string; children: (d: T) => ReactNode }) {
  if (l.error instanceof ApiError && l.error.notAvailable) return <NotAvailable what={what} />;
  if (l.data === undefined) return l.error ? <ErrorBar error={l.error} /> : <Spinner label={`Loading ${what}`} size="small" />;
  return (
    <>
      {l.error && <ErrorBar error={l.error} />}
      {children(l.data)}
    </>
  );
}

/** The form's name for the field an API path names: the whole path or its most specific part the form knows; "form" otherwise. */
export function formField(path: string, known: readonly string[]): string {
  const parts = path.split(/[.[\]]+/).filter((p) => p && !/^\d+$/.test(p));
  return [path, ...parts.reverse()].find((p) => known.includes(p)) ?? "form";
}

/**
 * Every field error of an API error, keyed by the form's name for the field (formField), each in
 * the form's words: "<the field's label>: <rule>" when `labels` has the field, else the site's
 * message (which names the field in words). Problems of fields the form does not have are "form",
 * one after another.
 */
export function fieldErrors(e: unknown, known: readonly string[], labels: Record<string, string> = {}): Record<string, string> {
  if (!(e instanceof ApiError)) return { form: e instanceof Error ? e.message : String(e) };
  const problems = e.problems;
  if (problems.length === 0) return { form: e.message };
  const out: Record<string, string> = {};
  for (const p of problems) {
    const key = formField(p.field, known);
    const text = key !== "form" && labels[key] && p.rule ? `${labels[key]}: ${p.rule}` : p.message;
    if (key === "form") out.form = out.form ? `${out.form} ${text}` : text;
    else out[key] ??= text;
  }
  return out;
}

/** Fluent Field's props for a field's error (or none). */
export function errorOf(errors: Record<string, string>, ...names: string[]): { validationMessage: string | undefined; validationState: "error" | "none" } {
  const m = names.map((n) => errors[n]).find(Boolean);
  return { validationMessage: m, validationState: m ? "error" : "none" };
}

/** A time the API gives (ISO 8601) in the browser's local format; none: empty. */
export function localTime(t: string | null | undefined): string {
  return t ? new Date(t).toLocaleString() : "";
}

export function PageTitle({ children }: { children: ReactNode }) {
  return <h1 style={{ fontSize: 24, fontWeight: 600, margin: "0 0 12px" }}>{children}</h1>;
}

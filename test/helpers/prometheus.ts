/** Reads Prometheus text exposition back, and the naming rules every OpenCMG metric follows. */
import assert from "node:assert/strict";

export interface Family {
  name: string;
  type: string;
  /** Label names of its samples (without `le`/`quantile`), each sample's set. */
  labelSets: string[][];
}

/** The metric families of a scrape, with the label names each sample carries. */
export function families(text: string): Map<string, Family> {
  const out = new Map<string, Family>();
  for (const line of text.split("\n")) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      out.set(t[1]!, { name: t[1]!, type: t[2]!, labelSets: [] });
      continue;
    }
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const base = m[1]!.replace(/_(bucket|sum|count)$/, "");
    const f = out.get(m[1]!) ?? out.get(base);
    assert.ok(f, `sample without a TYPE line: ${line}`);
    const labels = [...(m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)].map((x) => x[1]!).filter((l) => l !== "le" && l !== "quantile");
    f.labelSets.push(labels);
  }
  return out;
}

/**
 * Prometheus's conventions (https://prometheus.io/docs/practices/naming/): counters end in
 * `_total`; histograms are in base units (`_seconds`, `_bytes`); no label is called `instance` or
 * `job` (Prometheus sets those per target); every sample carries `identity`.
 */
export function assertConventions(text: string, identity: string): Map<string, Family> {
  const all = families(text);
  assert.ok(all.size > 0, "no metrics");
  for (const f of all.values()) {
    if (f.type === "counter") assert.match(f.name, /_total$/, `counter ${f.name} must end in _total`);
    if (f.type === "histogram") assert.match(f.name, /_(seconds|bytes)$/, `histogram ${f.name} must be in seconds or bytes`);
    for (const labels of f.labelSets) {
      assert.ok(!labels.includes("instance") && !labels.includes("job"), `${f.name} carries a label Prometheus sets itself: ${labels.join(",")}`);
      assert.ok(labels.includes(identity), `${f.name} lacks the ${identity} label: ${labels.join(",")}`);
    }
  }
  return all;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample line of a scrape. */
export function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the one sample `name` whose labels are exactly `labels` (in any order); undefined when there is none. */
export function sampleValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels);
  const hits = samples(text).filter((s) => s.name === name && Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v));
  assert.ok(hits.length <= 1, `${hits.length} samples of ${name} with ${JSON.stringify(labels)}`);
  return hits[0]?.value;
}

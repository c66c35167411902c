/**
 * The upstream update source's format (docs/update-catalog.md): a JSON catalog of updates with
 * their content files. Validated as it arrives; a bad catalog changes nothing in the site.
 */
import { z } from "zod";

export const updateFile = z.object({
  name: z.string().min(1).max(255).regex(/^[^/\\\0]+$/, "must be a file name, not a path").refine((s) => s !== "." && s !== "..", "must be a file name"),
  url: z.string().url().refine((u) => /^https?:/.test(u), "must be an http:// or https:// URL"),
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, "must be 64 hex digits").transform((s) => s.toLowerCase()),
});

export const update = z.object({
  id: z.string().min(1).max(128).regex(/^[A-Za-z0-9._-]+$/, "must be letters, digits, dot, underscore or hyphen"),
  title: z.string().min(1).max(1024),
  classification: z.string().min(1).max(128),
  product: z.string().min(1).max(256),
  releaseDate: z.string().regex(/^\d{4}-\d{2}-\d{2}/, "must be an ISO date"),
  files: z.array(updateFile).max(1000),
});

export const updateCatalog = z.object({
  version: z.literal(1),
  updates: z.array(update).max(1_000_000),
});

export type UpdateFile = z.output<typeof updateFile>;
export type Update = z.output<typeof update>;
export type UpdateCatalog = z.output<typeof updateCatalog>;


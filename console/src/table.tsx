/**
 * A list an administrator can read: sort by any column (its header is a button; aria-sort says
 * the order), search every column's text, filter by the columns that offer it, and columns that
 * never overlap (fixed layout; text wraps, or is cut with an ellipsis and shown in full on hover
 * and on keyboard focus). Every list of the console uses it; a new page uses it like this:
 *
 *   <DataTable
 *     label="Audit events"                      // the table's accessible name; "Search audit events"
 *     rows={events}
 *     rowKey={(e) => String(e.id)}
 *     columns={[
 *       { id: "time", label: "Time", text: (e) => new Date(e.at).toLocaleString(), sortValue: (e) => e.at, width: "18%" },
 *       { id: "who", label: "Administrator", text: (e) => e.actor, filter: true },
 *       { id: "what", label: "Action", text: (e) => e.action, truncate: true },
 *     ]}
 *     initialSort={{ column: "time", direction: "descending" }}
 *   />
 *
 * Sorting, search and filters work on the rows given (a paged list sorts and searches its page).
 */
import { useId, useMemo, useState, type HTMLAttributes, type ReactNode } from "react";
import { Field, Input, Select, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow, makeStyles, tokens } from "@fluentui/react-components";

export interface Column<T> {
  id: string;
  label: string;
  /** The cell's text: what search and filters match, what sorts (unless sortValue), the full text on hover. */
  text: (row: T) => string;
  /** What the cell shows, when more than its text (a badge, a button). */
  render?: (row: T) => ReactNode;
  /** The sort key when the text does not sort right (numbers, ISO times). */
  sortValue?: (row: T) => string | number;
  /** Offer a filter of this column's values. */
  filter?: boolean;
  /** The column's share of the table's width (CSS width of its header cell). */
  width?: string;
  /** One line, cut with an ellipsis; the full text on hover and when the cell has focus. */
  truncate?: boolean;
  /** Not sortable (a column of buttons). */
  unsortable?: boolean;
}

export interface DataTableProps<T> {
  label: string;
  rows: readonly T[];
  columns: readonly Column<T>[];
  rowKey: (row: T) => string;
  /** More attributes of a row (data-*, aria-selected). */
  rowProps?: (row: T) => HTMLAttributes<HTMLTableRowElement> & Record<`data-${string}`, string | undefined>;
  initialSort?: { column: string; direction: "ascending" | "descending" };
  /** Shown when no row matches the search and filters. */
  empty?: string;
}

const useStyles = makeStyles({
  table: { tableLayout: "fixed", width: "100%" },
  cell: { overflowWrap: "anywhere", whiteSpace: "normal", verticalAlign: "top", paddingTop: "4px", paddingBottom: "4px" },
  cut: {
    display: "block",
    overflow: "hidden",
    textOverflow: "ellipsis",
    whiteSpace: "nowrap",
    ":focus": { whiteSpace: "normal", overflowWrap: "anywhere", outline: `2px solid ${tokens.colorStrokeFocus2}` },
  },
  bar: { display: "flex", gap: "8px", flexWrap: "wrap", alignItems: "end", marginBottom: "8px" },
  count: { margin: "0 0 0 auto", color: tokens.colorNeutralForeground2 },
});

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

export function DataTable<T>({ label, rows, columns, rowKey, rowProps, initialSort, empty }: DataTableProps<T>) {
  const s = useStyles();
  const id = useId();
  const [search, setSearch] = useState("");
  const [filters, setFilters] = useState<Record<string, string>>({});
  const [sort, setSort] = useState(initialSort);
  const shown = useMemo(() => {
    const q = search.trim().toLowerCase();
    const kept = rows.filter((r) => {
      for (const c of columns) if (filters[c.id] && c.text(r) !== filters[c.id]) return false;
      return q === "" || columns.some((c) => c.text(r).toLowerCase().includes(q));
    });
    const col = columns.find((c) => c.id === sort?.column);
    if (!col || !sort) return kept;
    const key = col.sortValue ?? col.text;
    const sign = sort.direction === "ascending" ? 1 : -1;
    return [...kept].sort((a, b) => {
      const x = key(a);
      const y = key(b);
      return sign * (typeof x === "number" && typeof y === "number" ? x - y : collator.compare(String(x), String(y)));
    });
  }, [rows, columns, search, filters, sort]);
  const toggle = (c: Column<T>) => setSort((cur) => ({ column: c.id, direction: cur?.column === c.id && cur.direction === "ascending" ? "descending" : "ascending" }));
  const lower = label.charAt(0).toLowerCase() + label.slice(1);
  return (
    <div>
      <div className={s.bar} role="search" aria-label={`Search and filter ${lower}`}>
        <Field label={`Search ${lower}`}>
          <Input type="search" value={search} onChange={(_, d) => setSearch(d.value)} />
        </Field>
        {columns
          .filter((c) => c.filter)
          .map((c) => {
            const values = [...new Set(rows.map(c.text))].sort(collator.compare);
            return (
              <Field key={c.id} label={`Filter by ${c.label}`}>
                <Select value={filters[c.id] ?? ""} onChange={(_, d) => setFilters((f) => ({ ...f, [c.id]: d.value }))}>
                  <option value="">All</option>
                  {values.map((v) => (
                    <option key={v} value={v}>
                      {v}
                    </option>
                  ))}
                </Select>
              </Field>
            );
          })}
        <p className={s.count} id={`${id}-count`} aria-live="polite">
          {shown.length === rows.length ? `${rows.length} item(s)` : `${shown.length} of ${rows.length} item(s)`}
        </p>
      </div>
      <Table aria-label={label} aria-describedby={`${id}-count`} size="small" className={s.table}>
        <TableHeader>
          <TableRow>
            {columns.map((c) => (
              <TableHeaderCell
                key={c.id}
                style={c.width ? { width: c.width } : undefined}
                className={s.cell}
                {...(c.unsortable ? {} : { sortable: true, sortDirection: sort?.column === c.id ? sort.direction : undefined, onClick: () => toggle(c) })}
              >
                {c.label}
              </TableHeaderCell>
            ))}
          </TableRow>
        </TableHeader>
        <TableBody>
          {shown.map((r) => (
            <TableRow key={rowKey(r)} {...rowProps?.(r)}>
              {columns.map((c) => {
                const text = c.text(r);
                const content = c.render ? c.render(r) : text;
                return (
                  <TableCell key={c.id} className={s.cell} title={c.render ? undefined : text}>
                    {c.truncate ? (
                      <span className={s.cut} tabIndex={0} title={text}>
                        {content}
                      </span>
                    ) : (
                      content
                    )}
                  </TableCell>
                );
              })}
            </TableRow>
          ))}
        </TableBody>
      </Table>
      {shown.length === 0 && <p>{rows.length === 0 ? (empty ?? "Nothing to show.") : "No item matches the search and filters."}</p>}
    </div>
  );
}

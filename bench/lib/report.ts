/** Markdown tables and number formatting for the benchmarks' output. */

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, 3, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${widths.map((w, i) => (cells[i] ?? '').padEnd(w)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function fixed(value: number | undefined, digits = 1): string {
  return value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(digits);
}

/** `2.3×` */
export function times(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '—' : `${value.toFixed(2)}×`;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The value below which `p` (0..1) of the samples lie (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

export const MiB = 1024 * 1024;
export const SEGMENT_BYTES = 16 * MiB;

/** A target of the issue and whether this run met it (undefined: not measured). */
export interface Target {
  readonly description: string;
  readonly met: boolean | undefined;
  readonly detail: string;
}

/** A target line: `target: ... — met` / `MISSED`. */
export function targetLine(description: string, met: boolean | undefined, detail: string): string {
  const verdict = met === undefined ? 'not measured' : met ? 'met' : 'MISSED';
  return `- target ${description}: ${detail} — ${verdict}`;
}

// How a benchmark section reports a figure: one JSON line on stdout, prefixed so that `npm run bench`
// (bench/run.ts) can collect figures from every section into one table and one results file.
export interface Figure {
  section: string;
  figure: string;
  value: number;
  unit: string;
  /** e.g. '≥ 10000' or '≤ 25'. */
  target?: string;
  /** The same measurement of a reference, taken in the same run on the same machine. */
  baseline?: number;
  baselineName?: string;
}

export const FIGURE_PREFIX = 'BENCH_FIGURE ';

export function reportFigure(f: Figure): void {
  console.log(FIGURE_PREFIX + JSON.stringify(f));
}

/** A table a section prints and keeps whole in the results file (e.g. the `system` steps). */
export interface Table {
  section: string;
  name: string;
  rows: Array<Record<string, string | number | boolean | null>>;
  /** What the columns mean, how the run was made (load average, settings). */
  notes?: string[];
}

export const TABLE_PREFIX = 'BENCH_TABLE ';

export function reportTable(t: Table): void {
  console.log(TABLE_PREFIX + JSON.stringify(t));
}

/** Whether `value` meets a target written as '≥ N' or '≤ N' (undefined when there is none). */
export function meetsTarget(value: number, target: string | undefined): boolean | undefined {
  const m = target ? /^\s*([≥≤])\s*([\d.]+)/.exec(target) : null;
  if (!m) return undefined;
  return m[1] === '≥' ? value >= Number(m[2]) : value <= Number(m[2]);
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

import { describe, expect, it } from 'vitest';
import { MAX_RUN_MS, runId, runStartOf, stale } from './leftovers.js';

describe('leftovers of killed runs', () => {
  const now = Date.UTC(2026, 11, 5, 19, 0, 0);
  const idAt = (t: number) => t.toString(36);

  it('a run id starts with its start time, read back from a private name', () => {
    const before = Date.now();
    const id = runId('-x');
    expect(runStartOf(`bench_${id.replace(/-/g, '_')}`, 'bench_')).toBeGreaterThanOrEqual(before);
    expect(runStartOf(`bench_${id}`, 'bench_')).toBeLessThanOrEqual(Date.now());
    expect(runStartOf('minute_counts', 'bench_')).toBeNaN();
  });

  it('drops only private names of runs older than any run, and names without a time', () => {
    const names = [
      `bench_${idAt(now - MAX_RUN_MS - 1)}_ab1`, // killed long ago
      `bench_${idAt(now - 60_000)}_base`, // running now
      `bench-clicks-${idAt(now - 2 * MAX_RUN_MS)}-x`,
      'fault_matrix_93799188', // before run ids carried a time: reads as long ago
      'minute_counts', // the app's own
      'clicks',
    ];
    expect(stale(names, ['bench_', 'bench-clicks-', 'fault_matrix_'], now)).toEqual([
      names[0],
      names[2],
      'fault_matrix_93799188',
    ]);
  });
});

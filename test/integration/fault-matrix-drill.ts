// `npm run drill -- faults [--cells postgres:killed,kafka:slow] [--out docs-table.md]`: the whole
// fault matrix (fault-matrix-support.ts) — PostgreSQL, Redis, Kafka, S3, Temporal and Pinot, each
// killed, hung and slow under open-loop clicks — then one backfill per drill hour for the final
// counts, and the table (Markdown, as in docs/faults.md) with the failing cells' reasons. Exits 1
// when a cell fails. Rate, ads per cell and the 302 deadline: ADCLICK_DRILL_RATE (2000),
// ADCLICK_DRILL_ADS (100), ADCLICK_DRILL_DEADLINE_MS (1000).
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  DEPENDENCIES,
  FAULTS,
  FaultMatrix,
  cellPasses,
  defaultOptions,
  type Dependency,
  type Fault,
} from './fault-matrix-support.js';
import { continueHungServices } from './faults-support.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { cells: { type: 'string' }, out: { type: 'string' } },
});

async function main(): Promise<void> {
  if (positionals[0] !== 'faults') throw new Error('usage: npm run drill -- faults [--cells dep:fault,...]');
  const cells: Array<[Dependency, Fault]> = values.cells
    ? values.cells.split(',').map((c) => c.split(':') as [Dependency, Fault])
    : [
        // The control row first: the same load without a fault, what this machine gives.
        ['postgres', 'none'],
        ...DEPENDENCIES.flatMap((d) => FAULTS.map((f): [Dependency, Fault] => [d, f])),
      ];
  for (const [d, f] of cells)
    if (!DEPENDENCIES.includes(d) || !(f === 'none' || (FAULTS as readonly string[]).includes(f)))
      throw new Error(`unknown cell ${d}:${f}`);
  const matrix = new FaultMatrix(defaultOptions());
  // Ctrl-C (or a SIGTERM) mid-cell: the dependency a hung cell stopped is continued and the app
  // processes and load generators, each in a process group of their own, are stopped; a second
  // signal quits at once.
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.on(sig, () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      console.error(`[drill] ${sig}: ending the fault under way and stopping the app processes`);
      continueHungServices();
      void matrix.teardown().finally(() => process.exit(130));
    });
  const t0 = Date.now();
  try {
    await matrix.setup();
    for (const [d, f] of cells) {
      await matrix.runCell(d, f).catch((e: unknown) => console.error(`[drill] ${d} ${f}: ${String(e)}`));
      console.log(`\n${matrix.table()}\n`);
    }
    await matrix.finalize();
  } finally {
    const o = matrix.opts;
    const text = [
      `Fault matrix, run ${matrix.run}, ${new Date(t0).toISOString()}: ${o.rate} clicks/s offered open loop over ` +
        `${o.adsPerCell} ads per cell; ${o.beforeS} s before the fault, ${o.afterS} s after; hung ${o.hangS} s; ` +
        `slow +${o.slowMs} ms for ${o.slowS} s; ${((Date.now() - t0) / 60_000).toFixed(1)} min.`,
      '',
      matrix.table(),
      '',
      ...matrix.failures().map((f) => `- ${f}`),
      '',
    ].join('\n');
    console.log(text);
    if (values.out) writeFileSync(values.out, text);
    await matrix.teardown();
    process.exitCode = matrix.results.length === cells.length && matrix.results.every(cellPasses) ? 0 : 1;
  }
}

// Exits when done: a client's lingering handle (a socket, a timer) must not keep the command open.
main()
  .catch((e: unknown) => {
    console.error(`[drill] ${(e as Error).stack ?? String(e)}`);
    process.exitCode = 1;
  })
  .finally(() => process.exit());

// `npm run bench`: runs each benchmark section as its own process (stack up first), collects the
// figures they report, prints one table — figure, value, target, baseline measured in the same run,
// ratio — and writes them as JSON under bench/results/ so runs can be compared.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ensureDebianPackages } from '../stack/runtime.js';
import { FIGURE_PREFIX, meetsTarget, TABLE_PREFIX, type Figure, type Table } from './report.js';

const sections = [
  { name: 'clicks', entry: 'bench/clicks.ts' },
  { name: 'freshness', entry: 'bench/freshness.ts' },
  { name: 'queries', entry: 'bench/queries.ts' },
  { name: 'batch', entry: 'bench/batch.ts' },
  // The whole system of `npm start` under rising paced load (about 20 minutes): last, so the other
  // sections do not run beside its leftovers.
  { name: 'system', entry: 'bench/system.ts' },
];

function runSection(entry: string, figures: Figure[], tables: Table[], args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.startsWith(FIGURE_PREFIX))
        figures.push(JSON.parse(line.slice(FIGURE_PREFIX.length)) as Figure);
      else if (line.startsWith(TABLE_PREFIX))
        tables.push(JSON.parse(line.slice(TABLE_PREFIX.length)) as Table);
      else console.log(line);
    });
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

async function main(): Promise<void> {
  // The load generator of the HTTP sections (Debian's wrk), installed as the stack installs its packages.
  await ensureDebianPackages(['wrk'], ['wrk']);
  // Section names pick sections; anything after `--` goes to every section run (e.g. the system
  // section's --step-seconds for a short development run).
  const argv = process.argv.slice(2);
  const dashes = argv.indexOf('--');
  const only = dashes === -1 ? argv : argv.slice(0, dashes);
  const sectionArgs = dashes === -1 ? [] : argv.slice(dashes + 1);
  const figures: Figure[] = [];
  const tables: Table[] = [];
  const failed: string[] = [];
  for (const s of sections) {
    if (only.length > 0 && !only.includes(s.name)) continue;
    if (!existsSync(s.entry)) {
      console.log(`[bench] section ${s.name}: ${s.entry} not written yet, skipped`);
      continue;
    }
    console.log(`[bench] section ${s.name} ...`);
    if ((await runSection(s.entry, figures, tables, sectionArgs)) !== 0) failed.push(s.name);
  }
  // A figure of Infinity (e.g. freshness with probes never seen) arrives as null through JSON.
  const fmt = (n: number | null | undefined): string =>
    n === undefined || n === null
      ? '∞'
      : Number.isNaN(n)
        ? '-'
        : Math.abs(n) >= 100
          ? n.toFixed(0)
          : n.toFixed(2);
  console.table(
    figures.map((f) => ({
      section: f.section,
      figure: f.figure,
      value: `${fmt(f.value)} ${f.unit}`,
      target: f.target ?? '-',
      met: meetsTarget(f.value, f.target) === undefined ? '-' : meetsTarget(f.value, f.target) ? 'yes' : 'NO',
      baseline:
        f.baseline === undefined ? '-' : `${fmt(f.baseline)} ${f.unit} (${f.baselineName ?? 'baseline'})`,
      ratio: f.baseline ? `${(f.value / f.baseline).toFixed(2)}×` : '-',
    })),
  );
  for (const t of tables) {
    console.log(`\n[bench] ${t.section}: ${t.name}`);
    console.table(t.rows);
    for (const n of t.notes ?? []) console.log(`  ${n}`);
  }
  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(
    file,
    JSON.stringify({ at: new Date().toISOString(), figures, tables, failedSections: failed }, null, 2),
  );
  console.log(
    `[bench] figures written to ${file}${failed.length ? `; sections that failed: ${failed.join(', ')}` : ''}`,
  );
  if (failed.length > 0) process.exitCode = 1;
}

void main();

// `npx tsx tools/catalogue-click-cpu.ts [--rate 2000] [--seconds 30]`: the click process's CPU
// seconds per 1,000 clicks over the catalogue of DATABASE_URL (its ad ids as they are, e.g. 10M
// from catalogue:generate; deleted ids leave gaps, and a click on one would be a 404), Zipf(1) with
// the system bench's mix (bench/zipf.ts), paced by wrk: a COLD step right after the click process
// (apps/click.ts, 2 workers unless ADCLICK_CLICK_WORKERS says) starts, then a WARM step. Prints one
// JSON line. Runs whatever apps/click.ts this checkout has (issue 23 measured main's before and the
// replica's after with it). ADCLICK_CATALOGUE_DIR/ADCLICK_AD_CHANGES_TOPIC name the replica.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { clickPaths } from '../bench/zipf.js';
import { treeCpuSeconds } from '../bench/proc-cpu.js';
import { catalogueIds, THREADS, writePaths } from '../bench/system-load.js';
import { parseWrkSummary, wrkScript } from '../bench/wrk-script.js';
import { config } from '../common/config.js';
import { createPool } from '../common/db.js';
import { waitFor } from '../common/wait.js';
import { ensureDebianPackages } from '../stack/runtime.js';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const RATE = arg('--rate', 2000);
const SECONDS = arg('--seconds', 30);
const PORT = 18_180;
const dir = mkdtempSync(join(tmpdir(), 'adclick-click-cpu-'));
// The load generator, installed as `npm run bench` installs it (a fresh machine has none).
await ensureDebianPackages(['wrk'], ['wrk']);

const pool = createPool(1);
const ids = await catalogueIds(pool);
const n = ids.length;
await pool.end();

const source = clickPaths({
  adIdAt: (i) => String(ids[i]),
  catalogueSize: n,
  secret: config.ADCLICK_SIGNING_SECRET,
  now: Date.now(),
  ttlSeconds: 3600,
});
await writePaths(join(dir, 'cold'), RATE * SECONDS * 1.1, () => source.next().path);
await writePaths(join(dir, 'warm'), RATE * SECONDS * 1.1, () => source.next().path);

// BENCH_CPU_PROF=<dir>: V8 profiles of the click process (primary and workers), as the system bench's.
const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];
const click = spawn(process.execPath, [...prof, '--import', 'tsx', 'apps/click.ts'], {
  cwd: resolve(import.meta.dirname, '..'),
  env: {
    ...process.env,
    PORT: String(PORT),
    ADCLICK_CLICK_WORKERS: process.env.ADCLICK_CLICK_WORKERS ?? '2',
    KAFKA_CLICKS_TOPIC: `clicks-cpu-${Date.now().toString(36)}`,
    ADCLICK_SPOOL_DIR: join(dir, 'spool'),
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
process.on('exit', () => click.kill('SIGKILL')); // never leave it behind, even on an error
await waitFor(
  'the click process to get ready',
  async () => (await fetch(`http://127.0.0.1:${PORT}/readyz`)).status === 200,
  300_000,
);
const script = join(dir, 'wrk.lua');
await import('node:fs').then((fs) =>
  fs.writeFileSync(script, wrkScript({ threads: THREADS, rate: RATE, streamed: true })),
);
const step = (paths: string): Record<string, number> => {
  const before = treeCpuSeconds({ click: click.pid }).click!;
  const r = spawnSync(
    'wrk',
    [`-t${THREADS}`, '-c64', `-d${SECONDS}s`, '--timeout', '5s', '-s', script, `http://127.0.0.1:${PORT}`],
    { env: { ...process.env, BENCH_PATHS: paths }, encoding: 'utf8' },
  );
  if (r.error) throw new Error(`wrk could not run: ${r.error.message}`);
  const w = parseWrkSummary(r.stdout || r.stderr);
  const cpu = treeCpuSeconds({ click: click.pid }).click! - before;
  return {
    requests: w.requests,
    rps: Math.round(w.requests / w.seconds),
    p50ms: w.p50_us / 1000,
    p99ms: w.p99_us / 1000,
    non302: w.other ?? 0,
    cpuSecondsPer1000: Number(((cpu / w.requests) * 1000).toFixed(4)),
  };
};
const cold = step(join(dir, 'cold'));
const warm = step(join(dir, 'warm'));
console.log(JSON.stringify({ ads: n, rate: RATE, seconds: SECONDS, cold, warm }));
click.kill('SIGTERM');
await once(click, 'exit');

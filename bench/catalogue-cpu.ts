// The click process's CPU seconds per 1,000 clicks over the whole catalogue, cold and warm, before
// and after the catalogue replica (issue 23): part of the system section, measured before the other
// processes start, so the click process is alone with the stack. For each build, one click process
// (apps/click.ts, 2 workers, a topic and spool of its own) is started, a COLD step is offered right
// after it is ready (empty ad cache, replica pages not touched yet) and a WARM step right after
// that, each paced by wrk with Zipf(1) click paths of the system mix over every ad id.
// - after: this checkout (the replica on local disk, ADCLICK_CATALOGUE_DIR);
// - before: the last commit without the replica (PostgreSQL lookups behind an in-process cache),
//   extracted with `git archive` into a temporary folder and run with this checkout's node_modules.
// Nothing is shared between the two: each has its own topic, and the older build only reads ads.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Child } from './child.js';
import { treeCpuSeconds } from './proc-cpu.js';
import { sleep } from '../common/wait.js';
import { parseWrkSummary, wrkScript } from './wrk-script.js';

/** The parent of the commit that put the catalogue replica on the click path (987d36b). */
export const BEFORE_REPLICA_COMMIT = '55a0139633048b28301b244de879a8d7216e8332';

export interface CatalogueCpuRow {
  build: string;
  phase: 'cold' | 'warm';
  rate: number;
  'p99 ms': number;
  non302: number;
  'CPU s / 1k clicks': number;
}

export interface CatalogueCpuOptions {
  /** Working folder (paths, logs, the older build). */
  dir: string;
  port: number;
  rate: number;
  seconds: number;
  /** Writes `count` click paths to `<base>.<thread>` (the system section's writer). */
  writePaths: (base: string, count: number) => Promise<void>;
  /** Environment of the click processes (the system section's, minus what is set here). */
  env: Record<string, string>;
  /** The "before" build (default: the last commit before the replica). */
  commit?: string;
  /** Rounds of both builds, their order alternating (default 1: before, then after). */
  rounds?: number;
  log: (message: string) => void;
}

const THREADS = 2;
const REPO = resolve(import.meta.dirname, '..');

/** Measures both builds (the older one only if its commit is in this clone's history). */
export async function catalogueClickCpu(opts: CatalogueCpuOptions): Promise<CatalogueCpuRow[]> {
  const rows: CatalogueCpuRow[] = [];
  const commit = opts.commit ?? BEFORE_REPLICA_COMMIT;
  const label = opts.commit ? `before (${opts.commit})` : 'before replica (PostgreSQL + cache)';
  const before = extractBuild(commit, join(opts.dir, 'before-build'));
  if (!before) opts.log(`[system] catalogue CPU: commit ${commit} not in this clone, "before" skipped`);
  const after = opts.commit ? 'after: this checkout' : 'after: catalogue replica';
  for (let round = 0; round < (opts.rounds ?? 1); round++) {
    // Alternating the order: whichever runs second in a round meets a warmer machine.
    const order = round % 2 === 0 ? (['before', 'after'] as const) : (['after', 'before'] as const);
    for (const which of order) {
      if (which === 'before' && before) rows.push(...(await measureBuild(label, before, opts)));
      if (which === 'after') rows.push(...(await measureBuild(after, REPO, opts)));
    }
  }
  return rows;
}

/** `git archive` of `commit` into `dir`, with this checkout's node_modules; undefined if unknown. */
function extractBuild(commit: string, dir: string): string | undefined {
  mkdirSync(dir, { recursive: true });
  const archive = spawnSync('git', ['-C', REPO, 'archive', '--format=tar', commit], {
    maxBuffer: 1 << 30,
  });
  if (archive.status !== 0) return undefined;
  const untar = spawnSync('tar', ['-x', '-C', dir], { input: archive.stdout });
  if (untar.status !== 0) return undefined;
  if (!existsSync(join(dir, 'node_modules')))
    symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

async function measureBuild(
  build: string,
  cwd: string,
  opts: CatalogueCpuOptions,
): Promise<CatalogueCpuRow[]> {
  const tag = build.startsWith('before') ? 'before' : 'after';
  const run = `${tag}-${Date.now().toString(36)}`;
  const env = {
    ...opts.env,
    PORT: String(opts.port),
    ADCLICK_CLICK_WORKERS: '2',
    KAFKA_CLICKS_TOPIC: `bench-catalogue-cpu-${run}`,
    ADCLICK_SPOOL_DIR: join(opts.dir, `spool-${run}`),
  };
  const count = opts.rate * opts.seconds * 1.1;
  await opts.writePaths(join(opts.dir, `cold-${tag}`), count);
  await opts.writePaths(join(opts.dir, `warm-${tag}`), count);
  const click = new Child(
    `click-cpu-${tag}`,
    process.execPath,
    ['--import', 'tsx', join(cwd, 'apps/click.ts')],
    env,
    opts.dir,
  );
  try {
    await ready(`http://127.0.0.1:${opts.port}/readyz`, click);
    const script = join(opts.dir, `catalogue-cpu-${tag}.lua`);
    writeFileSync(script, wrkScript({ threads: THREADS, rate: opts.rate, streamed: true }));
    const rows: CatalogueCpuRow[] = [];
    for (const phase of ['cold', 'warm'] as const) {
      opts.log(`[system] catalogue CPU: ${build}, ${phase}, ${opts.rate}/s for ${opts.seconds} s`);
      rows.push(step(build, phase, click, script, join(opts.dir, `${phase}-${tag}`), opts));
    }
    return rows;
  } finally {
    await click.stop();
  }
}

function step(
  build: string,
  phase: 'cold' | 'warm',
  click: Child,
  script: string,
  paths: string,
  opts: CatalogueCpuOptions,
): CatalogueCpuRow {
  const cpu = (): number => treeCpuSeconds({ click: click.pid }).click!;
  const c0 = cpu();
  const r = spawnSync(
    'wrk',
    [
      `-t${THREADS}`,
      '-c64',
      `-d${opts.seconds}s`,
      '--timeout',
      '5s',
      '-s',
      script,
      `http://127.0.0.1:${opts.port}`,
    ],
    { env: { ...process.env, BENCH_PATHS: paths }, encoding: 'utf8' },
  );
  const used = cpu() - c0;
  const w = parseWrkSummary(r.stdout || r.stderr);
  return {
    build,
    phase,
    rate: Math.round(w.requests / w.seconds),
    'p99 ms': +(w.p99_us / 1000).toFixed(1),
    non302: w.other + w.errors,
    'CPU s / 1k clicks': +((used / Math.max(1, w.requests)) * 1000).toFixed(3),
  };
}

async function ready(url: string, child: Child): Promise<void> {
  const until = Date.now() + 300_000;
  while (Date.now() < until) {
    if (!child.running) throw new Error(`${child.name} exited:\n${child.output().slice(-3000)}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(250);
  }
  throw new Error(`${child.name} did not get ready within 300 s`);
}

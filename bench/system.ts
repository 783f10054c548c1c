// System section of `npm run bench` (alone: `npm run bench:system [-- --step-seconds 20 ...]`). Runs
// every long-lived process of `npm start` (stack/app.ts's list: click, API, speed layer, archiver,
// Temporal worker) on topics, groups, a Pinot table, a task queue, an S3 prefix and ports of its
// own, and drives paced click load through the click process with wrk: signed impressions over ads
// drawn by Zipf (exponent 1) from the whole catalogue (≥ 10M ads: `npm run catalogue:generate`),
// 10 % duplicates, 3 % bad signatures, 1 % expired, at rising steps (5k, 7.5k, 10k for 5 minutes,
// 12.5k clicks/s), the click process restarted just before the long step (a cold ad cache).
//
// Per step: achieved rate, p50/p99, errors, both consumer groups' lag during the step and 30 s
// after it, freshness p95 (a probe click every 500 ms on an ad of its own, timed from its 302 until
// the metrics API of the API process counts it, asked every 250 ms: --probe-poll-ms), the archive
// watermark delay, and CPU seconds per 1,000 clicks of every process (the app's, and the stack's:
// Kafka, Pinot, PostgreSQL, Redis, S3, Temporal; those are shared with whatever else runs on the
// machine, so the machine's own busy time and load average are printed beside them). A step is
// sustained when its rate is reached (≥ 98 % of the offered rate), with no errors, each group's lag
// under 10,000 messages and not growing through the step, and freshness p95 ≤ 2 s. Headline: the
// highest sustained step, and the highest that also kept DESIGN's p99 of 25 ms (issue 29's figure
// at 10,000/s asks both). Baselines, same run: a bare node:http 302 server at the same steps; the
// app once more, on topics, groups and a table of its own, with the settings before this round of
// CPU levers (--before-env), for one step at the long step's rate ("<rate>/s before"); and, before
// anything else starts, the click process alone over the catalogue, cold and warm, before and after
// the catalogue replica (bench/catalogue-cpu.ts).
//
// Lag is the consumer's position lag (high watermark − next offset to read, from each process's
// metrics): the archiver commits only after an upload (every ARCHIVER_FLUSH_MS), so its committed
// offsets trail by design; that side shows in the committed lag and the archive watermark delay.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { createKafka } from '../common/kafka.js';
import { createAdvertiserWithAds } from '../test/support/click.js';
import { catalogueClickCpu, type CatalogueCpuRow } from './catalogue-cpu.js';
import { PRIVATE_RESOURCES, sweepLeftovers } from '../stack/leftovers.js';
import { loadAverage, treeCpuSeconds } from './proc-cpu.js';
import { AppRun, type Admin } from './system-app.js';
import { sleep } from '../common/wait.js';
import { catalogueIds, Prober, PROBE_POLL_MS, startWrk, waitUntil, writePaths } from './system-load.js';
import { report, type BaselineStep, type StepResult, type Totals } from './system-report.js';
import { clickPaths } from './zipf.js';

/**
 * How the app's processes run here, all on one machine: one click worker (a click host of its own
 * keeps one per core); each process's young generation is npm start's own (stack/app.ts
 * YOUNG_GENERATION_MB: larger for the consumers, V8's default for the click process). The "before"
 * run uses the settings before issue 29's levers.
 */
const LEVERS = ['ADCLICK_CLICK_WORKERS=1'];
const BEFORE_LEVERS = [
  'ADCLICK_CLICK_WORKERS=0',
  'NODE_OPTIONS=',
  'SPEED_COUNT_ROWS_PER_MESSAGE=1',
  'SPEED_PINOT_COUNTS=cumulative',
  'ADCLICK_CLICK_HTTP=node',
  'SPEED_PINOT_CONSUMING_ROWS=400000',
];

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: process.env.BENCH_SYSTEM_STEPS ?? '5000,7500,10000,12500' },
    'long-step': { type: 'string', default: '10000' },
    'step-seconds': { type: 'string', default: process.env.BENCH_SYSTEM_STEP_SECONDS ?? '60' },
    'long-step-seconds': { type: 'string', default: process.env.BENCH_SYSTEM_LONG_STEP_SECONDS ?? '300' },
    'after-seconds': { type: 'string', default: '30' },
    'baseline-seconds': { type: 'string', default: process.env.BENCH_SYSTEM_BASELINE_SECONDS ?? '30' },
    'warmup-seconds': { type: 'string', default: '10' },
    // Browsers are many: enough connections that the load generator's pool never caps the rate
    // (at 20 ms a click, 128 connections carry at most 6,400 clicks/s).
    connections: { type: 'string', default: process.env.BENCH_SYSTEM_CONNECTIONS ?? '1024' },
    'min-ads': { type: 'string', default: process.env.BENCH_SYSTEM_MIN_ADS ?? '10000000' },
    'no-baseline': { type: 'boolean', default: false },
    'no-restart': { type: 'boolean', default: false },
    /** Extra environment for the app processes, e.g. --env ADCLICK_PRODUCE_LINGER_MS=5 (repeatable). */
    env: { type: 'string', multiple: true, default: LEVERS },
    /** The "before" baseline's settings (repeatable; default: the settings before issue 29's levers). */
    'before-env': { type: 'string', multiple: true, default: BEFORE_LEVERS },
    'no-before': { type: 'boolean', default: false },
    /** The click process alone, cold and warm, before and after the replica (rate/s, seconds each). */
    'catalogue-cpu-rate': { type: 'string', default: '2000' },
    'catalogue-cpu-seconds': { type: 'string', default: '30' },
    'no-catalogue-cpu': { type: 'boolean', default: false },
    /** Compare this checkout's click process with another commit's instead (A/B of a click-path change). */
    'catalogue-cpu-commit': { type: 'string', default: '' },
    'catalogue-cpu-rounds': { type: 'string', default: '1' },
    /** Only the click process alone (the catalogue CPU rows), no pipeline steps. */
    'catalogue-cpu-only': { type: 'boolean', default: false },
    label: { type: 'string', default: '' },
    /** How often the freshness prober asks the metrics API while a probe waits (ms). */
    'probe-poll-ms': { type: 'string', default: String(PROBE_POLL_MS) },
  },
});

const STEPS = args.steps.split(',').map(Number);
const LONG_STEP = Number(args['long-step']);
const STEP_S = Number(args['step-seconds']);
const LONG_STEP_S = Number(args['long-step-seconds']);
const PROBE_POLL = Number(args['probe-poll-ms']);
if (!Number.isInteger(PROBE_POLL) || PROBE_POLL < 1)
  throw new Error(`--probe-poll-ms must be a whole number of milliseconds ≥ 1, not ${args['probe-poll-ms']}`);
const BASELINE_S = Number(args['baseline-seconds']);
const WARMUP_S = Number(args['warmup-seconds']);
const WARMUP_RATE = 2000;
const IMPRESSION_TTL_S = 3 * 3600;

const portBase = Number(process.env.BENCH_SYSTEM_PORT_BASE ?? 18_180);
const run = `${Date.now().toString(36)}${args.label ? `-${args.label}` : ''}`.replace(/[^a-z0-9-]/gi, '');
const dir = mkdtempSync(join(tmpdir(), 'adclick-system-'));
const envOf = (kvs: string[]): Record<string, string> =>
  Object.fromEntries(kvs.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const extraEnv = envOf(args.env);
const beforeEnv = envOf(args['before-env']);
const seconds = (rate: number): number => (rate === LONG_STEP ? LONG_STEP_S : STEP_S);
const pathsOf = (name: string): string => join(dir, `paths-${name}`);
const withBefore = !args['no-before'] && Object.keys(beforeEnv).length > 0 && STEPS.includes(LONG_STEP);

/** A stack service's PID from the stack's run folder (or BENCH_SYSTEM_PIDS="kafka=1234,…"). */
function stackPids(): Record<string, number | undefined> {
  const pids = Object.fromEntries(
    ['kafka', 'pinot', 'postgres', 'redis', 's3', 'temporal'].map((s) => {
      try {
        return [s, Number(readFileSync(join(config.ADCLICK_STACK_DIR, 'run', `${s}.pid`), 'utf8').trim())];
      } catch {
        return [s, undefined];
      }
    }),
  ) as Record<string, number | undefined>;
  // A stack service run elsewhere (e.g. a second broker for a before/after of its settings).
  for (const kv of (process.env.BENCH_SYSTEM_PIDS ?? '').split(',').filter(Boolean)) {
    const [name, pid] = kv.split('=');
    pids[name!] = Number(pid);
  }
  return pids;
}

/** Reads the catalogue and writes every step's click paths; returns the path writer for more. */
async function prepareLoad(pool: ReturnType<typeof createPool>) {
  console.log(`[system] load ${loadAverage().toFixed(2)}; reading the catalogue's ad ids`);
  const ids = await catalogueIds(pool);
  if (ids.length < Number(args['min-ads']))
    throw new Error(
      `the catalogue has ${ids.length} ads, the system section wants ≥ ${args['min-ads']}: run ` +
        '`npm run catalogue:generate -- --ads 10000000 --advertisers 10000` first (or pass --min-ads)',
    );
  console.log(`[system] ${ids.length} ads; writing Zipf click paths for the steps`);
  const source = clickPaths({
    adIdAt: (i) => String(ids[i]),
    catalogueSize: ids.length,
    secret: config.ADCLICK_SIGNING_SECRET,
    now: Date.now(),
    ttlSeconds: IMPRESSION_TTL_S,
  });
  const write = (base: string, count: number) => writePaths(base, count, () => source.next().path);
  await write(pathsOf('warmup'), WARMUP_RATE * WARMUP_S * 1.1 + 1000);
  for (const rate of STEPS) await write(pathsOf(String(rate)), rate * seconds(rate) * 1.05 + 1000);
  if (withBefore) await write(pathsOf('before'), LONG_STEP * STEP_S * 1.05 + 1000);
  return { write, catalogueAds: ids.length };
}

/** The bare node:http 302 server at the same steps: rate, p99 and its CPU per 1,000 requests. */
async function runBaseline(): Promise<BaselineStep[]> {
  console.log(`[system] baseline: bare node:http 302 server at the same steps, ${BASELINE_S} s each`);
  const port = portBase + 4;
  const bare = spawn(
    process.execPath,
    [
      '-e',
      `require('node:http').createServer((q, s) => { s.writeHead(302, { location: 'https://example.com/', 'content-length': '0' }); s.end(); }).listen(${port}, '127.0.0.1')`,
    ],
    { stdio: 'inherit' },
  );
  const out: BaselineStep[] = [];
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitUntil(
      async () => (await fetch(url, { redirect: 'manual' })).status === 302,
      10_000,
      'the bare server',
    );
    const cpu = () => treeCpuSeconds({ bare: bare.pid })['bare']!;
    for (const rate of STEPS) {
      const load = startWrk(wrkOpts, url, BASELINE_S, pathsOf(String(rate)), rate, `wrk-bare-${rate}`);
      // The bare server's CPU over the same steady part of the step as the system's.
      await sleep(2000);
      const c0 = cpu();
      const t0 = Date.now();
      await sleep(Math.max(0, (BASELINE_S - 3) * 1000));
      const cpuPerK = ((cpu() - c0) / (((Date.now() - t0) / 1000) * rate)) * 1000;
      out.push({ offered: rate, wrk: await load.done, cpuPerK });
    }
  } finally {
    bare.kill('SIGTERM');
  }
  return out;
}

const wrkOpts = { dir, connections: Number(args.connections) };

/** Every probe and lag sample, for a closer look at a step (e.g. when freshness stalled). */
function writeDetail(results: StepResult[]): void {
  mkdirSync('bench/results', { recursive: true });
  const detail = `bench/results/system-${run}-detail.json`;
  const probes = (r: StepResult) =>
    r.probes.map((p) => ({
      sentAt: p.sentAt,
      ms: p.seenAt !== undefined && p.at302 !== undefined ? p.seenAt - p.at302 : null,
      failure: p.failure,
    }));
  writeFileSync(
    detail,
    JSON.stringify(
      results.map((r) => ({ step: r.step, probes: probes(r), samples: r.samples, after: r.after })),
    ),
  );
  console.log(`[system] probes and lag samples of every step in ${detail}`);
}

/** The app on names of its own (`tag`), its steps, then its exactness check; always cleaned up. */
async function runApp(
  ctx: {
    pool: ReturnType<typeof createPool>;
    admin: Admin;
    probeAds: string[];
    probeAdvertiser: string;
    catalogueAds: number;
  },
  tag: string,
  env: Record<string, string>,
  steps: Array<{ rate: number; name: string; paths: string; seconds: number }>,
): Promise<{ results: StepResult[]; totals: Totals; questions: number }> {
  const app = new AppRun({
    ...ctx,
    run: `${run}${tag}`,
    dir,
    ports: { click: portBase, api: portBase + 1, speedMetrics: portBase + 2, archiverMetrics: portBase + 3 },
    env: { ADCLICK_SPOOL_DIR: join(dir, `spool${tag}`), ...env },
    stackPids: stackPids(),
    wrk: wrkOpts,
    afterSeconds: Number(args['after-seconds']),
  });
  try {
    await app.start();
    if (WARMUP_S > 0) await app.warmUp(pathsOf('warmup'), WARMUP_RATE, WARMUP_S);
    const prober = new Prober(ctx.probeAds, ctx.probeAdvertiser, app.clickBase, app.apiBase, PROBE_POLL);
    const results: StepResult[] = [];
    for (const s of steps) {
      const restart = s.rate === LONG_STEP && !args['no-restart'] && tag === '';
      results.push(await app.step({ ...s, restartClick: restart, prober }));
    }
    await prober.stop();
    return { results, totals: await app.exactness(), questions: prober.questions };
  } finally {
    await app.stop();
  }
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const pool = createPool(4);
  await migrate(pool);
  const admin = createKafka('bench-system').admin();
  await admin.connect();
  let probeAdvertiser: string | undefined;
  try {
    await sweepLeftovers(PRIVATE_RESOURCES); // a killed run's table would consume through this one
    const { write, catalogueAds } = await prepareLoad(pool);
    let catalogueCpu: CatalogueCpuRow[] = [];
    if (!args['no-catalogue-cpu'])
      catalogueCpu = await catalogueClickCpu({
        dir,
        port: portBase + 5,
        rate: Number(args['catalogue-cpu-rate']),
        seconds: Number(args['catalogue-cpu-seconds']),
        writePaths: write,
        env: { HOST: '127.0.0.1', ...extraEnv },
        commit: args['catalogue-cpu-commit'] || undefined,
        rounds: Number(args['catalogue-cpu-rounds']),
        log: (m) => console.log(m),
      });
    if (args['catalogue-cpu-only']) {
      // An A/B of a click-path change (--catalogue-cpu-commit): the rows only, no figures.
      console.table(catalogueCpu);
      return;
    }
    const probeSeconds = STEPS.reduce((s, r) => s + seconds(r), 0) + (withBefore ? STEP_S : 0);
    const fixture = await createAdvertiserWithAds(pool, Prober.count(probeSeconds), `system-bench-${run}`);
    probeAdvertiser = fixture.advertiserId;
    const ctx = {
      pool,
      admin,
      probeAds: fixture.ads.map((a) => a.adId),
      probeAdvertiser: fixture.advertiserId,
      catalogueAds,
    };
    const steps = STEPS.map((rate) => ({
      rate,
      name: `${rate}/s`,
      paths: pathsOf(String(rate)),
      seconds: seconds(rate),
    }));
    const main = await runApp(ctx, '', extraEnv, steps);
    const results = [...main.results];
    let totals = main.totals;
    if (withBefore) {
      console.log(`[system] the settings before this round's levers: ${JSON.stringify(beforeEnv)}`);
      const step = {
        rate: LONG_STEP,
        name: `${LONG_STEP}/s before`,
        paths: pathsOf('before'),
        seconds: STEP_S,
      };
      const before = await runApp(ctx, '-before', { ...extraEnv, ...beforeEnv }, [step]);
      results.push(...before.results);
      totals = sumTotals(totals, before.totals);
    }
    const baseline = args['no-baseline'] ? [] : await runBaseline();
    const notes = [
      `wrk 2 threads, ${args.connections} connections, paced; Zipf(1) over the catalogue, 10 % duplicates, 3 % bad signatures, 1 % expired`,
      `click process restarted before the ${LONG_STEP}/s step: ${args['no-restart'] ? 'no (--no-restart)' : 'yes'}; extra env: ${JSON.stringify(extraEnv)}`,
      ...(withBefore ? [`"before" settings: ${JSON.stringify(beforeEnv)}`] : []),
      `freshness: a probe click every 500 ms, the metrics API asked every ${PROBE_POLL} ms while one waits: ${main.questions} questions over the run's steps (the API's only reads, in its, Pinot's and PostgreSQL's rows)`,
    ];
    report({ run, startedAt, notes, results, baseline, totals, catalogueCpu });
    writeDetail(results);
  } finally {
    await AppRun.dropProbeAds(pool, probeAdvertiser);
    await admin.disconnect().catch(() => undefined);
    await pool.end();
    if (!process.env.BENCH_SYSTEM_KEEP_DIR) rmSync(dir, { recursive: true, force: true });
    else console.log(`[system] logs kept in ${dir}`);
  }
}

/** Two app runs' totals: each run's checks hold on its own, so their sums hold together. */
function sumTotals(a: Totals, b: Totals): Totals {
  const out = { ...a };
  for (const k of Object.keys(out) as Array<keyof Totals>) out[k] += b[k];
  return out;
}

mkdirSync(dir, { recursive: true });
// Exits once done: a client's idle socket or timer must not keep the section (and `npm run bench`) waiting.
main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(`bench system failed: ${e.stack ?? e.message}`);
    process.exit(1);
  },
);

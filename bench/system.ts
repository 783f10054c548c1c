// System section of `npm run bench` (alone: `npm run bench:system [-- --step-seconds 20 ...]`). Runs
// every long-lived process of `npm start` (stack/app.ts's list: click, API, speed layer, archiver,
// Temporal worker) on topics, groups, a Pinot table, a task queue, an S3 prefix and ports of its
// own, and drives paced click load through the click process with wrk: signed impressions over ads
// drawn by Zipf (exponent 1) from the whole catalogue (≥ 10M ads: `npm run catalogue:generate`),
// 10 % duplicates, 3 % bad signatures, 1 % expired, at rising steps (5k, 7.5k, 10k for 5 minutes,
// 12.5k clicks/s), the click process restarted just before the long step (a cold ad cache).
//
// Per step: achieved rate, p50/p99, errors, both consumer groups' lag during the step and 30 s after
// it, freshness p95 (a probe click every 500 ms on an ad of its own, timed from its 302 until the
// metrics API of the API process counts it), the archive watermark delay, and CPU seconds per 1,000
// clicks of every process (the app's, and the stack's: Kafka, Pinot, PostgreSQL, Redis, S3, Temporal;
// those are shared with whatever else runs on the machine, so the machine's own busy time and load
// average are printed beside them). A step is sustained when its rate is reached (≥ 98 % of the
// offered rate), with no errors, each group's lag under 10,000 messages and not growing through
// the step, and freshness p95 ≤ 2 s. Headline: the highest sustained step. Baseline, same run: a bare
// node:http 302 server at the same steps.
//
// Lag is the consumer's position lag (high watermark − next offset to read, from each process's
// metrics): the archiver commits only after an upload (every ARCHIVER_FLUSH_MS), so its committed
// offsets trail by design; that side shows in the committed lag and the archive watermark delay.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { createKafka } from '../common/kafka.js';
import { createS3 } from '../common/s3.js';
import { minuteOf } from '../common/time.js';
import { clickPath, newImpression } from '../ingest/impression.js';
import { dropPinotTable } from '../speed-layer/pinot-tables.js';
import { appProcesses } from '../stack/app.js';
import { createAdvertiserWithAds } from '../test/support/click.js';
import { Child } from './child.js';
import { loadAverage, machineCpuSeconds, treeCpuSeconds } from './proc-cpu.js';
import { percentile, reportFigure, reportTable } from './report.js';
import { parseWrkSummary, wrkScript, type WrkResult } from './wrk-script.js';
import { clickPaths } from './zipf.js';

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
    env: { type: 'string', multiple: true, default: [] },
    label: { type: 'string', default: '' },
  },
});

const STEPS = args.steps.split(',').map(Number);
const LONG_STEP = Number(args['long-step']);
const STEP_S = Number(args['step-seconds']);
const LONG_STEP_S = Number(args['long-step-seconds']);
const AFTER_S = Number(args['after-seconds']);
const BASELINE_S = Number(args['baseline-seconds']);
const WARMUP_S = Number(args['warmup-seconds']);
const WARMUP_RATE = 2000;
const CONNECTIONS = Number(args.connections);
const MIN_ADS = Number(args['min-ads']);
const THREADS = 2;
const PROBE_EVERY_MS = 500;
const POLL_EVERY_MS = 100;
const SAMPLE_EVERY_MS = 1000;
const LAG_BOUND = 10_000;
const FRESHNESS_BOUND_MS = 2000;
const IMPRESSION_TTL_S = 3 * 3600;
const SECTION = 'system';

const portBase = Number(process.env.BENCH_SYSTEM_PORT_BASE ?? 18_180);
const ports = {
  click: portBase,
  api: portBase + 1,
  speedMetrics: portBase + 2,
  archiverMetrics: portBase + 3,
  bare: portBase + 4,
};
const run = `${Date.now().toString(36)}${args.label ? `-${args.label}` : ''}`.replace(/[^a-z0-9-]/gi, '');
const names = {
  clicks: `bench-clicks-${run}`,
  counts: `bench-minute-counts-${run}`,
  speedGroup: `bench-speed-${run}`,
  archiverGroup: `bench-archiver-${run}`,
  pinotTable: `bench_${run.replace(/-/g, '_')}`,
  taskQueue: `bench-${run}`,
  s3Prefix: `bench-${run}/`,
};
const dir = mkdtempSync(join(tmpdir(), 'adclick-system-'));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const extraEnv = Object.fromEntries(
  args.env.map((kv) => {
    const at = kv.indexOf('=');
    return [kv.slice(0, at), kv.slice(at + 1)];
  }),
);

const appEnv: Record<string, string> = {
  HOST: '127.0.0.1',
  PORT: String(ports.click),
  API_PORT: String(ports.api),
  API_URL: `http://127.0.0.1:${ports.api}`,
  SPEED_LAYER_METRICS_PORT: String(ports.speedMetrics),
  KAFKA_CLICKS_TOPIC: names.clicks,
  KAFKA_MINUTE_COUNTS_TOPIC: names.counts,
  SPEED_CONSUMER_GROUP: names.speedGroup,
  ARCHIVER_GROUP_ID: names.archiverGroup,
  SPEED_PINOT_TABLE: names.pinotTable,
  TEMPORAL_TASK_QUEUE: names.taskQueue,
  BATCH_S3_PREFIX: names.s3Prefix,
  BATCH_SCHEDULE_PREFIX: `bench-${run}`,
  ADCLICK_SPOOL_DIR: join(dir, 'spool'),
  ...extraEnv,
};

/** The sum of a metric's samples (those whose labels include `label`, if given) in a Prometheus text. */
function metricSum(text: string, name: string, label?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\w+)(\{[^}]*\})? ([\d.e+-]+|NaN)$/.exec(line);
    if (m && m[1] === name && (!label || (m[2] ?? '').includes(label))) sum += Number(m[3]);
  }
  return sum;
}

async function metrics(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return res.text();
}

async function waitUntil(
  check: () => Promise<boolean>,
  ms: number,
  what: string,
  child?: Child,
): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child && !child.running)
      throw new Error(`${child.name} exited while waiting for ${what}:\n${child.output().slice(-3000)}`);
    if (await check().catch(() => false)) return;
    await sleep(250);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

const httpOk = (url: string) => async () =>
  (await fetch(url, { signal: AbortSignal.timeout(2000) })).status === 200;

/** Every ad id of the catalogue, ascending (COPY: 10M ids in a few seconds, 80 MB as doubles). */
async function catalogueIds(pool: pg.Pool): Promise<Float64Array> {
  const { rows } = await pool.query<{ n: string }>('select count(*) as n from ads');
  const ids = new Float64Array(Number(rows[0]!.n) + 100_000);
  let n = 0;
  const client = await pool.connect();
  try {
    const stream = client.query(copyTo('copy (select ad_id from ads order by ad_id) to stdout'));
    let rest = '';
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const text = rest + chunk.toString('latin1');
      let start = 0;
      for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
        if (n < ids.length) ids[n++] = Number(text.slice(start, nl));
        start = nl + 1;
      }
      rest = text.slice(start);
    }
  } finally {
    client.release();
  }
  return ids.subarray(0, n);
}

/** Writes `count` paths for a paced step, one file per wrk thread (`<base>.<thread>`). */
async function writePaths(base: string, count: number, next: () => string): Promise<void> {
  const outs = Array.from({ length: THREADS }, (_, t) => createWriteStream(`${base}.${t}`));
  const perThread = Math.ceil(count / THREADS);
  for (let t = 0; t < THREADS; t++) {
    let chunk: string[] = [];
    for (let i = 0; i < perThread; i++) {
      chunk.push(next());
      if (chunk.length === 10_000) {
        if (!outs[t]!.write(chunk.join('\n') + '\n')) await once(outs[t]!, 'drain');
        chunk = [];
      }
    }
    if (chunk.length > 0) outs[t]!.write(chunk.join('\n') + '\n');
    outs[t]!.end();
    await once(outs[t]!, 'finish');
  }
}

function startWrk(url: string, seconds: number, paths: string, rate: number, name: string) {
  const script = join(dir, `${name}.lua`);
  writeFileSync(script, wrkScript({ threads: THREADS, rate, streamed: true }));
  const child = new Child(
    name,
    'wrk',
    [`-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url],
    { BENCH_PATHS: paths },
    dir,
  );
  const done: Promise<WrkResult> = child.exited().then(() => parseWrkSummary(child.output()));
  return { child, done };
}

interface Probe {
  adId: string;
  sentAt: number;
  at302?: number;
  seenAt?: number;
  failure?: string;
}

/** Sends a probe click every PROBE_EVERY_MS while `sending()`; polls the metrics API for each. */
class Prober {
  readonly probes: Probe[] = [];
  private next = 0;
  private polling = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly ads: string[],
    private readonly clickBase: string,
    private readonly apiBase: string,
  ) {
    this.loop = this.poll();
  }

  /** Probe clicks until `until` (epoch ms). */
  async send(until: number): Promise<void> {
    let at = Date.now();
    const sends: Array<Promise<void>> = [];
    while (Date.now() < until && this.next < this.ads.length) {
      const probe: Probe = { adId: this.ads[this.next++]!, sentAt: Date.now() };
      this.probes.push(probe);
      sends.push(this.click(probe));
      at += PROBE_EVERY_MS;
      await sleep(Math.max(0, at - Date.now()));
    }
    await Promise.all(sends);
  }

  async stop(): Promise<void> {
    this.polling = false;
    await this.loop;
  }

  private async click(probe: Probe): Promise<void> {
    const imp = newImpression(config.ADCLICK_SIGNING_SECRET, probe.adId, 3600, Date.now());
    try {
      const res = await fetch(this.clickBase + clickPath(imp), {
        redirect: 'manual',
        signal: AbortSignal.timeout(5000),
      });
      await res.arrayBuffer();
      if (res.status === 302) probe.at302 = Date.now();
      else probe.failure = `status ${res.status}`;
    } catch (e) {
      probe.failure = (e as Error).message;
    }
  }

  private async poll(): Promise<void> {
    while (this.polling) {
      const waiting = this.probes.filter((p) => p.at302 !== undefined && p.seenAt === undefined);
      await Promise.all(
        waiting.map(async (p) => {
          const from = minuteOf(p.sentAt) - 60_000;
          const to = minuteOf(Date.now()) + 120_000;
          try {
            const res = await fetch(
              `${this.apiBase}/v1/ads/${p.adId}/clicks?granularity=minute&from=${from}&to=${to}`,
              {
                headers: { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}` },
                signal: AbortSignal.timeout(5000),
              },
            );
            const body = (await res.json()) as { total?: number };
            if (res.status === 200 && (body.total ?? 0) > 0) p.seenAt ??= Date.now();
          } catch {
            // polled again next turn
          }
        }),
      );
      await sleep(POLL_EVERY_MS);
    }
  }
}

interface LagSample {
  t: number;
  speedLag: number;
  archiverLag: number;
  speedCommittedLag?: number;
  archiverCommittedLag?: number;
  watermarkDelayMs?: number;
}

interface StepResult {
  step: string;
  offered: number;
  seconds: number;
  wrk: WrkResult;
  rate: number;
  samples: LagSample[];
  after: LagSample[];
  probes: Probe[];
  cpu: Record<string, number>;
  cpuWindowS: number;
  clicksInWindow: number;
  machineBusyCores: number;
  loadBefore: number;
  loadAfter: number;
  clickRestartS?: number;
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const pool = createPool(4);
  await migrate(pool);
  const kafka = createKafka('bench-system');
  const admin = kafka.admin();
  await admin.connect();
  const children = new Map<string, Child>();
  const results: StepResult[] = [];
  const baseline: Array<{ offered: number; wrk: WrkResult; cpuPerK: number }> = [];
  const clickBase = `http://127.0.0.1:${ports.click}`;
  const apiBase = `http://127.0.0.1:${ports.api}`;
  const stackPids = Object.fromEntries(
    ['kafka', 'pinot', 'postgres', 'redis', 's3', 'temporal'].map((s) => {
      try {
        return [s, Number(readFileSync(join(config.ADCLICK_STACK_DIR, 'run', `${s}.pid`), 'utf8').trim())];
      } catch {
        return [s, undefined];
      }
    }),
  ) as Record<string, number | undefined>;
  // A stack service run elsewhere (e.g. a second broker for a before/after of its settings):
  // BENCH_SYSTEM_PIDS="kafka=1234,pinot=5678" counts those processes instead.
  for (const kv of (process.env.BENCH_SYSTEM_PIDS ?? '').split(',').filter(Boolean)) {
    const [name, pid] = kv.split('=');
    stackPids[name!] = Number(pid);
  }
  let probeAdvertiser: string | undefined;
  const loggedBeforeRestart = { all: 0, valid: 0, failOpen: 0 };

  try {
    console.log(`[system] load ${loadAverage().toFixed(2)}; reading the catalogue's ad ids`);
    const ids = await catalogueIds(pool);
    if (ids.length < MIN_ADS)
      throw new Error(
        `the catalogue has ${ids.length} ads, the system section wants ≥ ${MIN_ADS}: run ` +
          '`npm run catalogue:generate -- --ads 10000000 --advertisers 10000` first (or pass --min-ads)',
      );
    console.log(`[system] ${ids.length} ads; writing Zipf click paths for the steps`);
    const now = Date.now();
    const source = clickPaths({
      adIdAt: (i) => String(ids[i]),
      catalogueSize: ids.length,
      secret: config.ADCLICK_SIGNING_SECRET,
      now,
      ttlSeconds: IMPRESSION_TTL_S,
    });
    const next = (): string => source.next().path;
    const seconds = (rate: number): number => (rate === LONG_STEP ? LONG_STEP_S : STEP_S);
    const pathsOf = (name: string): string => join(dir, `paths-${name}`);
    await writePaths(pathsOf('warmup'), WARMUP_RATE * WARMUP_S * 1.1 + 1000, next);
    for (const rate of STEPS)
      await writePaths(pathsOf(String(rate)), rate * seconds(rate) * 1.05 + 1000, next);
    const probeCount = Math.ceil(STEPS.reduce((s, r) => s + seconds(r), 0) / (PROBE_EVERY_MS / 1000)) + 20;
    const probeFixture = await createAdvertiserWithAds(pool, probeCount, `system-bench-${run}`);
    probeAdvertiser = probeFixture.advertiserId;
    const probeAds = probeFixture.ads.map((a) => a.adId);

    // The app's processes, as stack/app.ts runs them (the archiver with its metrics served).
    const start = (name: string): Child => {
      const spec = appProcesses.find((p) => p.name === name)!;
      const extra = name === 'archiver' ? ['--metrics-port', String(ports.archiverMetrics)] : [];
      const child = Child.node(name, spec.entry, appEnv, dir, [...(spec.args ?? []), ...extra]);
      children.set(name, child);
      return child;
    };
    console.log(`[system] starting ${appProcesses.map((p) => p.name).join(', ')} (run ${run})`);
    // The speed layer first: it creates the topics and the Pinot table the others use.
    const speed = start('speed-layer');
    await waitUntil(
      httpOk(`http://127.0.0.1:${ports.speedMetrics}/metrics`),
      120_000,
      'the speed layer',
      speed,
    );
    for (const p of appProcesses) if (!children.has(p.name)) start(p.name);
    await waitUntil(httpOk(`${apiBase}/readyz`), 120_000, 'the API process', children.get('api'));
    await waitUntil(httpOk(`${clickBase}/readyz`), 120_000, 'the click process', children.get('click'));
    await waitUntil(
      httpOk(`http://127.0.0.1:${ports.archiverMetrics}/metrics`),
      120_000,
      'the archiver',
      children.get('archiver'),
    );

    const roots = (wrk?: Child): Record<string, number | undefined> => ({
      click: children.get('click')?.pid,
      api: children.get('api')?.pid,
      'speed-layer': children.get('speed-layer')?.pid,
      archiver: children.get('archiver')?.pid,
      worker: children.get('worker')?.pid,
      ...stackPids,
      'wrk (load)': wrk?.pid,
    });
    const clicksLogged = async (): Promise<number> =>
      metricSum(await metrics(`${clickBase}/metrics`), 'adclick_clicks_total');
    const validLogged = async (): Promise<number> =>
      metricSum(await metrics(`${clickBase}/metrics`), 'adclick_clicks_total', '"valid"');
    const failedOpen = async (): Promise<number> =>
      metricSum(await metrics(`${clickBase}/metrics`), 'adclick_redis_fail_open_total');

    const sampleLag = async (): Promise<LagSample> => {
      const [speedText, archText] = await Promise.all([
        metrics(`http://127.0.0.1:${ports.speedMetrics}/metrics`).catch(() => ''),
        metrics(`http://127.0.0.1:${ports.archiverMetrics}/metrics`).catch(() => ''),
      ]);
      const s: LagSample = {
        t: Date.now(),
        speedLag: metricSum(speedText, 'adclick_speed_consumer_lag'),
        archiverLag: metricSum(archText, 'archiver_consumer_lag'),
      };
      try {
        const ends = await admin.fetchTopicOffsets(names.clicks);
        const end = ends.reduce((n, p) => n + Number(p.high), 0);
        const committed = async (groupId: string): Promise<number> => {
          const [t] = await admin.fetchOffsets({ groupId, topics: [names.clicks] });
          return (t?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
        };
        s.speedCommittedLag = end - (await committed(names.speedGroup));
        s.archiverCommittedLag = end - (await committed(names.archiverGroup));
        const wm = await pool.query<{ wm: Date | null; n: string }>(
          'select min(watermark) as wm, count(*) as n from archive_watermarks where topic = $1',
          [names.clicks],
        );
        const row = wm.rows[0];
        if (row?.wm && Number(row.n) >= ends.length) s.watermarkDelayMs = s.t - row.wm.getTime();
      } catch {
        // sampled again next second
      }
      return s;
    };
    const sampleWhile = (running: () => boolean): Promise<LagSample[]> =>
      (async () => {
        const out: LagSample[] = [];
        while (running()) {
          const t0 = Date.now();
          out.push(await sampleLag());
          await sleep(Math.max(0, SAMPLE_EVERY_MS - (Date.now() - t0)));
        }
        return out;
      })();

    if (WARMUP_S > 0) {
      console.log(`[system] warm-up: ${WARMUP_RATE}/s for ${WARMUP_S} s`);
      await startWrk(clickBase, WARMUP_S, pathsOf('warmup'), WARMUP_RATE, 'wrk-warmup').done;
      await sleep(5000);
    }

    const prober = new Prober(probeAds, clickBase, apiBase);
    for (const rate of STEPS) {
      const stepS = seconds(rate);
      let clickRestartS: number | undefined;
      if (rate === LONG_STEP && !args['no-restart']) {
        console.log('[system] restarting the click process (cold ad cache)');
        loggedBeforeRestart.all += await clicksLogged();
        loggedBeforeRestart.valid += await validLogged();
        loggedBeforeRestart.failOpen += await failedOpen();
        const t0 = Date.now();
        await children.get('click')!.stop();
        const click = start('click');
        await waitUntil(httpOk(`${clickBase}/readyz`), 120_000, 'the restarted click process', click);
        clickRestartS = (Date.now() - t0) / 1000;
      }
      const loadBefore = loadAverage();
      console.log(`[system] step ${rate}/s for ${stepS} s (load ${loadBefore.toFixed(2)})`);
      const stepStart = Date.now();
      const wrk = startWrk(clickBase, stepS, pathsOf(String(rate)), rate, `wrk-${rate}`);
      let loading = true;
      const samples = sampleWhile(() => loading);
      const probesBefore = prober.probes.length;
      const sending = prober.send(stepStart + stepS * 1000);
      // CPU over the step's steady part: after 2 s, until 1 s before wrk stops.
      await sleep(2000);
      const cpu0 = treeCpuSeconds(roots(wrk.child));
      const m0 = machineCpuSeconds();
      const c0 = await clicksLogged();
      const w0 = Date.now();
      await sleep(Math.max(0, stepStart + (stepS - 1) * 1000 - Date.now()));
      const cpu1 = treeCpuSeconds(roots(wrk.child));
      const m1 = machineCpuSeconds();
      const c1 = await clicksLogged();
      const w1 = Date.now();
      const result = await wrk.done;
      loading = false;
      await sending;
      const during = await samples;
      let after = true;
      const afterSamples = sampleWhile(() => after);
      await sleep(AFTER_S * 1000);
      after = false;
      const cpu: Record<string, number> = {};
      for (const k of Object.keys(cpu1)) cpu[k] = cpu1[k]! - (cpu0[k] ?? 0);
      results.push({
        step: `${rate}/s`,
        offered: rate,
        seconds: stepS,
        wrk: result,
        rate: result.requests / result.seconds,
        samples: during,
        after: await afterSamples,
        probes: prober.probes.slice(probesBefore),
        cpu,
        cpuWindowS: (w1 - w0) / 1000,
        clicksInWindow: c1 - c0,
        machineBusyCores: (m1.busy - m0.busy) / ((w1 - w0) / 1000),
        loadBefore,
        loadAfter: loadAverage(),
        clickRestartS,
      });
      printStep(results.at(-1)!);
    }
    await prober.stop();

    // Exactness check: every click the click process logged is in Kafka, counted by the speed
    // layer if valid, and archived.
    const totals = await exactness(
      loggedBeforeRestart.all + (await clicksLogged()),
      loggedBeforeRestart.valid + (await validLogged()),
      loggedBeforeRestart.failOpen + (await failedOpen()),
    );

    if (!args['no-baseline']) {
      console.log(`[system] baseline: bare node:http 302 server at the same steps, ${BASELINE_S} s each`);
      const bare = spawn(
        process.execPath,
        [
          '-e',
          `require('node:http').createServer((q, s) => { s.writeHead(302, { location: 'https://example.com/', 'content-length': '0' }); s.end(); }).listen(${ports.bare}, '127.0.0.1')`,
        ],
        { stdio: 'inherit' },
      );
      try {
        await waitUntil(
          async () => (await fetch(`http://127.0.0.1:${ports.bare}/`, { redirect: 'manual' })).status === 302,
          10_000,
          'the bare server',
        );
        for (const rate of STEPS) {
          const load = startWrk(
            `http://127.0.0.1:${ports.bare}`,
            BASELINE_S,
            pathsOf(String(rate)),
            rate,
            `wrk-bare-${rate}`,
          );
          // The bare server's CPU over the same steady part of the step as the system's.
          await sleep(2000);
          const c0 = treeCpuSeconds({ bare: bare.pid })['bare']!;
          const t0 = Date.now();
          await sleep(Math.max(0, (BASELINE_S - 3) * 1000));
          const cpuPerK =
            ((treeCpuSeconds({ bare: bare.pid })['bare']! - c0) / (((Date.now() - t0) / 1000) * rate)) * 1000;
          const w = await load.done;
          baseline.push({ offered: rate, wrk: w, cpuPerK });
        }
      } finally {
        bare.kill('SIGTERM');
      }
    }
    report(results, baseline, totals, startedAt);
    // Every probe and lag sample, for a closer look at a step (e.g. when freshness stalled).
    mkdirSync('bench/results', { recursive: true });
    const detail = `bench/results/system-${run}-detail.json`;
    writeFileSync(
      detail,
      JSON.stringify(
        results.map((r) => ({
          step: r.step,
          probes: r.probes.map((p) => ({
            sentAt: p.sentAt,
            ms: p.seenAt !== undefined && p.at302 !== undefined ? p.seenAt - p.at302 : null,
            failure: p.failure,
          })),
          samples: r.samples,
          after: r.after,
        })),
      ),
    );
    console.log(`[system] probes and lag samples of every step in ${detail}`);
  } finally {
    for (const name of ['click', 'api', 'worker', 'archiver', 'speed-layer'])
      await children.get(name)?.stop();
    await cleanup(pool, admin, probeAdvertiser);
    await admin.disconnect().catch(() => undefined);
    await pool.end();
    if (!process.env.BENCH_SYSTEM_KEEP_DIR) rmSync(dir, { recursive: true, force: true });
    else console.log(`[system] logs kept in ${dir}`);
  }

  async function exactness(logged: number, valid: number, failOpen: number): Promise<Record<string, number>> {
    const speedCounted = async () =>
      metricSum(
        await metrics(`http://127.0.0.1:${ports.speedMetrics}/metrics`),
        'adclick_speed_events_counted_total',
      );
    const inKafka = async () =>
      (await admin.fetchTopicOffsets(names.clicks)).reduce((n, p) => n + Number(p.high), 0);
    const archived = async () =>
      metricSum(await metrics(`http://127.0.0.1:${ports.archiverMetrics}/metrics`), 'archiver_events_total');
    // The archiver uploads every ARCHIVER_FLUSH_MS: wait for it to take what Kafka holds.
    const until = Date.now() + 120_000;
    while (Date.now() < until && (await archived()) < (await inKafka())) await sleep(2000);
    while (Date.now() < until && (await speedCounted()) < valid) await sleep(2000);
    return {
      logged,
      valid,
      failOpen,
      inKafka: await inKafka(),
      speedCounted: await speedCounted(),
      archived: await archived(),
    };
  }
}

function lagStats(samples: LagSample[], key: 'speedLag' | 'archiverLag') {
  const xs = samples.map((s) => s[key]);
  const q = Math.max(1, Math.floor(xs.length / 4));
  const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : 0);
  const first = mean(xs.slice(0, q));
  const last = mean(xs.slice(-q));
  return { max: Math.max(0, ...xs), growing: last > first + 1000 && last > 2000, last: xs.at(-1) ?? 0 };
}

function freshness(probes: Probe[]): { p95: number; p50: number; missing: number; failed: number } {
  const seen = probes.filter((p) => p.seenAt !== undefined && p.at302 !== undefined);
  const times = seen.map((p) => p.seenAt! - p.at302!).sort((a, b) => a - b);
  const missing = probes.filter((p) => p.at302 !== undefined && p.seenAt === undefined).length;
  // A probe never seen counts as slower than every seen one.
  const all = [...times, ...Array<number>(missing).fill(Infinity)];
  return {
    p50: percentile(all, 50),
    p95: percentile(all, 95),
    missing,
    failed: probes.filter((p) => p.failure).length,
  };
}

function summarize(r: StepResult) {
  const speed = lagStats(r.samples, 'speedLag');
  const arch = lagStats(r.samples, 'archiverLag');
  const speedAfter = r.after.at(-1)?.speedLag ?? NaN;
  const archAfter = r.after.at(-1)?.archiverLag ?? NaN;
  const fresh = freshness(r.probes);
  const errors = r.wrk.errors + r.wrk.other;
  const wm = r.samples.map((s) => s.watermarkDelayMs).filter((x): x is number => x !== undefined);
  const committed = (k: 'speedCommittedLag' | 'archiverCommittedLag') =>
    Math.max(0, ...r.samples.map((s) => s[k] ?? 0));
  const sustained =
    r.rate >= 0.98 * r.offered &&
    errors === 0 &&
    speed.max < LAG_BOUND &&
    arch.max < LAG_BOUND &&
    !speed.growing &&
    !arch.growing &&
    fresh.p95 <= FRESHNESS_BOUND_MS;
  return { speed, arch, speedAfter, archAfter, fresh, errors, wm, committed, sustained };
}

function printStep(r: StepResult): void {
  const s = summarize(r);
  console.log(
    `[system] ${r.step}: ${r.rate.toFixed(0)}/s, p50 ${(r.wrk.p50_us / 1000).toFixed(1)} ms, p99 ${(r.wrk.p99_us / 1000).toFixed(1)} ms, ` +
      `errors ${s.errors} (4xx ${r.wrk.s4xx ?? 0}, 5xx ${r.wrk.s5xx ?? 0}, socket ${r.wrk.errors}), ` +
      `lag speed max ${s.speed.max}${s.speed.growing ? ' GROWING' : ''} (30 s after ${s.speedAfter}), ` +
      `archiver max ${s.arch.max}${s.arch.growing ? ' GROWING' : ''} (after ${s.archAfter}), ` +
      `freshness p95 ${s.fresh.p95} ms (${s.fresh.missing} not seen), watermark delay max ${((Math.max(0, ...s.wm) || NaN) / 1000).toFixed(0)} s, ` +
      `machine ${r.machineBusyCores.toFixed(2)} cores busy, load ${r.loadBefore.toFixed(2)}→${r.loadAfter.toFixed(2)}: ${s.sustained ? 'SUSTAINED' : 'not sustained'}`,
  );
}

function report(
  results: StepResult[],
  baseline: Array<{ offered: number; wrk: WrkResult; cpuPerK: number }>,
  totals: Record<string, number>,
  startedAt: number,
): void {
  const rows = results.map((r) => {
    const s = summarize(r);
    const b = baseline.find((x) => x.offered === r.offered)?.wrk;
    return {
      step: r.step,
      seconds: r.seconds,
      'rate /s': Math.round(r.rate),
      'p50 ms': +(r.wrk.p50_us / 1000).toFixed(1),
      'p99 ms': +(r.wrk.p99_us / 1000).toFixed(1),
      errors: s.errors,
      'speed lag max': s.speed.max,
      'speed lag +30s': s.speedAfter,
      'archiver lag max': s.arch.max,
      'archiver lag +30s': s.archAfter,
      'lag growing': s.speed.growing || s.arch.growing ? (s.speed.growing ? 'speed' : 'archiver') : 'no',
      'speed committed lag max': s.committed('speedCommittedLag'),
      'archiver committed lag max': s.committed('archiverCommittedLag'),
      'fresh p50 ms': s.fresh.p50,
      'fresh p95 ms': s.fresh.p95,
      'probes not seen': s.fresh.missing + s.fresh.failed,
      'watermark delay max s': s.wm.length ? Math.round(Math.max(...s.wm) / 1000) : null,
      'busy cores': +r.machineBusyCores.toFixed(2),
      load: `${r.loadBefore.toFixed(1)}→${r.loadAfter.toFixed(1)}`,
      'bare 302 rate /s': b ? Math.round(b.requests / b.seconds) : null,
      'bare p99 ms': b ? +(b.p99_us / 1000).toFixed(1) : null,
      sustained: s.sustained,
    };
  });
  const processes = Object.keys(results[0]?.cpu ?? {});
  const cpuRows = processes.map((p) => {
    const row: Record<string, string | number> = { process: p };
    for (const r of results) {
      const perK = (r.cpu[p]! / Math.max(1, r.clicksInWindow)) * 1000;
      row[`${r.step} s/1k`] = +perK.toFixed(3);
      row[`${r.step} cores`] = +(r.cpu[p]! / r.cpuWindowS).toFixed(2);
    }
    return row;
  });
  const total: Record<string, string | number> = { process: 'all of the above' };
  for (const r of results) {
    const sum = processes.reduce((n, p) => n + r.cpu[p]!, 0);
    total[`${r.step} s/1k`] = +((sum / Math.max(1, r.clicksInWindow)) * 1000).toFixed(3);
    total[`${r.step} cores`] = +(sum / r.cpuWindowS).toFixed(2);
  }
  cpuRows.push(total);
  if (baseline.length > 0) {
    const bare: Record<string, string | number> = { process: 'baseline: bare node:http 302 server' };
    for (const r of results) {
      const b = baseline.find((x) => x.offered === r.offered);
      bare[`${r.step} s/1k`] = b ? +b.cpuPerK.toFixed(3) : '-';
      bare[`${r.step} cores`] = b ? +((b.cpuPerK * r.offered) / 1000).toFixed(2) : '-';
    }
    cpuRows.push(bare);
  }
  const sustained = results.filter((r) => summarize(r).sustained).map((r) => r.offered);
  const headline = sustained.length ? Math.max(...sustained) : 0;
  const notes = [
    `run ${run}, ${new Date(startedAt).toISOString()}, ${Math.round((Date.now() - startedAt) / 1000)} s; wrk ${THREADS} threads, ${CONNECTIONS} connections, paced; Zipf(1) over the catalogue, 10 % duplicates, 3 % bad signatures, 1 % expired`,
    `click process restarted before the ${LONG_STEP}/s step: ${args['no-restart'] ? 'no (--no-restart)' : 'yes'}; extra env: ${JSON.stringify(extraEnv)}`,
    `exactness: clicks logged ${totals.logged} (valid ${totals.valid}), events in Kafka ${totals.inKafka}, valid counted by the speed layer ${totals.speedCounted} (Redis failed open ${totals.failOpen} times: those may be repeats the speed layer drops), archived ${totals.archived}`,
    'lag: position lag from each consumer (high watermark − next offset); committed lag: Kafka group offsets (the archiver commits after each upload)',
    'sustained: rate ≥ 98 % of offered, 0 errors, both lags < 10,000 and not growing (last quarter vs first), freshness p95 ≤ 2 s (an unseen probe counts as ∞)',
  ];
  console.log('');
  console.table(rows);
  console.table(cpuRows);
  for (const n of notes) console.log(n);
  reportTable({ section: SECTION, name: 'steps', rows, notes });
  reportTable({
    section: SECTION,
    name: 'CPU seconds per 1,000 clicks (and cores used) per process',
    rows: cpuRows,
    notes: ['stack processes (kafka … temporal) are shared with anything else running on the machine'],
  });
  reportFigure({
    section: SECTION,
    figure: 'highest sustained step (whole system)',
    value: headline,
    unit: 'clicks/s',
    target: '≥ 10000',
  });
  for (const r of results) {
    const s = summarize(r);
    const b = baseline.find((x) => x.offered === r.offered)?.wrk;
    reportFigure({
      section: SECTION,
      figure: `${r.step}: achieved rate`,
      value: Math.round(r.rate),
      unit: 'req/s',
      target: `≥ ${Math.round(0.98 * r.offered)}`,
      ...(b && { baseline: Math.round(b.requests / b.seconds), baselineName: 'bare node:http 302' }),
    });
    reportFigure({
      section: SECTION,
      figure: `${r.step}: p99`,
      value: r.wrk.p99_us / 1000,
      unit: 'ms',
      ...(b && { baseline: b.p99_us / 1000, baselineName: 'bare node:http 302' }),
    });
    reportFigure({
      section: SECTION,
      figure: `${r.step}: errors`,
      value: s.errors,
      unit: 'requests',
      target: '≤ 0',
    });
    reportFigure({
      section: SECTION,
      figure: `${r.step}: freshness p95`,
      value: s.fresh.p95,
      unit: 'ms',
      target: `≤ ${FRESHNESS_BOUND_MS}`,
    });
    reportFigure({
      section: SECTION,
      figure: `${r.step}: max consumer lag (both groups)`,
      value: Math.max(s.speed.max, s.arch.max),
      unit: 'messages',
      target: `≤ ${LAG_BOUND}`,
    });
  }
  reportFigure({
    section: SECTION,
    figure: 'valid clicks logged minus counted by the speed layer, beyond Redis fail-opens',
    value: Math.max(0, totals.valid! - totals.speedCounted! - totals.failOpen!),
    unit: 'clicks',
    target: '≤ 0',
  });
  reportFigure({
    section: SECTION,
    figure: 'logged clicks missing from Kafka',
    value: totals.logged! - totals.inKafka!,
    unit: 'events',
    target: '≤ 0',
  });
}

async function cleanup(
  pool: pg.Pool,
  admin: ReturnType<ReturnType<typeof createKafka>['admin']>,
  advertiser?: string,
) {
  const quiet = (what: string) => (e: Error) => console.error(`[system] cleanup ${what}: ${e.message}`);
  await dropPinotTable(names.pinotTable).catch(quiet('Pinot table'));
  await admin.deleteTopics({ topics: [names.clicks, names.counts] }).catch(quiet('topics'));
  await admin.deleteGroups([names.speedGroup, names.archiverGroup]).catch(() => undefined);
  await pool
    .query('delete from archive_watermarks where topic = $1', [names.clicks])
    .catch(quiet('watermarks'));
  await pool
    .query('delete from click_process_reports where topic = $1', [names.clicks])
    .catch(quiet('reports'));
  await pool
    .query("delete from raw_files where key like $1 || '%'", [names.s3Prefix])
    .catch(quiet('raw_files'));
  if (advertiser) {
    await pool.query('delete from ads where advertiser_id = $1', [advertiser]).catch(quiet('probe ads'));
    await pool
      .query('delete from advertisers where advertiser_id = $1', [advertiser])
      .catch(quiet('advertiser'));
  }
  const s3 = createS3();
  try {
    for (;;) {
      const list = await s3.send(
        new ListObjectsV2Command({ Bucket: config.S3_BUCKET, Prefix: names.s3Prefix, MaxKeys: 1000 }),
      );
      const keys = (list.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length === 0) break;
      await s3.send(new DeleteObjectsCommand({ Bucket: config.S3_BUCKET, Delete: { Objects: keys } }));
    }
  } catch (e) {
    quiet('S3 objects')(e as Error);
  } finally {
    s3.destroy();
  }
}

mkdirSync(dir, { recursive: true });
main().catch((e: Error) => {
  console.error(`bench system failed: ${e.stack ?? e.message}`);
  process.exit(1);
});

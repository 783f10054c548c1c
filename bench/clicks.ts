// Click section of `npm run bench` (alone: `npm run bench:clicks`). Starts the click service
// (apps/click.ts, one worker per core, its own clicks topic) and drives it with wrk from a separate
// process, a distinct signed impression per request: first paced at the target rate (10,000/s for
// 60 s: the figures of record, latency at that load), then closed-loop (capacity). A bare node:http
// 302 server is measured the same two ways in the same run. Finally the events in Kafka are checked
// against the clicks the service logged and the 302s wrk received.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { config } from '../common/config.js';
import { sleep } from '../common/wait.js';
import { createPool, migrate } from '../common/db.js';
import { createKafka } from '../common/kafka.js';
import { clickPath, newImpression } from '../ingest/impression.js';
import { createAdvertiserWithAds } from '../test/support/click.js';
import { reportFigure } from './report.js';
import { parseWrkSummary, wrkScript, type WrkResult } from './wrk-script.js';

const DURATION_S = Number(process.env.BENCH_CLICKS_SECONDS ?? 60);
const RATE = Number(process.env.BENCH_CLICKS_RATE ?? 10_000);
const CAPACITY_S = 20;
const BASELINE_S = Number(process.env.BENCH_BASELINE_SECONDS ?? 20);
// Closed loop: 64 connections, as in the issue's reference measurements. Each click waits for Kafka's
// ack (up to ADCLICK_PRODUCE_LINGER_MS for its batch to leave), so 64 connections bound the rate by
// latency, not CPU: BENCH_CLICKS_CONNECTIONS=512 measures what the CPU carries.
const CONNECTIONS = Number(process.env.BENCH_CLICKS_CONNECTIONS ?? 64);
// 64 connections, as in the issue's reference measurements. The pacer catches up after a stall, so
// the rate holds without spare connections; more connections only queue more work per event-loop
// turn (128 gave p99 27 ms where 64 gave 13 ms at the same 10,000/s).
const PACED_CONNECTIONS = Number(process.env.BENCH_PACED_CONNECTIONS ?? 64);
const THREADS = 2;
const PORT = 18_080;
const BARE_PORT = 18_081;
const ADS = 1000;
const run = Date.now().toString(36);
const topic = `clicks-bench-${run}`;
const dir = mkdtempSync(join(tmpdir(), 'adclick-bench-'));

function wrk(url: string, seconds: number, paths: string, rate?: number): WrkResult {
  const script = join(dir, `clicks-${rate ?? 'closed'}.lua`);
  writeFileSync(script, wrkScript({ threads: THREADS, rate }));
  const connections = rate === undefined ? CONNECTIONS : PACED_CONNECTIONS;
  const r = spawnSync(
    'wrk',
    [`-t${THREADS}`, `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url],
    { env: { ...process.env, BENCH_PATHS: paths }, encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  return parseWrkSummary(r.stdout || r.stderr);
}

async function waitReady(url: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  throw new Error(`${url} not ready after ${ms} ms`);
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function metricSum(url: string, name: string, outcomes?: string[]): Promise<number> {
  const text = await (await fetch(url)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\w+)(\{[^}]*\})? ([\d.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (outcomes && !outcomes.some((o) => (m[2] ?? '').includes(`"${o}"`))) continue;
    sum += Number(m[3]);
  }
  return sum;
}

const fmtMs = (us: number) => (us / 1000).toFixed(2);

async function main(): Promise<void> {
  const pool = createPool(2);
  await migrate(pool);
  let ads = (
    await pool.query<{ ad_id: string }>('select ad_id::text from ads order by ad_id desc limit $1', [ADS])
  ).rows.map((r) => r.ad_id);
  if (ads.length < ADS)
    ads = (await createAdvertiserWithAds(pool, ADS, `bench-${run}`)).ads.map((a) => a.adId);
  await pool.end();

  // Distinct signed impressions: enough for the warm-up and for the run at up to 25k/s.
  const now = Date.now();
  const makePaths = (n: number, file: string) => {
    const lines: string[] = [];
    for (let i = 0; i < n; i++)
      lines.push(clickPath(newImpression(config.ADCLICK_SIGNING_SECRET, ads[i % ads.length]!, 3600, now)));
    writeFileSync(file, lines.join('\n') + '\n');
    return file;
  };
  const warmPaths = makePaths(100_000, join(dir, 'warm.txt'));
  const runPaths = makePaths(DURATION_S * RATE + CAPACITY_S * 25_000, join(dir, 'run.txt'));

  const service = spawn(process.execPath, ['--import', 'tsx', 'apps/click.ts'], {
    env: {
      ...process.env,
      PORT: String(PORT),
      HOST: '127.0.0.1',
      KAFKA_CLICKS_TOPIC: topic,
      ADCLICK_SPOOL_DIR: join(dir, 'spool'),
      ADCLICK_CLICK_WORKERS: process.env.ADCLICK_CLICK_WORKERS ?? '0',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${PORT}`;
  const bare = spawn(
    process.execPath,
    [
      '-e',
      `require('node:http').createServer((q, s) => { s.writeHead(302, { location: 'https://example.com/', 'content-length': '0' }); s.end(); }).listen(${BARE_PORT}, '127.0.0.1')`,
    ],
    { stdio: 'inherit' },
  );
  const kafka = createKafka('bench-clicks');
  const admin = kafka.admin();
  try {
    await waitReady(`${base}/readyz`, 60_000);
    console.log(`click service up (topic ${topic}); warm-up 5 s`);
    wrk(base, 5, warmPaths);
    const kafkaBefore = await countTopic(admin);
    const loggedBefore = await metricSum(`${base}/metrics`, 'adclick_clicks_total', [
      'valid',
      'duplicate',
      'bad_signature',
      'expired',
    ]);

    console.log(`clicks: wrk paced at ${RATE}/s, ${PACED_CONNECTIONS} connections, ${DURATION_S} s`);
    const r = wrk(base, DURATION_S, runPaths, RATE);
    console.log(`capacity: wrk closed loop, ${CONNECTIONS} connections, ${CAPACITY_S} s`);
    const cap = wrk(base, CAPACITY_S, runPaths);
    // Let the service answer what was in flight and drain any spool before counting.
    for (let i = 0; i < 60 && (await metricSum(`${base}/metrics`, 'adclick_spool_depth')) > 0; i++)
      await sleep(1000);
    await sleep(1000);
    const logged =
      (await metricSum(`${base}/metrics`, 'adclick_clicks_total', [
        'valid',
        'duplicate',
        'bad_signature',
        'expired',
      ])) - loggedBefore;
    const valid = await metricSum(`${base}/metrics`, 'adclick_clicks_total', ['valid']);
    const spooled = await metricSum(`${base}/metrics`, 'adclick_click_produce_seconds_count', ['spool']);
    const inKafka = (await countTopic(admin)) - kafkaBefore;

    console.log(
      `bare node:http 302 server: wrk paced at ${RATE}/s ${BASELINE_S} s, then closed loop ${CAPACITY_S} s`,
    );
    await waitReady(`http://127.0.0.1:${BARE_PORT}/`, 10_000).catch(() => undefined);
    const b = wrk(`http://127.0.0.1:${BARE_PORT}`, BASELINE_S, warmPaths, RATE);
    const bCap = wrk(`http://127.0.0.1:${BARE_PORT}`, CAPACITY_S, warmPaths);

    const rate = r.requests / r.seconds;
    const bareRate = b.requests / b.seconds;
    console.log('');
    console.log(`                      click service        bare node:http 302`);
    console.log(`rate (req/s)          ${rate.toFixed(0).padEnd(20)} ${bareRate.toFixed(0)}`);
    console.log(
      `p50 / p99 / max (ms)  ${`${fmtMs(r.p50_us)} / ${fmtMs(r.p99_us)} / ${fmtMs(r.max_us)}`.padEnd(20)} ${fmtMs(b.p50_us)} / ${fmtMs(b.p99_us)} / ${fmtMs(b.max_us)}`,
    );
    console.log(`errors / non-302      ${`${r.errors} / ${r.other}`.padEnd(20)} ${b.errors} / ${b.other}`);
    const capRate = cap.requests / cap.seconds;
    const bareCapRate = bCap.requests / bCap.seconds;
    console.log(
      `closed-loop capacity  ${`${capRate.toFixed(0)} req/s, p99 ${fmtMs(cap.p99_us)} ms`.padEnd(20)} ${bareCapRate.toFixed(0)} req/s, p99 ${fmtMs(bCap.p99_us)} ms`,
    );
    console.log(
      `302s received by wrk: ${r.c302 + cap.c302}; clicks logged by the service: ${logged} (valid so far ${valid}, via spool ${spooled}); events in Kafka: ${inKafka}`,
    );
    console.log(
      `Kafka events − logged clicks = ${inKafka - logged}; logged − 302s received = ${logged - r.c302 - cap.c302} (requests in flight when wrk stopped)`,
    );

    const section = 'clicks';
    reportFigure({
      section,
      figure: `click redirects, paced at ${RATE}/s`,
      value: Math.round(rate),
      unit: 'req/s',
      target: '≥ 10000',
      baseline: Math.round(bareRate),
      baselineName: 'bare node:http 302',
    });
    reportFigure({
      section,
      figure: 'click capacity, closed loop',
      value: Math.round(capRate),
      unit: 'req/s',
      baseline: Math.round(bareCapRate),
      baselineName: 'bare node:http 302',
    });
    reportFigure({
      section,
      figure: 'click p50',
      value: r.p50_us / 1000,
      unit: 'ms',
      baseline: b.p50_us / 1000,
      baselineName: 'bare node:http 302',
    });
    reportFigure({
      section,
      figure: 'click p99',
      value: r.p99_us / 1000,
      unit: 'ms',
      target: '≤ 25',
      baseline: b.p99_us / 1000,
      baselineName: 'bare node:http 302',
    });
    reportFigure({
      section,
      figure: 'click max',
      value: r.max_us / 1000,
      unit: 'ms',
      baseline: b.max_us / 1000,
      baselineName: 'bare node:http 302',
    });
    reportFigure({
      section,
      figure: 'click errors',
      value: r.errors + r.other + cap.errors + cap.other,
      unit: 'requests',
      target: '≤ 0',
    });
    reportFigure({
      section,
      figure: 'Kafka events minus logged clicks',
      value: inKafka - logged,
      unit: 'events',
      target: '≤ 0',
    });
  } finally {
    await stop(service);
    await stop(bare);
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }

  async function countTopic(a: typeof admin): Promise<number> {
    await a.connect();
    const offsets = await a.fetchTopicOffsets(topic);
    return offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  }
}

main().catch((e: Error) => {
  console.error(`bench clicks failed: ${e.message}`);
  process.exit(1);
});

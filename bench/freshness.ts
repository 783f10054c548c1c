// Freshness section of `npm run bench` (alone: `npm run bench:freshness`). On its own topics, group
// and Pinot table it runs the click service (apps/click.ts) and the speed layer (apps/speed-layer.ts,
// SPEED_STORE=pinot) as child processes, drives ~10,000 clicks/s through the click service with wrk
// (paced, pre-signed impressions), and meanwhile probes: every 200 ms one click on a fresh probe ad,
// timed from its 302 until the SpeedStore read interface shows that ad's minute count including it.
// Before the load it seeds 24 h of minute counts for one ad through the pipeline into Pinot and into
// PostgreSQL (a second speed-layer process, SPEED_STORE=postgres) and times the 24 h by-minute query
// on each store beside a trivial query on the same store. Every child process is stopped at the end.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Admin } from 'kafkajs';
import type pg from 'pg';
import { clickKey, encodeClickEvent, type ClickEvent } from '../common/click-event.js';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { clicksTopicSpec, createKafka, ensureTopics, minuteCountsTopicSpec } from '../common/kafka.js';
import { query as pinotQuery } from '../common/pinot.js';
import type { MinuteCount, SpeedStore } from '../common/speed-store.js';
import { MINUTE_MS, minuteOf } from '../common/time.js';
import { sleep } from '../common/wait.js';
import { clickPath, newImpression } from '../ingest/impression.js';
import { createAdvertiserWithAds } from '../test/support/click.js';
import { PinotSpeedStore } from '../speed-layer/pinot-speed-store.js';
import { dropPinotTable } from '../speed-layer/pinot-tables.js';
import { PostgresSpeedStore } from '../speed-layer/postgres-speed-store.js';
import { Child as LoggedChild } from './child.js';
import { waitUntil } from './system-load.js';
import { percentile, reportFigure } from './report.js';
import { parseWrkSummary, wrkScript, type WrkResult } from './wrk-script.js';

const DURATION_S = Number(process.env.BENCH_FRESHNESS_SECONDS ?? 40);
const RATE = Number(process.env.BENCH_FRESHNESS_RATE ?? 10_000);
const WARMUP_S = 5;
const PROBE_EVERY_MS = 200;
const POLL_EVERY_MS = 50;
/** A probe not visible this long after the load ends counts as missing. */
const PROBE_GIVE_UP_MS = 30_000;
const QUERY_RUNS = Number(process.env.BENCH_FRESHNESS_QUERY_RUNS ?? 500);
const LOAD_ADS = 1000;
const PARTITIONS = config.KAFKA_CLICKS_PARTITIONS;
const WRK_THREADS = 2;
const WRK_CONNECTIONS = Number(process.env.BENCH_FRESHNESS_CONNECTIONS ?? 200);
const PORT = 18_090;
const SECTION = 'freshness';

const run = Date.now().toString(36);
const clicksTopic = `clicks-fresh-${run}`;
const countsTopic = `minute-counts-fresh-${run}`;
const pinotTable = `fresh_${run}`;
const pinotGroup = `speed-fresh-${run}`;
const postgresGroup = `speed-fresh-pg-${run}`;
const dir = mkdtempSync(join(tmpdir(), 'adclick-freshness-'));

interface Probe {
  adId: string;
  at302?: number;
  seenAt?: number;
  failure?: string;
}

/** A child process whose output goes to a log file in this run's folder. */
class Child extends LoggedChild {
  constructor(name: string, command: string, args: string[], env: Record<string, string>) {
    super(name, command, args, env, dir);
  }

  static override node(name: string, entry: string, env: Record<string, string>): Child {
    return new Child(name, process.execPath, ['--import', 'tsx', entry], env);
  }
}

function speedLayerEnv(store: 'pinot' | 'postgres', groupId: string): Record<string, string> {
  return {
    SPEED_STORE: store,
    KAFKA_CLICKS_TOPIC: clicksTopic,
    KAFKA_MINUTE_COUNTS_TOPIC: countsTopic,
    SPEED_CONSUMER_GROUP: groupId,
    SPEED_PINOT_TABLE: pinotTable,
    SPEED_LAYER_METRICS_PORT: String(20_000 + Math.floor(Math.random() * 12_000)), // below the ephemeral range
  };
}

/** 24 h of minutes for one ad, 1–5 clicks each: the events and the counts the stores must show. */
function seedEvents(
  adId: string,
  advertiserId: string,
  from: number,
): { events: ClickEvent[]; expected: Map<number, number> } {
  const events: ClickEvent[] = [];
  const expected = new Map<number, number>();
  for (let m = 0; m < 24 * 60; m++) {
    const minute = from + m * MINUTE_MS;
    const n = (m % 5) + 1;
    expected.set(minute, n);
    for (let k = 0; k < n; k++) {
      const salt = (m + k) % 8;
      events.push({
        v: 1,
        eventId: randomUUID(),
        adId,
        advertiserId,
        ts: minute + k * 1000,
        status: 'valid',
        salt,
      });
    }
  }
  return { events, expected };
}

function sameCounts(rows: MinuteCount[], expected: Map<number, number>): boolean {
  return rows.length === expected.size && rows.every((r) => expected.get(r.minute) === r.clicks);
}

/** Latencies (ms) of `runs` sequential calls after a short warm-up, sorted. */
async function timeCalls(runs: number, call: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < 20; i++) await call();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await call();
    out.push(performance.now() - t0);
  }
  return out.sort((a, b) => a - b);
}

function reportLatency(figure: string, sorted: number[], baseline: number[], baselineName: string): void {
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  console.log(
    `${figure}: p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms; ${baselineName}: p50 ${percentile(baseline, 50).toFixed(2)} ms, p99 ${percentile(baseline, 99).toFixed(2)} ms (${sorted.length} runs)`,
  );
  reportFigure({
    section: SECTION,
    figure: `${figure} p50`,
    value: p50,
    unit: 'ms',
    baseline: percentile(baseline, 50),
    baselineName,
  });
  reportFigure({
    section: SECTION,
    figure: `${figure} p99`,
    value: p99,
    unit: 'ms',
    target: '≤ 50',
    baseline: percentile(baseline, 99),
    baselineName,
  });
}

/** Seeds 24 h of one ad through both speed-layer stores and times the 24 h by-minute query on each. */
async function queryLatency(
  pool: pg.Pool,
  pinot: SpeedStore,
  postgres: SpeedStore,
  queryAd: string,
  advertiserId: string,
  produce: (events: ClickEvent[]) => Promise<void>,
  children: Child[],
): Promise<void> {
  const to = minuteOf(Date.now());
  const from = to - 24 * 60 * MINUTE_MS;
  const { events, expected } = seedEvents(queryAd, advertiserId, from);
  console.log(
    `seeding 24 h of minute counts for ad ${queryAd} (${events.length} clicks) into Pinot and PostgreSQL`,
  );
  await produce(events);
  const pgLayer = Child.node(
    'speed-layer-postgres',
    'apps/speed-layer.ts',
    speedLayerEnv('postgres', postgresGroup),
  );
  children.push(pgLayer);
  const pinotLayer = children.find((c) => c.name === 'speed-layer-pinot')!;
  await waitUntil(
    async () => sameCounts(await pinot.minuteCounts([queryAd], from, to), expected),
    180_000,
    'the 24 h seed in Pinot',
    pinotLayer,
  );
  await waitUntil(
    async () => sameCounts(await postgres.minuteCounts([queryAd], from, to), expected),
    180_000,
    'the 24 h seed in PostgreSQL',
    pgLayer,
  );
  await pgLayer.stop();
  console.log('both stores show the seed exactly (1440 minutes); timing queries');

  const sql = `select count(*) from ${pinotTable}`;
  const pinotTimes = await timeCalls(QUERY_RUNS, () => pinot.minuteCounts([queryAd], from, to));
  const pinotBase = await timeCalls(QUERY_RUNS, () => pinotQuery(sql));
  reportLatency(
    'query 1 ad 24 h by minute, Pinot',
    pinotTimes,
    pinotBase,
    `Pinot "${sql.replace(pinotTable, 'table')}"`,
  );
  const pgTimes = await timeCalls(QUERY_RUNS, () => postgres.minuteCounts([queryAd], from, to));
  const pgBase = await timeCalls(QUERY_RUNS, () => pool.query('select 1'));
  reportLatency('query 1 ad 24 h by minute, PostgreSQL', pgTimes, pgBase, 'PostgreSQL "select 1"');
}

function startWrk(
  base: string,
  seconds: number,
  pathsFile: string,
): { done: Promise<WrkResult>; child: Child } {
  const script = join(dir, 'freshness.lua');
  writeFileSync(script, wrkScript({ threads: WRK_THREADS, rate: RATE }));
  const child = new Child(
    'wrk',
    'wrk',
    [`-t${WRK_THREADS}`, `-c${WRK_CONNECTIONS}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, base],
    { BENCH_PATHS: pathsFile },
  );
  const done = child.exited().then(() => {
    return parseWrkSummary(child.output());
  });
  return { done, child };
}

/** Sends one probe click per PROBE_EVERY_MS while `running()`, and polls the store for the probes seen. */
async function probeFreshness(
  base: string,
  store: SpeedStore,
  probeAds: string[],
  running: () => boolean,
): Promise<Probe[]> {
  const probes: Probe[] = [];
  const from = minuteOf(Date.now()) - MINUTE_MS;
  const send = async (probe: Probe): Promise<void> => {
    const impression = newImpression(config.ADCLICK_SIGNING_SECRET, probe.adId, 3600, Date.now());
    try {
      const res = await fetch(base + clickPath(impression), {
        redirect: 'manual',
        signal: AbortSignal.timeout(5000),
      });
      await res.arrayBuffer();
      if (res.status === 302) probe.at302 = Date.now();
      else probe.failure = `status ${res.status}`;
    } catch (e) {
      probe.failure = (e as Error).message;
    }
  };
  let sending = true;
  const sender = (async () => {
    let next = Date.now();
    const sends: Array<Promise<void>> = [];
    while (running() && probes.length < probeAds.length) {
      const probe: Probe = { adId: probeAds[probes.length]! };
      probes.push(probe);
      sends.push(send(probe));
      next += PROBE_EVERY_MS;
      await sleep(Math.max(0, next - Date.now()));
    }
    await Promise.all(sends);
    sending = false;
  })();
  let giveUpAt = Infinity;
  for (;;) {
    const waiting = probes.filter((p) => p.at302 !== undefined && p.seenAt === undefined);
    if (!sending) {
      if (waiting.length === 0) break;
      if (giveUpAt === Infinity) giveUpAt = Date.now() + PROBE_GIVE_UP_MS;
      if (Date.now() > giveUpAt) break;
    }
    if (waiting.length > 0) {
      try {
        const rows = await store.minuteCounts(
          waiting.map((p) => p.adId),
          from,
          Date.now() + 2 * MINUTE_MS,
        );
        const seenAt = Date.now();
        const counted = new Set(rows.filter((r) => r.clicks > 0).map((r) => r.adId));
        for (const p of waiting) if (counted.has(p.adId)) p.seenAt = seenAt;
      } catch (e) {
        console.error(`freshness poll failed: ${(e as Error).message}`);
      }
    }
    await sleep(POLL_EVERY_MS);
  }
  await sender;
  return probes;
}

/** Debug aid (BENCH_FRESHNESS_DEBUG=1): every 2 s, how far each stage of the pipeline has got. */
function startMonitor(admin: Admin): NodeJS.Timeout {
  const sum = (xs: Array<{ offset?: string; high?: string }>): number =>
    xs.reduce((n, x) => n + Math.max(0, Number(x.offset ?? x.high ?? 0)), 0);
  return setInterval(() => {
    void (async () => {
      const clicks = sum(await admin.fetchTopicOffsets(clicksTopic));
      const [committed] = await admin.fetchOffsets({ groupId: pinotGroup, topics: [clicksTopic] });
      const counts = sum(await admin.fetchTopicOffsets(countsTopic));
      const pinotRows = await pinotQuery(`select count(*), sum(clicks) from ${pinotTable}`).catch(
        () => undefined,
      );
      console.log(
        `[monitor] clicks end ${clicks}, speed committed ${sum(committed?.partitions ?? [])}, counts end ${counts}, Pinot rows/sum ${pinotRows?.rows[0]?.join('/') ?? '?'}`,
      );
    })().catch((e: Error) => console.log(`[monitor] ${e.message}`));
  }, 2000);
}

async function main(): Promise<void> {
  const pool = createPool(4);
  await migrate(pool);
  const kafka = createKafka('bench-freshness');
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const children: Child[] = [];
  const pinot = new PinotSpeedStore(undefined, pinotTable);
  const postgres = new PostgresSpeedStore(pool);
  const probeCount = Math.ceil((DURATION_S * 1000) / PROBE_EVERY_MS) + 10;
  let myAds: string[] = [];
  try {
    await admin.connect();
    await ensureTopics(admin, [
      clicksTopicSpec({ topic: clicksTopic, partitions: PARTITIONS }),
      minuteCountsTopicSpec({ topic: countsTopic, clicksTopic, partitions: PARTITIONS }),
    ]);
    await producer.connect();

    console.log(`creating ${LOAD_ADS} load ads, ${probeCount} probe ads and a query ad`);
    const fixture = await createAdvertiserWithAds(pool, LOAD_ADS + probeCount + 1, `freshness-${run}`);
    myAds = fixture.ads.map((a) => a.adId);
    const loadAds = myAds.slice(0, LOAD_ADS);
    const probeAds = myAds.slice(LOAD_ADS, LOAD_ADS + probeCount);
    const queryAd = myAds[LOAD_ADS + probeCount]!;

    // The speed layer (Pinot) first: it creates the Pinot table over the counts topic.
    children.push(Child.node('speed-layer-pinot', 'apps/speed-layer.ts', speedLayerEnv('pinot', pinotGroup)));
    await queryLatency(
      pool,
      pinot,
      postgres,
      queryAd,
      fixture.advertiserId,
      async (events) => {
        for (let i = 0; i < events.length; i += 500) {
          await producer.send({
            topic: clicksTopic,
            acks: -1,
            messages: events
              .slice(i, i + 500)
              .map((e) => ({ key: clickKey(e.adId, e.salt), value: encodeClickEvent(e) })),
          });
        }
      },
      children,
    );

    const loadSeconds = WARMUP_S + DURATION_S + 2;
    const lines: string[] = [];
    const now = Date.now();
    for (let i = 0; i < Math.ceil(loadSeconds * RATE * 1.1); i++)
      lines.push(
        clickPath(newImpression(config.ADCLICK_SIGNING_SECRET, loadAds[i % loadAds.length]!, 3600, now)),
      );
    const pathsFile = join(dir, 'paths.txt');
    writeFileSync(pathsFile, lines.join('\n') + '\n');

    const ingest = Child.node('click-service', 'apps/click.ts', {
      PORT: String(PORT),
      HOST: '127.0.0.1',
      KAFKA_CLICKS_TOPIC: clicksTopic,
      KAFKA_MINUTE_COUNTS_TOPIC: countsTopic,
      ADCLICK_SPOOL_DIR: join(dir, 'spool'),
    });
    children.push(ingest);
    const base = `http://127.0.0.1:${PORT}`;
    await waitUntil(
      async () => (await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200,
      60_000,
      'the click service',
      ingest,
    );

    console.log(
      `load: ${RATE} clicks/s through the click service for ${loadSeconds} s (wrk, ${WRK_CONNECTIONS} connections); probing every ${PROBE_EVERY_MS} ms after ${WARMUP_S} s`,
    );
    const wrk = startWrk(base, loadSeconds, pathsFile);
    const monitor = process.env.BENCH_FRESHNESS_DEBUG ? startMonitor(admin) : undefined;
    children.push(wrk.child);
    await sleep(WARMUP_S * 1000);
    const probeUntil = Date.now() + DURATION_S * 1000;
    const probes = await probeFreshness(
      base,
      pinot,
      probeAds,
      () => Date.now() < probeUntil && wrk.child.running,
    );
    const load = await wrk.done;
    if (monitor) clearInterval(monitor);
    const notSeen = probes.flatMap((p, i) => (p.at302 !== undefined && p.seenAt === undefined ? [i] : []));
    if (notSeen.length > 0) {
      const spool = (await (await fetch(`${base}/metrics`)).text())
        .split('\n')
        .filter((l) => /^adclick_(spool_depth|click_produce_seconds_count)/.test(l));
      console.log(
        `probes not seen (by send order): ${notSeen.join(', ')}; click service: ${spool.join('; ')}`,
      );
      console.log(`click service log:\n${ingest.output().slice(-3000)}`);
      console.log(`speed layer log:\n${children[0]!.output().slice(-3000)}`);
    }

    const answered = probes.filter((p) => p.at302 !== undefined);
    const seen = answered.filter((p) => p.seenAt !== undefined);
    const times = seen.map((p) => p.seenAt! - p.at302!).sort((a, b) => a - b);
    const missing = answered.length - seen.length;
    const failed = probes.filter((p) => p.failure);
    const rate = load.requests / load.seconds;
    console.log(
      `load: ${rate.toFixed(0)} req/s offered and answered (${load.c302} 302s, ${load.other} other, ${load.errors} errors; p50 ${(load.p50_us / 1000).toFixed(2)} ms, p99 ${(load.p99_us / 1000).toFixed(2)} ms)`,
    );
    console.log(
      `probes: ${probes.length} sent, ${answered.length} got a 302, ${seen.length} seen in Pinot, ${missing} not seen within ${PROBE_GIVE_UP_MS / 1000} s, ${failed.length} failed${failed[0] ? ` (e.g. ${failed[0].failure})` : ''}`,
    );
    console.log(
      `freshness (302 → minute count in Pinot via the read interface): p50 ${percentile(times, 50)} ms, p95 ${percentile(times, 95)} ms, max ${times.at(-1)} ms`,
    );
    reportFigure({ section: SECTION, figure: 'freshness p50', value: percentile(times, 50), unit: 'ms' });
    reportFigure({
      section: SECTION,
      figure: 'freshness p95',
      value: percentile(times, 95),
      unit: 'ms',
      target: '≤ 2000',
    });
    reportFigure({ section: SECTION, figure: 'freshness max', value: times.at(-1) ?? NaN, unit: 'ms' });
    reportFigure({
      section: SECTION,
      figure: 'freshness probes not seen',
      value: missing + failed.length,
      unit: 'probes',
      target: '≤ 0',
    });
    reportFigure({
      section: SECTION,
      figure: 'background click load',
      value: Math.round(rate),
      unit: 'req/s',
      target: `≥ ${Math.round(RATE * 0.95)}`,
    });
    reportFigure({
      section: SECTION,
      figure: 'background click errors',
      value: load.errors + load.other,
      unit: 'requests',
      target: '≤ 0',
    });
  } finally {
    for (const child of children.reverse()) await child.stop();
    await producer.disconnect().catch(() => undefined);
    await dropPinotTable(pinotTable).catch((e: Error) =>
      console.error(`dropping ${pinotTable}: ${e.message}`),
    );
    await admin.deleteTopics({ topics: [clicksTopic, countsTopic] }).catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    if (myAds.length > 0)
      await pool
        .query('delete from speed_counts_minute where ad_id = any($1::bigint[])', [myAds])
        .catch(() => undefined);
    await pool.query('delete from speed_offsets where group_id = $1', [postgresGroup]).catch(() => undefined);
    await pool.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(`bench freshness failed: ${e.stack ?? e.message}`);
  process.exit(1);
});

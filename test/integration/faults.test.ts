// The whole system under faults, end to end: the app's four processes run as children (as `npm start`
// runs them, each with this test's own topics, groups, task queue, S3 prefix and ports), the traffic
// simulator clicks over HTTP for ~100 s with duplicates, expired and badly signed clicks, unknown ads
// and a hot ad, and meanwhile, in turn: kill -9 of the click service (primary and workers), the
// speed-layer consumer, the archiver and the Temporal worker (each restarted); Redis stopped ~10 s;
// Kafka stopped, the click service killed again while its clicks sit in the spool, Kafka restarted.
// Then: provisional counts (speed layer) equal the ground truth; a backfill — with the worker killed
// in the middle of the compaction activity — finalizes the hour and final counts equal it too.
//
// Clock: final counts need finalized hours, and the current hour cannot finalize before it ends.
// The click service and the simulator run on a drill clock shifted into a past hour that nothing has
// finalized (ADCLICK_CLOCK_OFFSET_MS): the archiver's watermark of a caught-up partition follows the
// real time, so that hour can be finalized as soon as every event is archived.
//
// Redis outage: the click service fails open (duplicates during the outage, and repeats of
// impressions first clicked during it, are logged `valid`). DESIGN.md promises provisional exactness
// only while Redis is up — but the speed layer also drops an impression id already seen in a minute
// still open in its partition (speed-layer/minute-window.ts, rebuilt exactly after a restart), and the
// whole run spans less than SPEED_OPEN_WINDOW_MINUTES (5) of event time, so every such repeat is
// dropped there too. That is why the provisional assertion is exact for the whole run; a longer run
// would have to keep duplicates out of the outage. The batch layer dedups by impression id regardless.
//
// Unanswered clicks: kill -9 of the click service breaks connections. A refused connection was never
// served; a valid click whose connection broke after it was sent may or may not have been logged (its
// 302 was lost). The simulator lists those; once the spools are drained the verifier looks each up in
// the clicks topic (tools/verify.ts resolveAmbiguous) and the expected counts include exactly the
// logged ones. Every click that got a 302 is in the truth as before.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { createS3 } from '../../common/s3.js';
import { createTemporalClient } from '../../common/temporal.js';
import { PinotSpeedStore } from '../../speed-layer/pinot-speed-store.js';
import { dropPinotTable } from '../../speed-layer/pinot-tables.js';
import { HOUR_MS, MINUTE_MS, hourOf, isoSeconds } from '../../common/time.js';
import { deleteObjects, listObjects } from '../../batch-layer/storage.js';
import { totalOf, type GroundTruth } from '../../tools/ground-truth.js';
import { resolveAmbiguous, verifyCounts } from '../../tools/verify.js';
import { backfillId, compactHourId } from '../../common/workflow-ids.js';
import {
  AppProcess,
  ROOT,
  ensureStackServicesUp,
  freePort,
  kafkaService,
  metricValue,
  redisService,
  sleep,
  startStackService,
  stopStackService,
  waitFor,
} from './faults-support.js';

const PARTITIONS = config.KAFKA_CLICKS_PARTITIONS;
const READY = {
  speed: /consuming .* into postgres/,
  speedPinot: /consuming .* into pinot/,
  archiver: /\[archiver\] consuming/,
  worker: /\[worker\] polling task queue/,
};

/** A past hour (3 h to 5 days back: inside Kafka's 7-day retention) no one has finalized or is compacting. */
async function pickHour(pool: ReturnType<typeof createPool>, client: Client): Promise<number> {
  const running = async (id: string): Promise<boolean> => {
    const d = await client.workflow
      .getHandle(id)
      .describe()
      .catch(() => undefined);
    return d?.status.name === 'RUNNING';
  };
  for (let i = 0; i < 50; i++) {
    const hour = hourOf(Date.now()) - (3 + Math.floor(Math.random() * 117)) * HOUR_MS;
    const taken = await pool.query('select 1 from finalized_hours where hour = $1', [new Date(hour)]);
    if (taken.rowCount) continue;
    if ((await running(compactHourId(hour))) || (await running(backfillId(hour, hour + HOUR_MS)))) continue;
    return hour;
  }
  throw new Error('no free past hour found for the drill clock');
}

describe('end to end under faults', () => {
  const run = randomUUID().slice(0, 8);
  const pool = createPool(2);
  const s3 = createS3();
  const artifacts = join(ROOT, 'test-artifacts', `faults-${run}`);
  const logDir = join(artifacts, 'logs');
  const scratch = join(tmpdir(), `adclick-faults-${run}`);
  const truthPath = join(artifacts, 'ground-truth.json');
  const t0 = Date.now();
  const timeline: string[] = [];
  const note = (message: string): void => {
    const line = `[faults +${((Date.now() - t0) / 1000).toFixed(1)} s] ${message}`;
    timeline.push(line);
    console.log(line);
  };

  let client: Client;
  let hour = 0;
  const pinotTable = `faults_${run.replaceAll('-', '_')}`;
  let env: Record<string, string> = {};
  let base = '';
  let click: AppProcess;
  let api: AppProcess;
  let speed: AppProcess;
  let speedPinot: AppProcess;
  let archiver: AppProcess;
  let worker: AppProcess;
  let simulator: AppProcess | undefined;
  let truth: GroundTruth | undefined;
  let expected: GroundTruth | undefined;

  const get = async (path: string): Promise<Response> =>
    fetch(`${base}${path}`, { signal: AbortSignal.timeout(5000) });
  /** A metric of the click service, summed over its workers; absent counts as `absent`. */
  const clickMetric = async (name: string, absent?: number): Promise<number> => {
    const value = metricValue(await (await get('/metrics')).text(), name) ?? absent;
    if (value === undefined) throw new Error(`no ${name} in the click service's /metrics`);
    return value;
  };
  // A gauge every worker reports: missing means the answer is not trustworthy (e.g. "drained").
  const spoolDepth = (): Promise<number> => clickMetric('adclick_spool_depth');
  /** (Re)starts the click service and waits until it serves: /readyz, or only /healthz in an outage. */
  async function startClick(probe: '/readyz' | '/healthz'): Promise<void> {
    await click.start();
    await waitFor(`click service ${probe}`, async () => (await get(probe)).ok, 120_000);
  }

  beforeAll(async () => {
    mkdirSync(join(scratch, 'spool'), { recursive: true });
    mkdirSync(artifacts, { recursive: true });
    await migrate(pool);
    await ensureStackServicesUp();
    client = await createTemporalClient();
    hour = await pickHour(pool, client);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    env = {
      PORT: String(port),
      API_PORT: String(await freePort()),
      HOST: '127.0.0.1',
      KAFKA_CLICKS_TOPIC: `faults-clicks-${run}`,
      KAFKA_MINUTE_COUNTS_TOPIC: `faults-minute-counts-${run}`,
      SPEED_CONSUMER_GROUP: `faults-speed-${run}`,
      SPEED_STORE: 'postgres',
      SPEED_LAYER_METRICS_PORT: String(await freePort()),
      ARCHIVER_GROUP_ID: `faults-archiver-${run}`,
      ARCHIVER_FLUSH_MS: '5000',
      TEMPORAL_TASK_QUEUE: `faults-batch-${run}`,
      BATCH_S3_PREFIX: `faults-${run}/`,
      BATCH_SCHEDULE_PREFIX: `faults-${run}`,
      BATCH_WORK_DIR: join(scratch, 'batch'),
      ADCLICK_SPOOL_DIR: join(scratch, 'spool'),
      ADCLICK_CLICK_WORKERS: '2',
      // Traffic starts ~2 minutes into the chosen past hour and stays inside it.
      ADCLICK_CLOCK_OFFSET_MS: String(hour + 2 * MINUTE_MS - Date.now()),
    };
    note(
      `drill clock in hour ${isoSeconds(hour)} (offset ${env.ADCLICK_CLOCK_OFFSET_MS} ms); logs in ${logDir}`,
    );
    click = new AppProcess('click', 'apps/click.ts', env, logDir);
    api = new AppProcess('api', 'apps/api.ts', env, logDir);
    speed = new AppProcess('speed-layer', 'apps/speed-layer.ts', env, logDir);
    // The default speed store too, as users run it: its own consumer group and Pinot table.
    speedPinot = new AppProcess(
      'speed-layer-pinot',
      'apps/speed-layer.ts',
      {
        ...env,
        SPEED_STORE: 'pinot',
        SPEED_CONSUMER_GROUP: `faults-speed-pinot-${run}`,
        SPEED_PINOT_TABLE: pinotTable,
        SPEED_LAYER_METRICS_PORT: String(await freePort()),
      },
      logDir,
    );
    archiver = new AppProcess('archiver', 'apps/archiver.ts', env, logDir);
    // The pause after the downloads leaves time to kill the worker in the middle of the compaction.
    worker = new AppProcess('worker', 'apps/worker.ts', { ...env, BATCH_FAULT_PAUSE_MS: '6000' }, logDir);
    // The click service first: it applies the migrations and creates the topics.
    await startClick('/readyz');
    await Promise.all([
      api.start({ readyLine: /\[api\] listening on/ }),
      speed.start({ readyLine: READY.speed }),
      speedPinot.start({ readyLine: READY.speedPinot }),
      archiver.start({ readyLine: READY.archiver }),
      worker.start({ readyLine: READY.worker }),
    ]);
    note('app processes up');
  }, 300_000);

  afterAll(async () => {
    for (const p of [simulator, click, api, speed, speedPinot, archiver, worker]) await p?.stop();
    await dropPinotTable(pinotTable).catch(() => undefined);
    await ensureStackServicesUp();
    if (client) {
      for (const id of [backfillId(hour, hour + HOUR_MS), compactHourId(hour)]) {
        const handle = client.workflow.getHandle(id);
        const d = await handle.describe().catch(() => undefined);
        if (d?.status.name === 'RUNNING' && d.taskQueue === env.TEMPORAL_TASK_QUEUE)
          await handle.terminate('faults test cleanup').catch(() => undefined);
      }
      await client.connection.close();
    }
    if (env.KAFKA_CLICKS_TOPIC) {
      const admin = createKafka('faults-test-cleanup').admin();
      await admin.connect();
      await admin
        .deleteTopics({ topics: [env.KAFKA_CLICKS_TOPIC, env.KAFKA_MINUTE_COUNTS_TOPIC!] })
        .catch(() => undefined);
      await admin
        .deleteGroups([env.SPEED_CONSUMER_GROUP!, `faults-speed-pinot-${run}`, env.ARCHIVER_GROUP_ID!])
        .catch(() => undefined);
      await admin.disconnect();
      const keys = (await listObjects(s3, config.S3_BUCKET, env.BATCH_S3_PREFIX!)).map((o) => o.key);
      await deleteObjects(s3, config.S3_BUCKET, keys);
      await pool.query('delete from archive_watermarks where topic = $1', [env.KAFKA_CLICKS_TOPIC]);
      await pool.query('delete from speed_offsets where group_id = $1', [env.SPEED_CONSUMER_GROUP]);
    }
    if (truth) {
      const ads = truth.ads.map((a) => a.adId);
      await pool.query('delete from speed_counts_minute where ad_id = any($1::bigint[])', [ads]);
    }
    if (hour) {
      // The hour was free when picked: whatever is in it now is this run's.
      const [from, to] = [new Date(hour), new Date(hour + HOUR_MS)];
      for (const table of ['click_counts_minute', 'advertiser_counts_minute'])
        await pool.query(`delete from ${table} where minute >= $1 and minute < $2`, [from, to]);
      for (const table of ['click_counts_hour', 'advertiser_counts_hour', 'finalized_hours'])
        await pool.query(`delete from ${table} where hour = $1`, [from]);
    }
    await pool.end();
    s3.destroy();
    rmSync(scratch, { recursive: true, force: true });
    writeFileSync(join(artifacts, 'timeline.txt'), timeline.join('\n') + '\n');
  }, 180_000);

  it('traffic goes on while each process is killed, Redis is stopped and Kafka is stopped', async () => {
    simulator = new AppProcess(
      'simulate',
      'tools/simulate.ts',
      env,
      logDir,
      [
        ...['--base', base, '--rate', '60', '--duration', '110', '--advertisers', '2', '--ads', '10'],
        ...['--duplicate', '0.12', '--expired', '0.03', '--bad-signature', '0.03', '--unknown', '0.02'],
        ...['--hot', '0.3', '--out', truthPath, `--clock-offset-ms=${env.ADCLICK_CLOCK_OFFSET_MS}`],
        // Wide margin: on a busy machine a click may reach the server well after it was sent.
        ...['--boundary-margin-ms', '1500'],
      ],
      false,
    );
    await simulator.start({ readyLine: /dashboard key/, timeoutMs: 120_000 });
    const simulated = simulator.exitCode();
    note('traffic started (60 requests/s for 110 s)');
    const restarts: Promise<void>[] = [];
    try {
      await sleep(6000);
      await click.kill9();
      note('kill -9 click service (primary and its workers)');
      await startClick('/readyz');
      note('click service back');

      await sleep(5000);
      await Promise.all([speed.kill9(), speedPinot.kill9()]);
      note('kill -9 speed-layer consumers (PostgreSQL and Pinot)');
      restarts.push(speed.start({ readyLine: READY.speed }).then(() => note('speed layer back')));
      restarts.push(
        speedPinot.start({ readyLine: READY.speedPinot }).then(() => note('speed layer (Pinot) back')),
      );

      await sleep(4000);
      await archiver.kill9();
      note('kill -9 archiver');
      restarts.push(archiver.start({ readyLine: READY.archiver }).then(() => note('archiver back')));

      await sleep(4000);
      await worker.kill9();
      note('kill -9 Temporal worker');
      restarts.push(worker.start({ readyLine: READY.worker }).then(() => note('worker back')));

      await sleep(4000);
      await stopStackService(redisService);
      note('Redis stopped');
      await sleep(10_000);
      await startStackService(redisService);
      const failOpen = await clickMetric('adclick_redis_fail_open_total', 0);
      note(`Redis back; ${failOpen} clicks were let through as valid without a dedup answer (fail open)`);
      expect(failOpen).toBeGreaterThan(0);

      await sleep(4000);
      await stopStackService(kafkaService);
      const kafkaDownAt = Date.now();
      note('Kafka stopped');
      await sleep(4000);
      const spooled = await spoolDepth();
      note(`${spooled} clicks in the spool`);
      expect(spooled).toBeGreaterThan(0);
      await click.kill9();
      note('kill -9 click service with clicks in its spool');
      await startClick('/healthz');
      // Both workers reopen their spool files (the metric sums the workers that are up).
      const stillSpooled = await waitFor(
        'the restarted click service to report the spooled clicks',
        async () => {
          const depth = await spoolDepth();
          return depth >= spooled && depth;
        },
        30_000,
      );
      note(`click service back with Kafka still down: ${stillSpooled} clicks in the spool`);
      await sleep(Math.max(0, 10_000 - (Date.now() - kafkaDownAt)));
      await startStackService(kafkaService);
      note(`Kafka back after ${((Date.now() - kafkaDownAt) / 1000).toFixed(1)} s`);
    } finally {
      await ensureStackServicesUp();
    }
    await Promise.all(restarts);
    expect(await simulated).toBe(0);
    truth = JSON.parse(readFileSync(truthPath, 'utf8')) as GroundTruth;
    note(
      `traffic done: sent ${JSON.stringify(truth.sent)}, ${totalOf(truth.counts)} valid first clicks answered 302, ` +
        `${truth.failed} unanswered (${truth.ambiguous?.length ?? 0} valid clicks with an unknown outcome), ` +
        `${truth.unexpected} unexpected answers`,
    );
    expect(truth.unexpected).toBe(0);
    expect(totalOf(truth.counts)).toBeGreaterThan(2000);
    // Every click was stamped inside the chosen hour.
    expect(hourOf(truth.startedAt)).toBe(hour);
    expect(hourOf(truth.endedAt)).toBe(hour);
  }, 420_000);

  it('provisional counts equal the ground truth once the spools are drained and the speed layer caught up', async () => {
    expect(truth).toBeDefined();
    await waitFor('the click service spools to drain', async () => (await spoolDepth()) === 0, 180_000, 1000);
    note('spools drained');
    const resolved = await resolveAmbiguous(truth!, env.KAFKA_CLICKS_TOPIC);
    expected = resolved.truth;
    note(
      `unanswered valid clicks: ${resolved.logged} logged (counted), ${resolved.notLogged} not logged; ` +
        `expecting ${totalOf(expected.counts)} clicks`,
    );
    const r = await verifyCounts(expected, { final: false, timeoutS: 180, log: note });
    note(
      `provisional: expected ${r.expectedTotal}, reported ${r.reportedTotal}, exact ${r.exact}, ${(r.elapsedMs / 1000).toFixed(1)} s`,
    );
    expect(r.diffs).toEqual([]);
    expect(r.exact).toBe(true);
    expect(r.allFinal).toBe(false); // nothing finalized this hour yet: these are the speed layer's
    // The same counts in the default store, Pinot, fed by its own speed-layer process.
    const pinot = new PinotSpeedStore(undefined, pinotTable);
    const want = expectedMinuteCounts(expected);
    const pinotCounts = async (): Promise<Record<string, number>> => {
      const got = await pinot.minuteCounts(Object.keys(expected!.counts), hour, hour + HOUR_MS);
      return Object.fromEntries(got.map((c) => [`${c.adId}|${c.minute}`, c.clicks]));
    };
    let pinotByKey: Record<string, number> = {};
    await waitFor(
      'Pinot to hold the exact provisional counts',
      async () => JSON.stringify((pinotByKey = await pinotCounts())) === JSON.stringify(want),
      180_000,
      2000,
    ).catch(() => undefined); // the assertion below shows the difference
    expect(pinotByKey).toEqual(want);
    note(`provisional counts in Pinot exact too (${totalOf(expected!.counts)} clicks)`);
    const speedMetrics = await fetch(`http://127.0.0.1:${env.SPEED_LAYER_METRICS_PORT}/metrics`);
    const dropped = metricValue(await speedMetrics.text(), 'adclick_speed_duplicates_dropped_total');
    note(`the speed layer (since its restart) dropped ${dropped} repeated impression ids logged as valid`);
  }, 420_000);

  it('final counts equal the ground truth after a backfill, with the worker killed mid-compaction', async () => {
    expect(expected).toBeDefined();
    const hourEnd = new Date(hour + HOUR_MS);
    await waitFor(
      'the archive watermark of every partition to pass the end of the hour',
      async () => {
        const { rows } = await pool.query<{ n: string; low: Date | null }>(
          'select count(*) as n, min(watermark) as low from archive_watermarks where topic = $1',
          [env.KAFKA_CLICKS_TOPIC],
        );
        return Number(rows[0]!.n) >= PARTITIONS && rows[0]!.low !== null && rows[0]!.low >= hourEnd;
      },
      180_000,
      1000,
    );
    note('archived past the end of the hour');
    // The drill clock stands two minutes into the hour, so the click processes would keep reporting
    // clicks of the hour as possible (docs/completeness.md): time moves on for them as it would
    // for real, by a restart with the clock past the hour's end.
    await click.kill9();
    await click.start({ env: { ADCLICK_CLOCK_OFFSET_MS: String(hour + HOUR_MS + MINUTE_MS - Date.now()) } });
    await waitFor('click service /healthz', async () => (await get('/healthz')).ok, 60_000);
    note('click processes restarted with their clock past the end of the hour');
    const verification = verifyCounts(expected!, { final: true, timeoutS: 300, log: note });
    const compaction = client.workflow.getHandle(compactHourId(hour));
    await waitFor(
      'the compaction activity to start',
      async () =>
        (await compaction.describe()).raw.pendingActivities?.some((a) => a.heartbeatDetails) ?? false,
      120_000,
      250,
    );
    await worker.kill9();
    note('kill -9 Temporal worker in the middle of the compaction activity');
    await worker.start({ env: { BATCH_FAULT_PAUSE_MS: '0' }, readyLine: READY.worker });
    note('worker back (the activity is retried once its heartbeat times out)');
    const r = await verification;
    note(
      `final: expected ${r.expectedTotal}, reported ${r.reportedTotal}, exact ${r.exact}, all final ${r.allFinal}, ${(r.elapsedMs / 1000).toFixed(1)} s`,
    );
    expect(r.diffs).toEqual([]);
    expect(r.exact).toBe(true);
    expect(r.allFinal).toBe(true);
    const events = (await compaction.fetchHistory()).events ?? [];
    const attempts = events
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => Number(e.activityTaskStartedEventAttributes!.attempt));
    expect(Math.max(...attempts)).toBeGreaterThanOrEqual(2);
    const { rows } = await pool.query<{ valid_clicks: string }>(
      'select valid_clicks from finalized_hours where hour = $1',
      [new Date(hour)],
    );
    expect(Number(rows[0]!.valid_clicks)).toBe(totalOf(expected!.counts));
    for (const p of [click, api, speed, speedPinot, archiver, worker])
      if (p.unexpectedExits.length)
        note(`${p.name} exited on its own (restarted): ${p.unexpectedExits.join(', ')}`);
    note(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }, 420_000);
});

/** The ground truth's counts as `adId|minute ms` → clicks, in key order (as the stores answer). */
function expectedMinuteCounts(truth: GroundTruth): Record<string, number> {
  const out: Array<[string, number]> = [];
  for (const [adId, minutes] of Object.entries(truth.counts))
    for (const [minute, clicks] of Object.entries(minutes))
      if (clicks > 0) out.push([`${adId}|${Date.parse(minute)}`, clicks]);
  return Object.fromEntries(out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

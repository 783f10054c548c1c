// No process exits because a dependency died, hung or came back (issue 23, docs/dependencies.md).
// The app's five processes run as children (as `npm start` runs them, each with this test's own
// topics, groups, task queue, S3 prefix and ports; an exit is counted and restarted), clicks and API
// requests go on, and PostgreSQL is (a) killed with `kill -9` and started again, (b) hung with
// SIGSTOP for ~20 s, (c) away while a process starts. Each time: no process exits, the API answers
// a prompt 503 naming the cause (never a hang past its deadline), /readyz names PostgreSQL, and
// everything recovers by itself. (d) The archiver's stall watchdog: a partition whose committed
// offset stops while it has lag (here: the consumer's fetching of it paused behind the archiver's
// back, as KafkaJS did in the stall of issue 23) is detected, logged and resumed by a rejoin.
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Consumer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { clickKey, encodeClickEvent, type ClickEvent } from '../../common/click-event.js';
import { clicksTopicSpec, createKafka, ensureTopics } from '../../common/kafka.js';
import { createS3, ensureBucket } from '../../common/s3.js';
import { deleteObjects, listObjects } from '../../batch-layer/storage.js';
import { Archiver } from '../../batch-layer/archiver.js';
import { SpeedConsumer } from '../../speed-layer/consumer.js';
import { PostgresSink } from '../../speed-layer/postgres-sink.js';
import { runningPid } from '../../stack/runtime.js';
import {
  AppProcess,
  ensureStackServicesUp,
  freePort,
  metricValue,
  postgresService,
  signalStackService,
  sleep,
  startStackService,
  waitFor,
} from './faults-support.js';

const run = randomUUID().slice(0, 8);
const scratch = join(tmpdir(), `outages-${run}`);
const logDir = join(scratch, 'logs');
const ADMIN = { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}`, 'content-type': 'application/json' };
/** An API request during an outage answers within this (ms): the watch marks PostgreSQL down within
 * ~1.5 s, and a request already waiting on it has the statement deadline (10 s) plus a second. */
const API_DEADLINE_MS = 12_500;

interface Answer {
  status: number;
  ms: number;
  code?: string;
}

/** GET with a client-side limit far above every deadline: a hang shows as status 0 and its time. */
async function timedGet(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const t0 = Date.now();
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(40_000) });
    const body = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
    return { status: res.status, ms: Date.now() - t0, code: body.error?.code };
  } catch {
    return { status: 0, ms: Date.now() - t0 };
  }
}

/** Requests `url` back to back (4 at a time) until `stop()`; every answer is kept. */
function requestLoop(url: string, headers: Record<string, string>): { stop: () => Promise<Answer[]> } {
  const answers: Answer[] = [];
  let running = true;
  const lanes = Array.from({ length: 4 }, async () => {
    while (running) {
      answers.push(await timedGet(url, headers));
      await sleep(100);
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(lanes);
      return answers;
    },
  };
}

/** One line for the CI log: how the API answered during an outage. */
function summary(what: string, answers: Answer[]): string {
  const failed = answers.filter((a) => a.status !== 200);
  const ms = failed.map((a) => a.ms).sort((x, y) => x - y);
  return (
    `${what}: ${answers.length} requests, ${failed.length} not 200 (statuses ${[...new Set(failed.map((a) => a.status))].join(', ')}), ` +
    `those answered in median ${ms[Math.floor(ms.length / 2)] ?? 0} ms, max ${ms.at(-1) ?? 0} ms`
  );
}

async function postgresUp(): Promise<void> {
  if (runningPid(postgresService.name) === undefined) await startStackService(postgresService);
}

describe('dependency outages: PostgreSQL killed, hung, away at start; a stalled partition', () => {
  const pool = createPool(2);
  const env: Record<string, string> = {};
  const ports: Record<string, number> = {};
  let click: AppProcess, api: AppProcess, speed: AppProcess, archiver: AppProcess, worker: AppProcess;
  let simulator: AppProcess | undefined;
  let late: AppProcess | undefined;
  let adId = '';
  const apps = (): AppProcess[] => [click, api, speed, archiver, worker];
  const url = (name: string, path: string): string => `http://127.0.0.1:${ports[name]}${path}`;
  const readyz = async (name: string): Promise<{ status: number; checks: Record<string, string> }> => {
    const res = await fetch(url(name, '/readyz'), { signal: AbortSignal.timeout(5000) });
    return { status: res.status, checks: ((await res.json()) as { checks: Record<string, string> }).checks };
  };
  const allReady = async (): Promise<boolean> => {
    for (const name of ['api', 'speed', 'archiver', 'worker'])
      if ((await readyz(name)).status !== 200) return false;
    return true;
  };
  /** No app process exited or was started again since the beginning. */
  const expectNoExits = (): void => {
    for (const p of apps()) {
      expect(p.unexpectedExits, `${p.name} exits`).toEqual([]);
      expect(p.starts, `${p.name} starts`).toBe(1);
    }
  };

  beforeAll(async () => {
    mkdirSync(join(scratch, 'spool'), { recursive: true });
    await postgresUp();
    await ensureStackServicesUp();
    await migrate(pool);
    for (const name of ['click', 'api', 'speed', 'archiver', 'worker', 'late'])
      ports[name] = await freePort();
    Object.assign(env, {
      PORT: String(ports.click),
      API_PORT: String(ports.api),
      HOST: '127.0.0.1',
      KAFKA_CLICKS_TOPIC: `outages-clicks-${run}`,
      KAFKA_MINUTE_COUNTS_TOPIC: `outages-minute-counts-${run}`,
      SPEED_CONSUMER_GROUP: `outages-speed-${run}`,
      SPEED_STORE: 'postgres',
      SPEED_LAYER_METRICS_PORT: String(ports.speed),
      ARCHIVER_GROUP_ID: `outages-archiver-${run}`,
      ARCHIVER_FLUSH_MS: '3000',
      ARCHIVER_METRICS_PORT: String(ports.archiver),
      WORKER_METRICS_PORT: String(ports.worker),
      TEMPORAL_TASK_QUEUE: `outages-batch-${run}`,
      BATCH_S3_PREFIX: `outages-${run}/`,
      BATCH_WORK_DIR: join(scratch, 'batch'),
      ADCLICK_SPOOL_DIR: join(scratch, 'spool'),
      ADCLICK_CLICK_WORKERS: '1',
    });
    click = new AppProcess('click', 'apps/click.ts', env, logDir);
    api = new AppProcess('api', 'apps/api.ts', env, logDir);
    speed = new AppProcess('speed-layer', 'apps/speed-layer.ts', env, logDir);
    archiver = new AppProcess('archiver', 'apps/archiver.ts', env, logDir);
    worker = new AppProcess('worker', 'apps/worker.ts', env, logDir);
    await click.start();
    await waitFor('click /readyz', async () => (await fetch(url('click', '/readyz'))).ok, 120_000);
    await Promise.all([
      api.start({ readyLine: /\[api\] listening on/ }),
      speed.start({ readyLine: /consuming .* into postgres/ }),
      archiver.start({ readyLine: /\[archiver\] consuming/ }),
      worker.start({ readyLine: /\[worker\] polling task queue/ }),
    ]);
    await waitFor('every process ready', allReady, 60_000);
    // One ad for the API's requests; the simulator makes its own and clicks them all along.
    const advertiser = (await (
      await fetch(url('api', '/v1/advertisers'), {
        method: 'POST',
        headers: ADMIN,
        body: '{"name":"outages"}',
      })
    ).json()) as { advertiserId: string };
    const ad = (await (
      await fetch(url('api', '/v1/ads'), {
        method: 'POST',
        headers: ADMIN,
        body: JSON.stringify({ advertiserId: advertiser.advertiserId, redirectUrl: 'https://example.com/' }),
      })
    ).json()) as { adId: string };
    adId = ad.adId;
    simulator = new AppProcess(
      'simulate',
      'tools/simulate.ts',
      env,
      logDir,
      ['--base', `http://127.0.0.1:${ports.click}`, '--rate', '100', '--duration', '600', '--ads', '10'],
      false,
    );
    await simulator.start({ readyLine: /dashboard key/, timeoutMs: 60_000 });
  }, 240_000);

  afterAll(async () => {
    if (runningPid(postgresService.name) !== undefined) signalStackService(postgresService, 'SIGCONT');
    await postgresUp();
    for (const p of [simulator, late, ...apps()]) await p?.stop();
    await ensureStackServicesUp();
    const admin = createKafka('outages-cleanup').admin();
    await admin.connect();
    await admin
      .deleteTopics({
        topics: [env.KAFKA_CLICKS_TOPIC!, env.KAFKA_MINUTE_COUNTS_TOPIC!, `outages-stall-${run}`],
      })
      .catch(() => undefined);
    await admin
      .deleteGroups([env.SPEED_CONSUMER_GROUP!, env.ARCHIVER_GROUP_ID!, `outages-stall-${run}`])
      .catch(() => undefined);
    await admin.disconnect();
    const s3 = createS3();
    for (const prefix of [env.BATCH_S3_PREFIX!, `outages-stall-${run}/`])
      await deleteObjects(
        s3,
        config.S3_BUCKET,
        (await listObjects(s3, config.S3_BUCKET, prefix)).map((o) => o.key),
      );
    s3.destroy();
    await pool.query('delete from archive_watermarks where topic = any($1)', [
      [env.KAFKA_CLICKS_TOPIC, `outages-stall-${run}`],
    ]);
    await pool.query('delete from speed_offsets where group_id = $1', [env.SPEED_CONSUMER_GROUP]);
    await pool.end();
    rmSync(scratch, { recursive: true, force: true });
  }, 120_000);

  it('(a) PostgreSQL killed under load: no process exits, the API answers 503 promptly, all recover', async () => {
    await postgresUp();
    const loop = requestLoop(url('api', `/v1/ads/${adId}`), ADMIN);
    await sleep(2000);
    signalStackService(postgresService, 'SIGKILL');
    const downAt = Date.now();
    await sleep(4000);
    // While it is away: every process says not-ready and names PostgreSQL.
    const during = {
      api: await readyz('api').catch((e: Error) => e.message),
      archiver: await readyz('archiver').catch((e: Error) => e.message),
    };
    await sleep(Math.max(0, 10_000 - (Date.now() - downAt)));
    await startStackService(postgresService);
    expectNoExits();
    expect(during).toMatchObject({
      api: { status: 503, checks: { postgres: 'down' } },
      archiver: { status: 503, checks: { postgres: 'down' } },
    });
    await waitFor('every process ready again', allReady, 60_000);
    const answers = await loop.stop();
    console.log(summary('PostgreSQL killed', answers));
    const failed = answers.filter((a) => a.status !== 200);
    expect(failed.length, 'requests answered other than 200 during the outage').toBeGreaterThan(10);
    expect(
      failed.filter((a) => a.status !== 503 || a.code !== 'unavailable'),
      'every failed request is a 503 "unavailable"',
    ).toEqual([]);
    expect(Math.max(...failed.map((a) => a.ms)), 'slowest 503 (ms)').toBeLessThan(API_DEADLINE_MS);
    expect((await timedGet(url('api', `/v1/ads/${adId}`), ADMIN)).status).toBe(200);
    expectNoExits();
  });

  it('(b) PostgreSQL hung (SIGSTOP ~20 s): no request waits past its deadline, no process exits, all recover', async () => {
    await postgresUp();
    const loop = requestLoop(url('api', `/v1/ads/${adId}`), ADMIN);
    await sleep(2000);
    signalStackService(postgresService, 'SIGSTOP');
    try {
      await waitFor(
        'api /readyz naming postgres',
        async () => (await readyz('api')).checks.postgres === 'down',
        10_000,
      );
      await sleep(18_000);
    } finally {
      signalStackService(postgresService, 'SIGCONT');
    }
    await waitFor('every process ready again', allReady, 60_000);
    const answers = await loop.stop();
    console.log(summary('PostgreSQL hung', answers));
    const failed = answers.filter((a) => a.status !== 200);
    expect(failed.length, 'requests answered other than 200 while it hung').toBeGreaterThan(10);
    expect(
      answers.filter((a) => a.status === 0),
      'requests without an answer',
    ).toEqual([]);
    expect(Math.max(...answers.map((a) => a.ms)), 'slowest answer (ms)').toBeLessThan(API_DEADLINE_MS);
    expect(
      failed.every((a) => a.status === 503),
      'every failure is a 503',
    ).toBe(true);
    // Once it is known down, the 503 is prompt (no waiting for a connection or a statement).
    const prompt = failed.filter((a) => a.ms < 1000).length;
    expect(prompt / failed.length, 'share of 503s answered within 1 s').toBeGreaterThan(0.8);
    expect((await timedGet(url('api', `/v1/ads/${adId}`), ADMIN)).status).toBe(200);
    expectNoExits();
  });

  it('(c) a process started while PostgreSQL is down is not ready, then ready by itself once it is back', async () => {
    await postgresUp();
    signalStackService(postgresService, 'SIGKILL');
    late = new AppProcess('api-late', 'apps/api.ts', { ...env, API_PORT: String(ports.late) }, logDir);
    await late.start({ readyLine: /\[api\] listening on/, timeoutMs: 30_000 });
    const notReady = await readyz('late');
    expect(notReady.status).toBe(503);
    expect(notReady.checks).toMatchObject({ postgres: 'down', migrations: 'down' });
    const refused = await timedGet(url('late', `/v1/ads/${adId}`), ADMIN);
    expect(refused).toMatchObject({ status: 503, code: 'unavailable' });
    expect(refused.ms).toBeLessThan(2000);
    await sleep(5000); // its migrations retry meanwhile
    expect(late.unexpectedExits).toEqual([]);
    await startStackService(postgresService);
    await waitFor('late api ready', async () => (await readyz('late')).status === 200, 60_000);
    expect((await timedGet(url('late', `/v1/ads/${adId}`), ADMIN)).status).toBe(200);
    expect(late.starts).toBe(1);
    expect(late.unexpectedExits).toEqual([]);
    await waitFor('every process ready again', allReady, 60_000);
    expectNoExits();
  });

  it('(d) the stall watchdog finds a partition whose committed offset stopped with lag, and resumes it', async () => {
    await simulator?.stop(); // the machine's CPU for this one
    await postgresUp();
    const topic = `outages-stall-${run}`;
    const kafka = createKafka(`outages-stall-${run}`);
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [clicksTopicSpec({ topic, partitions: 2 })]);
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    const s3 = createS3();
    await ensureBucket(s3, config.S3_BUCKET);
    // Uploads slower than the stall bound, once the partition is stalled (a loaded machine, a slow
    // S3): the watchdog must let an upload under way finish, not replace the consumer under it
    // (seen in CI: a rejoin every 5 s, each throwing away the upload the last one had started).
    let uploadDelayMs = 0;
    s3.middlewareStack.add(
      (next) => async (args) => {
        if (uploadDelayMs > 0) await sleep(uploadDelayMs);
        return next(args);
      },
      { step: 'initialize', name: 'slowUploads' },
    );
    const logs: string[] = [];
    const stalling = new Archiver({
      kafka,
      s3,
      pool,
      bucket: config.S3_BUCKET,
      prefix: `outages-stall-${run}/`,
      topic,
      groupId: topic,
      flushEvents: 1000,
      flushMs: 500,
      graceMs: 1000,
      workDir: join(scratch, 'stall'),
      stallAfterMs: 4000,
      log: (m) => logs.push(m),
    });
    const produce = async (partition: number, n: number): Promise<void> => {
      const now = Date.now();
      const events: ClickEvent[] = Array.from({ length: n }, (_, i) => ({
        v: 1,
        eventId: randomUUID(),
        adId: '1',
        advertiserId: '1',
        ts: now + i,
        status: 'valid',
        salt: 0,
      }));
      await producer.send({
        topic,
        messages: events.map((e) => ({
          key: clickKey(e.adId, e.salt),
          value: encodeClickEvent(e),
          partition,
        })),
      });
    };
    const committed = async (partition: number): Promise<number> => {
      const [t] = await admin.fetchOffsets({ groupId: topic, topics: [topic] });
      return Number(t?.partitions.find((p) => p.partition === partition)?.offset ?? -1);
    };
    try {
      await stalling.start();
      await produce(0, 50);
      await produce(1, 50);
      await waitFor(
        'both partitions archived',
        async () => (await committed(0)) === 50 && (await committed(1)) === 50,
        30_000,
      );
      // Partition 1 stops being fetched behind the archiver's back (as KafkaJS stopped fetching
      // partition 4 in issue 23), and more arrives on both: partition 1 has lag, its offset stands.
      (stalling as unknown as { consumer: Consumer }).consumer.pause([{ topic, partitions: [1] }]);
      uploadDelayMs = 6000;
      await produce(0, 50);
      await produce(1, 50);
      await waitFor('partition 0 archived further', async () => (await committed(0)) === 100, 30_000);
      expect(await committed(1)).toBe(50);
      // Detection takes stallAfterMs (4 s) plus a look; the new consumer's join can wait out the old
      // member's session (30 s) when the old one could not leave the group cleanly (seen once in CI).
      await waitFor(
        'partition 1 resumed and archived',
        async () => (await committed(1)) === 100,
        75_000,
      ).catch((e: Error) => {
        throw new Error(`${e.message}; the archiver logged:\n${logs.join('\n')}`);
      });
      expect(
        logs.some((l) =>
          new RegExp(`STALL ${topic} partition 1 .*committed offset 50 .*end offset is 100`).test(l),
        ),
        logs.join('\n'),
      ).toBe(true);
      expect(stalling.stats.stalls).toBeGreaterThanOrEqual(1);
      const metrics = await (await import('../../common/metrics.js')).metricsText();
      expect(metricValue(metrics, 'adclick_consumer_stalls_total')).toBeGreaterThanOrEqual(1);
      expect(metrics).toMatch(
        new RegExp(`adclick_consumer_end_offset\\{group="${topic}",topic="${topic}",partition="1"\\} 100`),
      );
    } finally {
      await stalling.stop().catch(() => undefined);
      await producer.disconnect();
      await admin.disconnect();
      s3.destroy();
    }
  }, 180_000);
  it('(e) the speed layer: its stall watchdog resumes a partition whose checkpoint stopped with lag', async () => {
    await postgresUp();
    const topic = `outages-speed-stall-${run}`;
    const adId = String(900_000_000_000_000 + Math.floor(Math.random() * 90_000_000_000_000));
    const kafka = createKafka(topic);
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [clicksTopicSpec({ topic, partitions: 2 })]);
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    const logs: string[] = [];
    const consumer = new SpeedConsumer({
      kafka,
      topic,
      groupId: topic,
      sink: new PostgresSink(pool, topic, topic),
      storeName: 'postgres',
      openMinutes: 5,
      flushIntervalMs: 200,
      stallAfterMs: 4000,
      log: (m) => logs.push(m),
    });
    const produce = async (partition: number, n: number): Promise<void> => {
      const now = Date.now();
      await producer.send({
        topic,
        messages: Array.from({ length: n }, (_, i) => {
          const e: ClickEvent = {
            v: 1,
            eventId: randomUUID(),
            adId,
            advertiserId: '1',
            ts: now + i,
            status: 'valid',
            salt: 0,
          };
          return { key: clickKey(e.adId, e.salt), value: encodeClickEvent(e), partition };
        }),
      });
    };
    const checkpoint = async (partition: number): Promise<number> => {
      const r = await pool.query<{ next_offset: string }>(
        'select next_offset from speed_offsets where group_id = $1 and topic = $1 and partition = $2',
        [topic, partition],
      );
      return Number(r.rows[0]?.next_offset ?? -1);
    };
    try {
      await consumer.start();
      await produce(0, 30);
      await produce(1, 30);
      await waitFor(
        'both partitions counted',
        async () => (await checkpoint(0)) === 30 && (await checkpoint(1)) === 30,
        30_000,
      );
      (consumer as unknown as { consumer: Consumer }).consumer.pause([{ topic, partitions: [1] }]);
      await produce(0, 30);
      await produce(1, 30);
      await waitFor('partition 0 counted further', async () => (await checkpoint(0)) === 60, 30_000);
      expect(await checkpoint(1)).toBe(30);
      await waitFor('partition 1 resumed and counted', async () => (await checkpoint(1)) === 60, 30_000);
      expect(
        logs.some((l) => new RegExp(`STALL ${topic} partition 1 .*committed offset 30 `).test(l)),
        logs.join('\n'),
      ).toBe(true);
      expect(consumer.stalls).toBeGreaterThanOrEqual(1);
    } finally {
      await consumer.stop().catch(() => undefined);
      await producer.disconnect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.deleteGroups([topic]).catch(() => undefined);
      await admin.disconnect();
      await pool.query('delete from speed_offsets where group_id = $1', [topic]);
      await pool.query('delete from speed_counts_minute where ad_id = $1', [adId]);
    }
  });
});

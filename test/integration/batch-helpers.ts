// Shared setup of the batch integration tests: an isolated topic, S3 prefix and far-past hours per
// run, history produced to Kafka and archived by a real Archiver, and readers of the result tables.
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import { config } from '../../common/config.js';
import { HOUR_MS } from '../../common/time.js';
import { query as pinotQuery } from '../../common/pinot.js';
import { Archiver } from '../../batch-layer/archiver.js';
import { produceHistory } from '../../tools/history-simulator.js';
import type { History } from '../../tools/history.js';
import { clicksTopicSpec, ensureTopics } from '../../common/kafka.js';
import { waitFor } from '../../common/wait.js';

export { waitFor };

export function isolation() {
  const run = randomUUID().slice(0, 8);
  // A random hour between 1990 and 2019: finalized_hours and workflow ids stay unique per run.
  const hour0 = Date.UTC(1990, 0, 1) + Math.floor(Math.random() * 30 * 365 * 24) * HOUR_MS;
  return {
    run,
    topic: `batch-test-${run}`,
    prefix: `test-${run}/`,
    groupId: `archiver-test-${run}`,
    taskQueue: `batch-test-${run}`,
    hour0,
    // Unique ad ids per run (18 digits max).
    adBase: BigInt(Date.now()) * 1000n + BigInt(Math.floor(Math.random() * 1000)),
  };
}

/** Produces the history to a fresh topic and archives it; resolves once every event is in S3. */
export async function archiveHistory(opts: {
  kafka: Kafka;
  s3: S3Client;
  pool: pg.Pool;
  topic: string;
  prefix: string;
  groupId: string;
  history: History;
  lastHourEnd: number;
  flushEvents?: number;
}): Promise<Archiver> {
  const admin = opts.kafka.admin();
  await admin.connect();
  await ensureTopics(admin, [clicksTopicSpec({ topic: opts.topic, partitions: 4 })]);
  await admin.disconnect();
  const producer = opts.kafka.producer({ idempotent: true });
  await producer.connect();
  await produceHistory(producer, opts.topic, opts.history.events);
  await producer.disconnect();
  const archiver = new Archiver({
    kafka: opts.kafka,
    s3: opts.s3,
    pool: opts.pool,
    bucket: config.S3_BUCKET,
    prefix: opts.prefix,
    topic: opts.topic,
    groupId: opts.groupId,
    flushEvents: opts.flushEvents ?? 400,
    flushMs: 1000,
    graceMs: 1000,
    workDir: join(tmpdir(), `archiver-${opts.groupId}`),
  });
  await archiver.start();
  await waitFor(
    'all events archived',
    async () => archiver.stats.events >= opts.history.events.length,
    90_000,
  );
  await waitFor(
    'watermark past the last hour',
    () => watermarkPassed(opts.pool, opts.topic, opts.lastHourEnd),
    30_000,
  );
  return archiver;
}

/** Every partition of `topic` that the archive reported on has its watermark at or past `hourEnd`. */
export async function watermarkPassed(pool: pg.Pool, topic: string, hourEnd: number): Promise<boolean> {
  const { rows } = await pool.query<{ n: string; low: Date | null }>(
    'select count(*) as n, min(watermark) as low from archive_watermarks where topic = $1',
    [topic],
  );
  const row = rows[0];
  return !!row && Number(row.n) > 0 && row.low !== null && row.low.getTime() >= hourEnd;
}

/** click_counts_minute rows of these ads in [from, to) as `${adId}|${minute ms}` → clicks. */
export async function minuteRows(
  pool: pg.Pool,
  adIds: readonly string[],
  from: number,
  to: number,
): Promise<Map<string, number>> {
  if (config.BATCH_STORE === 'pinot') {
    if (adIds.length === 0) return new Map();
    // The finals in the store the app reads them from (BATCH_STORE; docs/store.md).
    const r = await pinotQuery(
      `select ad_id, minute, clicks from ${config.BATCH_PINOT_TABLE}
        where ad_id in (${adIds.map((id) => String(BigInt(id))).join(', ')}) and minute >= ${from} and minute < ${to}
        limit 1000000`,
    );
    return new Map(r.rows.map(([ad, minute, clicks]) => [`${String(ad)}|${String(minute)}`, Number(clicks)]));
  }
  const { rows } = await pool.query<{ ad_id: string; ms: string; clicks: number }>(
    `select ad_id, (extract(epoch from minute) * 1000)::bigint as ms, clicks from click_counts_minute
      where ad_id = any($1::bigint[]) and minute >= $2 and minute < $3`,
    [adIds, new Date(from), new Date(to)],
  );
  return new Map(rows.map((r) => [`${r.ad_id}|${r.ms}`, r.clicks]));
}

/** An hour's total clicks from the per-ad hour rows and from the per-advertiser minute rows, in the configured store. */
export async function hourRollupTotals(
  pool: pg.Pool,
  hour: number,
): Promise<{ adHour: number; advertiserMinute: number }> {
  if (config.BATCH_STORE === 'pinot') {
    // One row set in Pinot: the per-advertiser sum is answered from the star-tree.
    const t = config.BATCH_PINOT_TABLE;
    const adHour = await pinotQuery(`select sum(clicks) from ${t} where hour = ${hour}`);
    const byAdvertiser = await pinotQuery(
      `select advertiser_id, sum(clicks) from ${t} where minute >= ${hour} and minute < ${hour + HOUR_MS}
        group by advertiser_id limit 100000`,
    );
    return {
      adHour: Number(adHour.rows[0]?.[0] ?? 0),
      advertiserMinute: byAdvertiser.rows.reduce((a, r) => a + Number(r[1]), 0),
    };
  }
  const sum = async (sql: string, args: unknown[]): Promise<number> =>
    Number((await pool.query<{ total: string | null }>(sql, args)).rows[0]?.total ?? 0);
  return {
    adHour: await sum('select sum(clicks) as total from click_counts_hour where hour = $1', [new Date(hour)]),
    advertiserMinute: await sum(
      'select sum(clicks) as total from advertiser_counts_minute where minute >= $1 and minute < $2',
      [new Date(hour), new Date(hour + HOUR_MS)],
    ),
  };
}

export const adIdsOf = (h: History): string[] => [...new Set(h.events.map((e) => e.adId))];

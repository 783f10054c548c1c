// Retention tiers on real PostgreSQL: partitions created ahead (moving the default partition's rows
// of their range), expiry by dropping partitions, and compaction writing the day rollups in the same
// transaction as the hour while leaving alone a tier retention has dropped. Partition maintenance
// runs on tables of its own; compaction writes hours of a far-past year no other test uses.
import { randomInt } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, migrate } from '../../common/db.js';
import { tiersOf } from '../../common/retention.js';
import { DAY_MS, HOUR_MS } from '../../common/time.js';
import { dropExpiredPartitions, ensurePartitions, listPartitions } from '../../batch-layer/partitions.js';
import { writeHourCounts } from '../../batch-layer/compaction.js';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Admin } from 'kafkajs';
import { config } from '../../common/config.js';
import { createS3 } from '../../common/s3.js';
import { createTemporalClient } from '../../common/temporal.js';
import { rawFileKey, seenIndexKey } from '../../batch-layer/layout.js';
import { deleteObjects, listObjects } from '../../batch-layer/storage.js';
import { createActivities } from '../../activities/index.js';
import type { RetentionResult } from '../../workflows/index.js';

const pool = createPool(3);
const suffix = `_rt${randomInt(1e9)}`;
const tiers = tiersOf({ minuteDays: 7, hourDays: 92, dayYears: 3 }, suffix);
const now = Date.UTC(2031, 5, 15, 12);

beforeAll(async () => {
  await migrate(pool);
  // The tier's own tables, shaped like the real ones.
  for (const tier of Object.values(tiers))
    for (const table of tier.tables) {
      await pool.query(
        `create table ${table} (k bigint not null, ${tier.timeColumn} timestamptz not null,
           clicks bigint not null constraint clicks_positive check (clicks > 0), primary key (k, ${tier.timeColumn}))
         partition by range (${tier.timeColumn})`,
      );
      await pool.query(`create table ${table}_default partition of ${table} default`);
    }
});

afterAll(async () => {
  for (const tier of Object.values(tiers))
    for (const table of tier.tables) await pool.query(`drop table if exists ${table}`);
  await pool.query('delete from expired_partitions where table_name like $1', [`%${suffix}`]);
  await pool.end();
});

describe('time partitions', () => {
  it('creates partitions ahead, moving rows out of the default partition, and expires by dropping', async () => {
    const minute = tiers.minute;
    const table = minute.tables[0]!;
    // Rows written before their partition existed: 9 days ago (past the tier) and 2 days ago.
    await pool.query(`insert into ${table} (k, minute, clicks) values (1, $1, 3), (1, $2, 4), (2, $2, 5)`, [
      new Date(now - 9 * DAY_MS),
      new Date(now - 2 * DAY_MS),
    ]);
    const created = await ensurePartitions(pool, minute, now);
    expect(created.filter((c) => c.table === table)).toHaveLength(10); // now − 7 d … today + 2
    expect(created.find((c) => c.movedRows === 2)?.from).toBe(
      new Date(now - 2 * DAY_MS - 12 * HOUR_MS).toISOString(),
    );
    const inDefault = await pool.query(`select count(*)::int as n from ${table}_default`);
    expect(inDefault.rows[0].n).toBe(1); // the row older than the tier's window stays in the default
    expect(await ensurePartitions(pool, minute, now)).toEqual([]); // idempotent

    // A day later the oldest partition has fallen out of the tier: dropped, and recorded.
    const later = now + DAY_MS;
    const dropped = await dropExpiredPartitions(pool, minute, later);
    expect(dropped.map((d) => d.partition).sort()).toEqual(minute.tables.map((t) => `${t}_p20310608`).sort());
    const left = await listPartitions(pool, table, minute);
    expect(left.map((p) => p.start)).not.toContain(Date.UTC(2031, 5, 8));
    // A dropped range is not created again; the next day ahead is.
    const next = await ensurePartitions(pool, minute, later);
    expect(next.map((c) => c.partition)).toEqual(minute.tables.map((t) => `${t}_p20310618`));
    const sum = await pool.query(`select sum(clicks)::int as n from ${table}`);
    expect(sum.rows[0].n).toBe(12); // nothing dropped that the tier still holds
  });

  it('keeps hour partitions 92 days and day partitions for years', async () => {
    await ensurePartitions(pool, tiers.hour, now);
    await ensurePartitions(pool, tiers.day, now);
    const soon = now + 40 * DAY_MS;
    expect((await dropExpiredPartitions(pool, tiers.hour, soon)).map((d) => d.partition)).toEqual(
      tiers.hour.tables.map((t) => `${t}_p203103`),
    );
    expect(await dropExpiredPartitions(pool, tiers.day, soon)).toEqual([]);
    const years = await dropExpiredPartitions(pool, tiers.day, Date.UTC(2035, 0, 2));
    expect(years.map((d) => d.partition)).toContain(`${tiers.day.tables[0]}_p2028`);
  });
});

const dir = mkdtempSync(join(tmpdir(), 'retention-'));
const ts = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').replace('.000Z', '');
const run = { workflowId: 'retention-test', runId: 'r' };
const ad = (i: number): string => String(9_100_000_000 + randomInt(1e6) * 10 + i);

/** Writes one hour as compaction would, from (ad, minute offset, clicks) rows of advertiser `adv`. */
async function writeHourRows(
  hour: number,
  adv: string,
  rows: Array<[string, number, number]>,
): Promise<void> {
  const out = (name: string, lines: string[]): string => {
    const path = join(dir, `${hour}-${name}.csv`);
    writeFileSync(path, lines.map((l) => `${l}\n`).join(''));
    return path;
  };
  const perAd = new Map<string, number>();
  for (const [a, , c] of rows) perAd.set(a, (perAd.get(a) ?? 0) + c);
  const perMinute = new Map<number, number>();
  for (const [, m, c] of rows) perMinute.set(m, (perMinute.get(m) ?? 0) + c);
  const total = rows.reduce((s, r) => s + r[2], 0);
  const csv = {
    adMinute: out(
      'am',
      rows.map(([a, m, c]) => `${a},${ts(hour + m * 60_000)},${c}`),
    ),
    adHour: out(
      'ah',
      [...perAd].map(([a, c]) => `${a},${ts(hour)},${c}`),
    ),
    advertiserMinute: out(
      'vm',
      [...perMinute].map(([m, c]) => `${adv},${ts(hour + m * 60_000)},${c}`),
    ),
    advertiserHour: out('vh', total ? [`${adv},${ts(hour)},${total}`] : []),
  };
  await writeHourCounts(
    pool,
    hour,
    { csv, events: total, validClicks: total, adMinutes: rows.length, adHours: perAd.size, seenEarlier: 0 },
    run,
    new Date(),
  );
}

describe('compaction and the tiers', () => {
  // Hours of a year before any other test's (they use 1990 onwards) and ad ids of their own.
  const day = Date.UTC(1960 + randomInt(20), 0, 1) + randomInt(360) * DAY_MS;
  const [ad1, ad2] = [ad(1), ad(2)];
  const adv = String(9_200_000_000 + randomInt(1e6));
  const writeHour = (hour: number, rows: Array<[string, number, number]>): Promise<void> =>
    writeHourRows(hour, adv, rows);

  const dayRows = async (): Promise<Record<string, number>> => {
    const r = await pool.query<{ k: string; clicks: string }>(
      `select ad_id::text as k, clicks from click_counts_day where day = $1 and ad_id = any($2::bigint[])
       union all select 'adv', clicks from advertiser_counts_day where day = $1 and advertiser_id = $3`,
      [new Date(day), [ad1, ad2], adv],
    );
    return Object.fromEntries(r.rows.map((row) => [row.k, Number(row.clicks)]));
  };

  afterAll(async () => {
    const hours = [new Date(day), new Date(day + DAY_MS)];
    await pool.query('delete from click_counts_minute where ad_id = any($1::bigint[])', [[ad1, ad2]]);
    await pool.query('delete from click_counts_hour where ad_id = any($1::bigint[])', [[ad1, ad2]]);
    await pool.query('delete from click_counts_day where ad_id = any($1::bigint[])', [[ad1, ad2]]);
    for (const t of ['advertiser_counts_minute', 'advertiser_counts_hour', 'advertiser_counts_day'])
      await pool.query(`delete from ${t} where advertiser_id = $1`, [adv]);
    await pool.query('delete from finalized_hours where hour >= $1 and hour < $2', hours);
    await pool.query('delete from hour_revisions where hour >= $1 and hour < $2', hours);
    await pool.query(
      "delete from expired_partitions where table_name = 'click_counts_minute' and range_from = $1",
      [new Date(day)],
    );
  });

  it('writes day rollups when the day is whole, recomputed from its hours when an hour is replaced', async () => {
    for (let h = 0; h < 24; h++) if (h !== 3 && h !== 4) await writeHour(day + h * HOUR_MS, []);
    await writeHour(day + 3 * HOUR_MS, [
      [ad1, 0, 3],
      [ad1, 5, 1],
      [ad2, 7, 2],
    ]);
    expect(await dayRows()).toEqual({}); // the API reads day rows of whole days only
    await writeHour(day + 4 * HOUR_MS, [[ad1, 1, 1]]);
    expect(await dayRows()).toEqual({ [ad1]: 5, [ad2]: 2, adv: 7 });
    // The late path replaces hour 3: ad1 no longer in it, ad2 more.
    await writeHour(day + 3 * HOUR_MS, [[ad2, 7, 5]]);
    expect(await dayRows()).toEqual({ [ad1]: 1, [ad2]: 5, adv: 6 });
  });

  it('a late hour older than the minute tier updates only the tiers that still hold it', async () => {
    // As retention records a dropped minute partition of this day.
    await pool.query(
      `insert into expired_partitions (table_name, range_from, range_to) values ('click_counts_minute', $1, $2)`,
      [new Date(day), new Date(day + DAY_MS)],
    );
    const before = await pool.query('select count(*)::int as n from click_counts_minute where ad_id = $1', [
      ad2,
    ]);
    await writeHour(day + 3 * HOUR_MS, [
      [ad2, 7, 6],
      [ad2, 8, 1],
    ]);
    const after = await pool.query('select count(*)::int as n from click_counts_minute where ad_id = $1', [
      ad2,
    ]);
    expect(after.rows[0].n).toBe(before.rows[0].n); // the minute tier is left alone
    const hour = await pool.query(
      'select clicks::int from click_counts_hour where ad_id = $1 and hour = $2',
      [ad2, new Date(day + 3 * HOUR_MS)],
    );
    expect(hour.rows[0].clicks).toBe(7);
    expect(await dayRows()).toEqual({ [ad1]: 1, [ad2]: 7, adv: 8 });
  });
});

describe('compaction into hour partitions of the minute tier', () => {
  // A day of its own (years no other test uses), given the real tables' partitions split by hour.
  const day = Date.UTC(1940 + randomInt(20), 0, 1) + randomInt(360) * DAY_MS;
  // The real minute tables' tier, cut to the one day.
  const minuteTier = {
    ...tiersOf({ minuteDays: 7, hourDays: 92, dayYears: 3 }).minute,
    retentionDays: 0,
    ahead: 1,
  };
  const ad1 = ad(3);
  const ad2 = String(BigInt(ad1) + 1n); // after ad1: the rows below are in (ad, minute) order
  const adv = String(9_300_000_000 + randomInt(1e6));
  const hour = day + 5 * HOUR_MS;
  let created: string[] = [];

  beforeAll(async () => {
    created = (await ensurePartitions(pool, minuteTier, day + 12 * HOUR_MS)).map((c) => c.partition);
    // The day's other hours, finalized empty: the day is whole once the hour is written.
    for (let h = 0; h < 24; h++) if (h !== 5) await writeHourRows(day + h * HOUR_MS, adv, []);
  });

  afterAll(async () => {
    for (const partition of created) await pool.query(`drop table if exists ${partition}`);
    await pool.query('delete from click_counts_hour where ad_id = any($1::bigint[])', [[ad1, ad2]]);
    await pool.query('delete from click_counts_day where ad_id = any($1::bigint[])', [[ad1, ad2]]);
    for (const t of ['advertiser_counts_hour', 'advertiser_counts_day'])
      await pool.query(`delete from ${t} where advertiser_id = $1`, [adv]);
    const hours = [new Date(day), new Date(day + DAY_MS)];
    await pool.query('delete from finalized_hours where hour >= $1 and hour < $2', hours);
    await pool.query('delete from hour_revisions where hour >= $1 and hour < $2', hours);
  });

  const minuteRows = async (): Promise<Array<[string, number, number]>> => {
    const r = await pool.query<{ k: string; m: number; clicks: number }>(
      `select ad_id::text as k, extract(minute from minute)::int as m, clicks from click_counts_minute
        where ad_id = any($1::bigint[]) and minute >= $2 and minute < $3 order by 1, 2`,
      [[ad1, ad2], new Date(hour), new Date(hour + HOUR_MS)],
    );
    return r.rows.map((row) => [row.k, row.m, row.clicks]);
  };
  const partitionRows = async (): Promise<number> => {
    const name = `click_counts_minute_p${new Date(day).toISOString().slice(0, 10).replaceAll('-', '')}_h05`;
    return (await pool.query(`select count(*)::int as n from ${name}`)).rows[0].n;
  };
  const dayClicks = async (): Promise<Record<string, number>> => {
    const r = await pool.query<{ k: string; clicks: string }>(
      `select ad_id::text as k, clicks from click_counts_day where day = $1 and ad_id = any($2::bigint[])
       union all select 'adv', clicks from advertiser_counts_day where day = $1 and advertiser_id = $3`,
      [new Date(day), [ad1, ad2], adv],
    );
    return Object.fromEntries(r.rows.map((row) => [row.k, Number(row.clicks)]));
  };

  it('replaces the hour by swapping its partition, and the day rows follow each revision', async () => {
    await writeHourRows(hour, adv, [
      [ad1, 0, 3],
      [ad1, 59, 1],
      [ad2, 7, 2],
    ]);
    expect(await minuteRows()).toEqual([
      [ad1, 0, 3],
      [ad1, 59, 1],
      [ad2, 7, 2],
    ]);
    expect(await partitionRows()).toBe(3);
    expect(await dayClicks()).toEqual({ [ad1]: 4, [ad2]: 2, adv: 6 });

    // Finalized again (the late path): the hour's minute rows are replaced, not added to.
    await writeHourRows(hour, adv, [[ad2, 7, 5]]);
    expect(await minuteRows()).toEqual([[ad2, 7, 5]]);
    expect(await partitionRows()).toBe(1);
    expect(await dayClicks()).toEqual({ [ad2]: 5, adv: 5 });

    // And again with the same numbers: nothing changes, the swap works a second time.
    await writeHourRows(hour, adv, [[ad2, 7, 5]]);
    expect(await minuteRows()).toEqual([[ad2, 7, 5]]);
    expect(await dayClicks()).toEqual({ [ad2]: 5, adv: 5 });

    // An hour that now holds no valid click.
    await writeHourRows(hour, adv, []);
    expect(await minuteRows()).toEqual([]);
    expect(await dayClicks()).toEqual({});
  });
});

describe('the retention workflow', () => {
  const s3 = createS3();
  const prefix = `test-retention-${randomInt(1e9)}/`;
  const at = now + 2 * DAY_MS; // after the partition tests above: their tables, two days on
  const old = at - 31 * DAY_MS - 5 * HOUR_MS; // past the 30-day raw retention
  const kept = at - 29 * DAY_MS;

  afterAll(async () => {
    await deleteObjects(
      s3,
      config.S3_BUCKET,
      (await listObjects(s3, config.S3_BUCKET, prefix)).map((o) => o.key),
    );
    await pool.query('delete from raw_files where key like $1', [`${prefix}%`]);
    await pool.query('delete from raw_expiry where prefix = $1', [prefix]);
    await pool.query('delete from finalized_hours where hour = $1 and workflow_id = $2', [
      new Date(old - (old % HOUR_MS)),
      `retention-test-${prefix}`,
    ]);
    s3.destroy();
  });

  it('creates and drops partitions and deletes raw Parquet past its retention', async () => {
    const oldKey = rawFileKey(prefix, old - (old % HOUR_MS), 0, '1', '2');
    const keptKey = rawFileKey(prefix, kept - (kept % HOUR_MS), 0, '3', '4');
    const oldIndex = seenIndexKey(prefix, old - (old % HOUR_MS), [oldKey]);
    for (const key of [oldKey, keptKey, oldIndex])
      await s3.send(new PutObjectCommand({ Bucket: config.S3_BUCKET, Key: key, Body: 'x' }));
    await pool.query('insert into raw_files (hour, key) values ($1, $2), ($3, $4)', [
      new Date(old - (old % HOUR_MS)),
      oldKey,
      new Date(kept - (kept % HOUR_MS)),
      keptKey,
    ]);
    // The old hour was finalized with its file (retention keeps the raw files of an hour still owed a
    // finalization: docs/completeness.md, section 5).
    await pool.query(
      `insert into finalized_hours (hour, run_id, workflow_id, valid_clicks, events, listed_at)
       values ($1, 'r', $2, 0, 0, now()) on conflict (hour) do nothing`,
      [new Date(old - (old % HOUR_MS)), `retention-test-${prefix}`],
    );

    const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
    const taskQueue = `retention-${randomInt(1e9)}`;
    const worker = await Worker.create({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue,
      workflowsPath: new URL('../../workflows/index.ts', import.meta.url).pathname,
      activities: createActivities({
        pool,
        s3,
        bucket: config.S3_BUCKET,
        prefix,
        workDir: tmpdir(),
        topic: 'unused',
        kafkaAdmin: {} as Admin,
        archiverGroupId: 'unused',
        silenceBoundMs: 1,
        rawRetentionHours: 30 * 24,
        lookbackHours: 2,
        retention: { minuteDays: 7, hourDays: 92, dayYears: 3 },
        retentionTableSuffix: suffix,
      }),
    });
    const client = await createTemporalClient();
    const result = await worker.runUntil(
      client.workflow.execute('applyRetention', {
        taskQueue,
        workflowId: `retention-test-${randomInt(1e9)}`,
        args: [{ now: new Date(at).toISOString() }],
      }) as Promise<RetentionResult>,
    );
    await client.connection.close();
    await connection.close();

    // Two days on, the day that has wholly left the 7-day minute tier (06-10 still holds the horizon).
    expect(result.partitions.dropped.map((d) => d.partition).sort()).toEqual(
      tiers.minute.tables.map((t) => `${t}_p20310609`).sort(),
    );
    expect(result.partitions.created.map((c) => c.partition)).toContain(
      `${tiers.minute.tables[0]}_p20310619`,
    );
    expect(result.raw).toMatchObject({ rawObjects: 1, indexObjects: 1, rawFileRows: 1 });
    expect((await listObjects(s3, config.S3_BUCKET, prefix)).map((o) => o.key)).toEqual([keptKey]);
  }, 120_000);
});

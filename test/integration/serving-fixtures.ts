// Shared setup of the serving-layer integration tests: the API process's own app (apps/api.ts, with
// its real defaults: body limit, middleware order, error handling) on an ephemeral port, against the
// real PostgreSQL, and a
// fresh catalogue (two advertisers, three ads) on a random day of the past so re-runs and parallel
// helpers never share an ad, an advertiser or a finalized hour.
import { randomInt, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { createApiApp, listen, type ApiDeps } from '../../apps/api.js';
import { generateApiKey, hashApiKey } from '../../common/auth.js';
import { config } from '../../common/config.js';
import { createPool } from '../../common/db.js';
import { DAY_MS, HOUR_MS, MINUTE_MS } from '../../common/time.js';
import {
  configuredBatchPinot,
  ensureBatchPinotTable,
  publishRows,
  type MinuteCountRow,
} from '../../batch-layer/pinot-offline.js';
import type { SpeedStore } from '../../common/speed-store.js';
import { PostgresSpeedStore } from '../../speed-layer/postgres-speed-store.js';

export interface TestApp {
  url: string;
  close(): Promise<void>;
}

export async function startApp(deps: ApiDeps): Promise<TestApp> {
  const { server, url } = await listen(createApiApp(deps), 0, '127.0.0.1');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export async function createAdvertiser(
  pool: pg.Pool,
  name: string,
): Promise<{ advertiserId: string; key: string }> {
  const key = generateApiKey();
  const r = await pool.query<{ advertiser_id: string }>(
    'insert into advertisers (name, api_key_hash) values ($1, $2) returning advertiser_id',
    [name, hashApiKey(key)],
  );
  return { advertiserId: r.rows[0]!.advertiser_id, key };
}

export async function createAd(pool: pg.Pool, advertiserId: string, name: string): Promise<string> {
  const r = await pool.query<{ ad_id: string }>(
    `insert into ads (advertiser_id, redirect_url, name) values ($1, 'https://example.com/landing', $2)
     returning ad_id`,
    [advertiserId, name],
  );
  return r.rows[0]!.ad_id;
}

/**
 * A random UTC day between 1981 and 1989, where no other test finalizes hours: the batch tests take
 * hours in 1990–2020 (batch-helpers.ts), finals-durable 1995–2000, completeness 2002–2007, retention
 * 1940–1980, bench:batch 1980. The range was 2001–2010 until 6 December, and a CI run failed once with
 * 13 final hours where the dashboard test had finalized 12 (most likely another test's hour on that day).
 */
export function randomPastDay(): number {
  return Date.UTC(1981, 0, 1) + randomInt(3250) * DAY_MS;
}

export const at = (day: number, hour: number, minute = 0): number =>
  day + hour * HOUR_MS + minute * MINUTE_MS;

/** Marks hours finalized as hourly compaction would (the run ids say who wrote them). */
export async function finalizeHours(pool: pg.Pool, hours: number[], validClicks = 0): Promise<void> {
  for (const h of hours)
    await pool.query(
      `insert into finalized_hours (hour, run_id, workflow_id, valid_clicks, events)
       values ($1, 'serving-test', $2, $3, $3) on conflict (hour) do nothing`,
      [new Date(h), `serving-test-${h}`, validClicks],
    );
}

export interface BatchRows {
  adMinutes?: Array<[adId: string, minute: number, clicks: number]>;
  adHours?: Array<[adId: string, hour: number, clicks: number]>;
  advertiserMinutes?: Array<[advertiserId: string, minute: number, clicks: number]>;
  advertiserHours?: Array<[advertiserId: string, hour: number, clicks: number]>;
}

/** What insertBatchRows wrote: with BATCH_STORE=pinot, the segment (recompactHour replaces it). */
export interface InsertedBatch {
  segment?: string;
  rows: BatchRows;
}

/**
 * Final counts as compaction leaves them, in the store the app reads (BATCH_STORE). PostgreSQL: the
 * rows of each count table as given, day rollups recomputed. Pinot: one segment of minute rows, as
 * the OFFLINE table holds them (advertiser sums are read from them, so the advertiser rows given must
 * agree with the ad rows); an ad-hour count beyond its ad-minute rows becomes a row at the hour's first minute.
 */
export async function insertBatchRows(pool: pg.Pool, rows: BatchRows): Promise<InsertedBatch> {
  if (config.BATCH_STORE === 'pinot') {
    const segment = `${config.BATCH_PINOT_TABLE}_fixture_${randomUUID().slice(0, 8)}`;
    await publishPinotRows(pool, segment, rows);
    return { segment, rows };
  }
  await insertPostgresRows(pool, rows);
  return { rows };
}

/**
 * A backfill re-compacting `hour` with new ad and advertiser hour counts (every other row as
 * inserted): the new counts and a new run id, as one re-finalization does.
 */
export async function recompactHour(
  pool: pg.Pool,
  inserted: InsertedBatch,
  hour: number,
  counts: { adHours: BatchRows['adHours']; advertiserHours: BatchRows['advertiserHours'] },
  runId: string,
): Promise<void> {
  const at = new Date(hour);
  if (inserted.segment) {
    const keep = <T extends [string, number, number]>(list: T[] | undefined): T[] =>
      (list ?? []).filter(([, t]) => t - (t % HOUR_MS) !== hour);
    await publishPinotRows(pool, inserted.segment, {
      adMinutes: keep(inserted.rows.adMinutes),
      adHours: [...keep(inserted.rows.adHours), ...(counts.adHours ?? [])],
    });
  } else {
    for (const [adId, , clicks] of counts.adHours ?? [])
      await pool.query('update click_counts_hour set clicks = $3 where ad_id = $1 and hour = $2', [
        adId,
        at,
        clicks,
      ]);
    for (const [advertiserId, , clicks] of counts.advertiserHours ?? [])
      await pool.query(
        'update advertiser_counts_hour set clicks = $3 where advertiser_id = $1 and hour = $2',
        [advertiserId, at, clicks],
      );
  }
  await pool.query('update finalized_hours set run_id = $2 where hour = $1', [at, runId]);
}

/** The minute rows of `rows` (see insertBatchRows) published as `segment` of BATCH_PINOT_TABLE. */
async function publishPinotRows(pool: pg.Pool, segment: string, rows: BatchRows): Promise<void> {
  const deps = configuredBatchPinot(join(tmpdir(), `adclick-serving-${randomUUID()}`))!;
  await ensureBatchPinotTable(deps);
  const ads = [...new Set([...(rows.adMinutes ?? []), ...(rows.adHours ?? [])].map(([id]) => id))];
  const owner = new Map(
    (
      await pool.query<{ ad_id: string; advertiser_id: string }>(
        'select ad_id, advertiser_id from ads where ad_id = any($1::bigint[])',
        [ads],
      )
    ).rows.map((r) => [r.ad_id, r.advertiser_id]),
  );
  const out: MinuteCountRow[] = (rows.adMinutes ?? []).map(([adId, minute, clicks]) => ({
    adId,
    advertiserId: owner.get(adId)!,
    minute,
    clicks,
  }));
  for (const [adId, hour, clicks] of rows.adHours ?? []) {
    const inMinutes = out
      .filter((r) => r.adId === adId && r.minute >= hour && r.minute < hour + HOUR_MS)
      .reduce((n, r) => n + r.clicks, 0);
    if (clicks > inMinutes)
      out.push({ adId, advertiserId: owner.get(adId)!, minute: hour, clicks: clicks - inMinutes });
  }
  await publishRows(deps, segment, out);
}

async function insertPostgresRows(pool: pg.Pool, rows: BatchRows): Promise<void> {
  const tables: Array<[string, string, Array<[string, number, number]>]> = [
    ['click_counts_minute', 'ad_id, minute', rows.adMinutes ?? []],
    ['click_counts_hour', 'ad_id, hour', rows.adHours ?? []],
    ['advertiser_counts_minute', 'advertiser_id, minute', rows.advertiserMinutes ?? []],
    ['advertiser_counts_hour', 'advertiser_id, hour', rows.advertiserHours ?? []],
  ];
  for (const [table, cols, list] of tables)
    for (const [id, t, clicks] of list)
      await pool.query(`insert into ${table} (${cols}, clicks) values ($1, $2, $3)`, [
        id,
        new Date(t),
        clicks,
      ]);
  // The day rollups of the touched days, recomputed from the hour rows as compaction does.
  const days: Array<[string, string, string, Array<[string, number, number]>]> = [
    ['click_counts_day', 'click_counts_hour', 'ad_id', rows.adHours ?? []],
    ['advertiser_counts_day', 'advertiser_counts_hour', 'advertiser_id', rows.advertiserHours ?? []],
  ];
  for (const [dayTable, hourTable, key, list] of days)
    for (const [id, t] of list) {
      const d = new Date(t - (t % DAY_MS));
      await pool.query(`delete from ${dayTable} where ${key} = $1 and day = $2`, [id, d]);
      await pool.query(
        `insert into ${dayTable} (${key}, day, clicks)
         select ${key}, $2, sum(clicks) from ${hourTable}
          where ${key} = $1 and hour >= $2 and hour < $2::timestamptz + interval '1 day' group by ${key}`,
        [id, d],
      );
    }
}

/** Provisional counts as the speed layer's PostgreSQL sink stores them: one row per (ad, minute, salt), with the ad's advertiser. */
export async function insertSpeedRows(
  pool: pg.Pool,
  rows: Array<[adId: string, minute: number, salt: number, clicks: number]>,
): Promise<void> {
  for (const [adId, minute, salt, clicks] of rows)
    await pool.query(
      `insert into speed_counts_minute (ad_id, minute, salt, clicks, advertiser_id)
       values ($1, $2, $3, $4, (select advertiser_id from ads where ad_id = $1))`,
      [adId, new Date(minute), salt, clicks],
    );
}

export async function getJson(
  url: string,
  key?: string,
): Promise<{
  status: number;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}> {
  const res = await fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The real PostgreSQL speed store (SPEED_STORE=postgres) over the test's pool. */
export function openSpeedStore(pool: pg.Pool): SpeedStore {
  return new PostgresSpeedStore(pool);
}

/** A PostgreSQL speed store whose pool has been shut: every read fails, as when the store is down. */
export async function deadSpeedStore(): Promise<SpeedStore> {
  const pool = createPool(1);
  await pool.end();
  return new PostgresSpeedStore(pool);
}

// Shared setup of the serving-layer integration tests: the API process's own app (apps/api.ts, with
// its real defaults: body limit, middleware order, error handling) on an ephemeral port, against the
// real PostgreSQL, and a
// fresh catalogue (two advertisers, three ads) on a random day of the past so re-runs and parallel
// helpers never share an ad, an advertiser or a finalized hour.
import { randomInt } from 'node:crypto';
import type pg from 'pg';
import { createApiApp, listen, type ApiDeps } from '../../apps/api.js';
import { generateApiKey, hashApiKey } from '../../common/auth.js';
import { createPool } from '../../common/db.js';
import { DAY_MS, HOUR_MS, MINUTE_MS } from '../../common/time.js';
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

/** A random UTC day between 2001 and 2010: no other test finalizes hours there. */
export function randomPastDay(): number {
  return Date.UTC(2001, 0, 1) + randomInt(3600) * DAY_MS;
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

export async function insertBatchRows(pool: pg.Pool, rows: BatchRows): Promise<void> {
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

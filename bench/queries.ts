// `npm run bench:queries` (and the `queries` section of `npm run bench`): query latency of the merged
// metrics API at a realistic volume. One advertiser with 1,000 ads and 7 days of minute data (10M
// minute rows, COPY-loaded once and reused by later runs) in a fixed week of 2019: the first 166 hours
// finalized by "the batch layer", the last 2 still provisional in the speed layer's PostgreSQL table,
// so every query merges both layers. Measured through HTTP (the API process's app, apps/api.ts) against the same store calls made directly, without HTTP or merge.
//
// Then an advertiser with 100,000 ads (Zipf-like activity: ~17k of them clicked in a given hour, about
// 2.9M hour rows over the same week, plus 2 provisional hours), queried the same way: its figure is
// printed beside the 1,000-ad advertiser's of the same run, since advertiser-wide reads are keyed by
// the advertiser and should not grow with the number of its ads.
//
// The API's rate limits are raised for the bench (it sends thousands of requests with one key).
import type { Server } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { createApiApp, listen } from '../apps/api.js';
import { generateApiKey, hashApiKey } from '../common/auth.js';
import { createPool, migrate } from '../common/db.js';
import { DAY_MS, HOUR_MS, MINUTE_MS, isoSeconds } from '../common/time.js';
import { BatchStore } from '../serving-layer/batch-store.js';
import type { SpeedStore } from '../common/speed-store.js';
import { PostgresSpeedStore } from '../speed-layer/postgres-speed-store.js';
import { percentile, reportFigure } from './report.js';

const ADVERTISER_NAME = 'bench-queries-v1';
const ADS = 1000;
const WEEK_START = Date.UTC(2019, 2, 4);
const WEEK_END = WEEK_START + 7 * DAY_MS;
const OPEN_HOURS = 2; // the week's last hours, not finalized: served by the speed layer
const FINAL_END = WEEK_END - OPEN_HOURS * HOUR_MS;
const SEED_RUN_ID = 'bench-queries-seed';
const ONE_AD_RUNS = 500;
const ADVERTISER_RUNS = 200;
const BIG_ADVERTISER_NAME = 'bench-queries-100k-v1';
const BIG_ADS = 100_000;
const BIG_RUNS = 100;
/** Clicks of the big advertiser per hour, spread over its ads Zipf-like (ad rank i gets ~1/(i+1)). */
const BIG_CLICKS_PER_HOUR = 50_000;
const RAISED_LIMITS = { advertiser: 1e9, admin: 1e9, authFailures: 1e9 };

const log = (msg: string): void => console.log(`[bench:queries] ${msg}`);

/** Clicks of ad number `i` in minute number `m`: always ≥ 1, uneven across ads and over the day. */
const clicksOf = (i: number, m: number): number => 1 + ((i * 7919 + m * 31 + (m >> 6) * 17) % (3 + (i % 11)));

async function copyRows(pool: pg.Pool, sql: string, lines: () => Generator<string>): Promise<void> {
  const client = await pool.connect();
  try {
    await pipeline(Readable.from(lines()), client.query(copyFrom(sql)));
  } finally {
    client.release();
  }
}

/** The bench advertiser and its ads, seeding them when missing or incomplete. */
async function seed(pool: pg.Pool): Promise<{ advertiserId: string; adIds: string[] }> {
  const existing = await pool.query<{ advertiser_id: string }>(
    'select advertiser_id from advertisers where name = $1 order by advertiser_id limit 1',
    [ADVERTISER_NAME],
  );
  const done = await pool.query<{ n: string }>(
    'select count(*) as n from finalized_hours where hour >= $1 and hour < $2 and run_id = $3',
    [new Date(WEEK_START), new Date(FINAL_END), SEED_RUN_ID],
  );
  const expectedHours = (FINAL_END - WEEK_START) / HOUR_MS;
  if (existing.rows[0] && Number(done.rows[0]!.n) === expectedHours) {
    const advertiserId = existing.rows[0].advertiser_id;
    const adIds = (await new BatchStore(pool).advertiserAdIds(advertiserId)).slice(0, ADS);
    if (adIds.length === ADS) {
      log(`reusing the seed of advertiser ${advertiserId} (${ADS} ads, 7 days of minutes)`);
      return { advertiserId, adIds };
    }
  }
  if (existing.rows[0]) await unseed(pool, existing.rows[0].advertiser_id);

  const t0 = performance.now();
  const adv = await pool.query<{ advertiser_id: string }>(
    'insert into advertisers (name, api_key_hash) values ($1, $2) returning advertiser_id',
    [ADVERTISER_NAME, hashApiKey(generateApiKey())],
  );
  const advertiserId = adv.rows[0]!.advertiser_id;
  const ads = await pool.query<{ ad_id: string }>(
    `insert into ads (advertiser_id, redirect_url, name)
     select $1, 'https://example.com/bench/' || n, 'bench ad ' || n from generate_series(1, $2::int) n
     returning ad_id`,
    [advertiserId, ADS],
  );
  const adIds = ads.rows.map((r) => r.ad_id).sort((a, b) => Number(a) - Number(b));
  const finalMinutes = (FINAL_END - WEEK_START) / MINUTE_MS;
  const allMinutes = (WEEK_END - WEEK_START) / MINUTE_MS;
  const minuteText = Array.from({ length: allMinutes }, (_, m) => isoSeconds(WEEK_START + m * MINUTE_MS));

  log(`seeding ${(ADS * finalMinutes).toLocaleString('en-US')} batch minute rows with COPY ...`);
  await copyRows(pool, 'copy click_counts_minute (ad_id, minute, clicks) from stdin', function* () {
    for (const [i, adId] of adIds.entries()) {
      let chunk = '';
      for (let m = 0; m < finalMinutes; m++) chunk += `${adId}\t${minuteText[m]}\t${clicksOf(i, m)}\n`;
      yield chunk;
    }
  });
  log(`  ${((performance.now() - t0) / 1000).toFixed(1)} s; speed minutes of the open hours ...`);
  await copyRows(
    pool,
    'copy speed_counts_minute (ad_id, minute, salt, clicks, advertiser_id) from stdin',
    function* () {
      for (const [i, adId] of adIds.entries()) {
        let chunk = '';
        for (let m = finalMinutes; m < allMinutes; m++)
          chunk += `${adId}\t${minuteText[m]}\t0\t${clicksOf(i, m)}\t${advertiserId}\n`;
        yield chunk;
      }
    },
  );
  // The rollups the batch layer writes beside the minutes (same transaction there; here, once).
  log('  rollups ...');
  const range = [adIds, new Date(WEEK_START), new Date(FINAL_END)];
  const hourOfMinute = "date_bin('1 hour', minute, timestamptz '1970-01-01')";
  await pool.query(
    `insert into click_counts_hour (ad_id, hour, clicks)
     select ad_id, ${hourOfMinute}, sum(clicks) from click_counts_minute
      where ad_id = any($1::bigint[]) and minute >= $2 and minute < $3 group by 1, 2`,
    range,
  );
  await pool.query(
    `insert into advertiser_counts_minute (advertiser_id, minute, clicks)
     select $4, minute, sum(clicks) from click_counts_minute
      where ad_id = any($1::bigint[]) and minute >= $2 and minute < $3 group by 2`,
    [...range, advertiserId],
  );
  await pool.query(
    `insert into advertiser_counts_hour (advertiser_id, hour, clicks)
     select $1, ${hourOfMinute}, sum(clicks) from advertiser_counts_minute
      where advertiser_id = $1 and minute >= $2 and minute < $3 group by 2`,
    [advertiserId, new Date(WEEK_START), new Date(FINAL_END)],
  );
  // Finalized last: it is the marker of a complete seed.
  await pool.query(
    `insert into finalized_hours (hour, run_id, workflow_id, valid_clicks, events)
     select h.hour, $3, 'bench-queries', coalesce(sum(c.clicks), 0), coalesce(sum(c.clicks), 0)
       from generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') h(hour)
       left join advertiser_counts_hour c on c.hour = h.hour and c.advertiser_id = $4
      group by h.hour
     on conflict (hour) do update set run_id = excluded.run_id, valid_clicks = excluded.valid_clicks`,
    [new Date(WEEK_START), new Date(FINAL_END), SEED_RUN_ID, advertiserId],
  );
  await pool.query(
    'analyze click_counts_minute, click_counts_hour, advertiser_counts_minute, advertiser_counts_hour, finalized_hours, speed_counts_minute, ads',
  );
  log(`seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { advertiserId, adIds };
}

async function unseed(pool: pg.Pool, advertiserId: string): Promise<void> {
  log(`removing an incomplete seed of advertiser ${advertiserId} ...`);
  const ids = await new BatchStore(pool).advertiserAdIds(advertiserId);
  for (const table of ['click_counts_minute', 'click_counts_hour', 'speed_counts_minute'])
    await pool.query(`delete from ${table} where ad_id = any($1::bigint[])`, [ids]);
  for (const table of ['advertiser_counts_minute', 'advertiser_counts_hour'])
    await pool.query(`delete from ${table} where advertiser_id = $1`, [advertiserId]);
  await pool.query('delete from finalized_hours where run_id = $1', [SEED_RUN_ID]);
  await pool.query('delete from ads where advertiser_id = $1', [advertiserId]);
  await pool.query('delete from advertisers where advertiser_id = $1', [advertiserId]);
}

async function serve(pool: pg.Pool, speedStore: SpeedStore): Promise<{ base: string; server: Server }> {
  // No degraded answers measured: on a loaded machine the 2 s speed-layer deadline could cut the work short.
  const { server, url } = await listen(
    createApiApp({ pool, speedStore, speedTimeoutMs: 60_000, rateLimits: RAISED_LIMITS }),
    0,
    '127.0.0.1',
  );
  return { base: url, server };
}

/** Runs `fn` `warmup` times unmeasured, then `runs` times; latencies in ms, sorted. */
async function measure(runs: number, warmup: number, fn: (i: number) => Promise<void>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn(i);
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const pool = createPool(10);
  await migrate(pool);
  const { advertiserId, adIds } = await seed(pool);
  // A fresh key for this run; only its hash is stored, as for any advertiser.
  const key = generateApiKey();
  await pool.query('update advertisers set api_key_hash = $1 where advertiser_id = $2', [
    hashApiKey(key),
    advertiserId,
  ]);

  const speedStore = new PostgresSpeedStore(pool);
  const { base, server } = await serve(pool, speedStore);
  const headers = { authorization: `Bearer ${key}` };
  const adAt = (i: number): string => adIds[(i * 7919) % adIds.length]!;

  const dayFrom = WEEK_END - DAY_MS;
  const oneAdUrl = (adId: string) =>
    `${base}/v1/ads/${adId}/clicks?granularity=minute&from=${isoSeconds(dayFrom)}&to=${isoSeconds(WEEK_END)}`;
  const advertiserUrl = `${base}/v1/advertisers/me/clicks?granularity=hour&from=${isoSeconds(WEEK_START)}&to=${isoSeconds(WEEK_END)}&top=10`;

  // Sanity: the API answers the shape the figures are about.
  const check = (await (await fetch(oneAdUrl(adAt(0)), { headers })).json()) as {
    points: Array<{ final: boolean }>;
  };
  const checkAdv = (await (await fetch(advertiserUrl, { headers })).json()) as {
    points: Array<{ final: boolean }>;
    ads: unknown[];
    total: number;
  };
  if (check.points?.length !== 1440 || checkAdv.points?.length !== 168 || checkAdv.ads?.length !== 10)
    throw new Error(`unexpected API answer: ${JSON.stringify(check).slice(0, 300)}`);
  log(
    `one ad: 1440 points, ${check.points.filter((p) => !p.final).length} provisional; advertiser: 168 points, ` +
      `${checkAdv.points.filter((p) => !p.final).length} provisional, total ${checkAdv.total.toLocaleString('en-US')}`,
  );

  const get = async (url: string): Promise<void> => {
    const res = await fetch(url, { headers });
    if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
    await res.arrayBuffer();
  };
  const oneAdApi = await measure(ONE_AD_RUNS, 30, (i) => get(oneAdUrl(adAt(i))));
  const advertiserApi = await measure(ADVERTISER_RUNS, 10, () => get(advertiserUrl));

  // Baseline: the same store calls the router makes, straight on the pool (no HTTP, merge or JSON).
  const batch = new BatchStore(pool);
  const oneAdSql = await measure(ONE_AD_RUNS, 30, async (i) => {
    const finalized = await batch.finalizedHourSet(dayFrom, WEEK_END);
    await Promise.all([
      batch.adMinutes(adAt(i), dayFrom, WEEK_END),
      speedStore.minuteCounts([adAt(i)], FINAL_END, WEEK_END),
    ]);
    void finalized;
  });
  const advertiserSql = await measure(ADVERTISER_RUNS, 10, async () => {
    const finalized = await batch.finalizedHourSet(WEEK_START, WEEK_END);
    await Promise.all([
      batch.advertiserHours(advertiserId, WEEK_START, WEEK_END),
      batch.adTotalsOverFinalized({ advertiserId }, WEEK_START, WEEK_END, finalized),
      speedStore.advertiserClickSums(advertiserId, FINAL_END, WEEK_END, HOUR_MS),
    ]);
  });

  for (const [figure, api, sql, target] of [
    ['one ad, 24 h by minute', oneAdApi, oneAdSql, 50],
    [`advertiser with ${ADS} ads, 7 days by hour`, advertiserApi, advertiserSql, 200],
  ] as const) {
    for (const p of [50, 99] as const)
      reportFigure({
        section: 'queries',
        figure: `${figure}, p${p}`,
        value: percentile(api, p),
        unit: 'ms',
        target: p === 99 ? `≤ ${target}` : undefined,
        baseline: percentile(sql, p),
        baselineName: 'same store queries, no HTTP',
      });
    log(
      `${figure}: API p50 ${percentile(api, 50).toFixed(1)} ms, p99 ${percentile(api, 99).toFixed(1)} ms; ` +
        `SQL p50 ${percentile(sql, 50).toFixed(1)} ms, p99 ${percentile(sql, 99).toFixed(1)} ms (${api.length} runs)`,
    );
  }

  // An advertiser with 100,000 ads, beside the 1,000-ad one of this run.
  const big = await seedBigAdvertiser(pool);
  const bigKey = generateApiKey();
  await pool.query('update advertisers set api_key_hash = $1 where advertiser_id = $2', [
    hashApiKey(bigKey),
    big,
  ]);
  const bigGet = async (): Promise<void> => {
    const res = await fetch(advertiserUrl, { headers: { authorization: `Bearer ${bigKey}` } });
    if (res.status !== 200) throw new Error(`${advertiserUrl}: HTTP ${res.status}`);
    await res.arrayBuffer();
  };
  const t0 = performance.now();
  const first = (await (
    await fetch(advertiserUrl, { headers: { authorization: `Bearer ${bigKey}` } })
  ).json()) as { points: unknown[]; ads: unknown[]; total: number };
  const coldMs = performance.now() - t0;
  if (first.points?.length !== 168 || first.ads?.length !== 10)
    throw new Error(`unexpected API answer for the big advertiser: ${JSON.stringify(first).slice(0, 300)}`);
  log(
    `advertiser with ${BIG_ADS.toLocaleString('en-US')} ads: total ${first.total.toLocaleString('en-US')}, first (cold) query ${coldMs.toFixed(0)} ms`,
  );
  const bigApi = await measure(BIG_RUNS, 5, bigGet);
  for (const p of [50, 99] as const)
    reportFigure({
      section: 'queries',
      figure: `advertiser with ${BIG_ADS.toLocaleString('en-US')} ads, 7 days by hour, p${p}`,
      value: percentile(bigApi, p),
      unit: 'ms',
      target: p === 99 ? '≤ 200' : undefined,
      baseline: percentile(advertiserApi, p),
      baselineName: `advertiser with ${ADS} ads, same run`,
    });
  log(
    `advertiser with ${BIG_ADS} ads: API p50 ${percentile(bigApi, 50).toFixed(1)} ms, p99 ${percentile(bigApi, 99).toFixed(1)} ms ` +
      `(${ADS} ads: p50 ${percentile(advertiserApi, 50).toFixed(1)} ms, p99 ${percentile(advertiserApi, 99).toFixed(1)} ms)`,
  );
  server.close();
  await pool.end();
}

/** Deterministic uniform in [0, 1) of (i, h). */
const unit = (i: number, h: number): number => {
  let x = (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(h + 7, 0x85ebca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  return ((x ^ (x >>> 16)) >>> 0) / 2 ** 32;
};

/**
 * The 100,000-ad advertiser, seeded once (reused by later runs): hour rows of its ads over the week's
 * finalized hours (an ad of rank i is clicked in an hour with probability 1 - e^-λ, λ its Zipf share
 * of BIG_CLICKS_PER_HOUR), its hour rollups, and provisional minute rows in the 2 open hours.
 */
async function seedBigAdvertiser(pool: pg.Pool): Promise<string> {
  const existing = await pool.query<{ advertiser_id: string; n: string }>(
    `select a.advertiser_id, (select count(*) from advertiser_counts_hour c where c.advertiser_id = a.advertiser_id) as n
       from advertisers a where a.name = $1 order by a.advertiser_id limit 1`,
    [BIG_ADVERTISER_NAME],
  );
  const finalHours = (FINAL_END - WEEK_START) / HOUR_MS;
  const row = existing.rows[0];
  if (row && Number(row.n) === finalHours) {
    log(`reusing the seed of advertiser ${row.advertiser_id} (${BIG_ADS.toLocaleString('en-US')} ads)`);
    return row.advertiser_id;
  }
  if (row) await unseed(pool, row.advertiser_id);
  const t0 = performance.now();
  const adv = await pool.query<{ advertiser_id: string }>(
    'insert into advertisers (name, api_key_hash) values ($1, $2) returning advertiser_id',
    [BIG_ADVERTISER_NAME, hashApiKey(generateApiKey())],
  );
  const advertiserId = adv.rows[0]!.advertiser_id;
  const ads = await pool.query<{ ad_id: string }>(
    `insert into ads (advertiser_id, redirect_url, name)
     select $1, 'https://example.com/big/' || n, 'big ad ' || n from generate_series(1, $2::int) n
     returning ad_id`,
    [advertiserId, BIG_ADS],
  );
  const adIds = ads.rows.map((r) => r.ad_id).sort((a, b) => Number(a) - Number(b));
  let harmonic = 0;
  for (let i = 1; i <= BIG_ADS; i++) harmonic += 1 / i;
  const lambda = (i: number, per: number): number => per / ((i + 1) * harmonic);
  /** Clicks of ad rank i in slot h (0 = not clicked), `per` clicks of the advertiser per slot. */
  const clicks = (i: number, h: number, per: number): number => {
    const l = lambda(i, per);
    if (l > 20) return Math.round(l);
    return unit(i, h) < 1 - Math.exp(-l) ? Math.max(1, Math.round(l)) : 0;
  };
  let rows = 0;
  log(`seeding ${BIG_ADS.toLocaleString('en-US')} ads' hour rows with COPY ...`);
  await copyRows(pool, 'copy click_counts_hour (ad_id, hour, clicks) from stdin', function* () {
    for (let h = 0; h < finalHours; h++) {
      const hour = isoSeconds(WEEK_START + h * HOUR_MS);
      let chunk = '';
      for (let i = 0; i < BIG_ADS; i++) {
        const c = clicks(i, h, BIG_CLICKS_PER_HOUR);
        if (c > 0) {
          chunk += `${adIds[i]}\t${hour}\t${c}\n`;
          rows++;
        }
      }
      yield chunk;
    }
  });
  log(
    `  ${rows.toLocaleString('en-US')} hour rows in ${((performance.now() - t0) / 1000).toFixed(1)} s; provisional minutes ...`,
  );
  const openMinutes = (WEEK_END - FINAL_END) / MINUTE_MS;
  await copyRows(
    pool,
    'copy speed_counts_minute (ad_id, minute, salt, clicks, advertiser_id) from stdin',
    function* () {
      for (let m = 0; m < openMinutes; m++) {
        const minute = isoSeconds(FINAL_END + m * MINUTE_MS);
        let chunk = '';
        for (let i = 0; i < BIG_ADS; i++) {
          const c = clicks(i, 100_000 + m, BIG_CLICKS_PER_HOUR / 60);
          if (c > 0) chunk += `${adIds[i]}\t${minute}\t0\t${c}\t${advertiserId}\n`;
        }
        yield chunk;
      }
    },
  );
  // The rollup the batch layer writes beside the hour rows; written last, it marks a complete seed.
  await pool.query(
    `insert into advertiser_counts_hour (advertiser_id, hour, clicks)
     select $1, hour, sum(clicks) from click_counts_hour
      where ad_id in (select ad_id from ads where advertiser_id = $1) and hour >= $2 and hour < $3
      group by hour`,
    [advertiserId, new Date(WEEK_START), new Date(FINAL_END)],
  );
  await pool.query('analyze click_counts_hour, advertiser_counts_hour, speed_counts_minute, ads');
  log(`seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return advertiserId;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

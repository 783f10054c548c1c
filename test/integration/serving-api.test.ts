// Contract tests of the serving API (API.md: Metrics, Operations) against the real PostgreSQL (batch
// tables, catalogue, speed table) and the real Temporal: status codes, shapes, scoping, validation.
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createTemporalClient } from '../../common/temporal.js';
import { DAY_MS, HOUR_MS, isoSeconds } from '../../common/time.js';
import {
  at,
  createAd,
  createAdvertiser,
  deadSpeedStore,
  finalizeHours,
  getJson,
  insertBatchRows,
  recompactHour,
  insertSpeedRows,
  openSpeedStore,
  randomPastDay,
  startApp,
  type TestApp,
} from './serving-fixtures.js';
import type { ReconciliationReport } from '../../common/reconciliation.js';

// A final point says which finalization it comes from (the fixture's hours are each at revision 1).
const FINAL = { final: true, revision: 1, finalizedAt: expect.any(String) } as const;

const ADMIN = 'dev-admin-key';
const pool = createPool(4);
const speedStore = openSpeedStore(pool);
const day = randomPastDay();
const iso = isoSeconds;
let app: TestApp;
let temporal: Client;
let adv1: { advertiserId: string; key: string };
let adv2: { advertiserId: string; key: string };
let a1: string;
let a2: string;
let b1: string;

beforeAll(async () => {
  await migrate(pool);
  temporal = await createTemporalClient();
  app = await startApp({ pool, speedStore, temporalClient: temporal, now: () => at(day, 12, 30) });
  const tag = randomUUID().slice(0, 8);
  adv1 = await createAdvertiser(pool, `serving-test-1-${tag}`);
  adv2 = await createAdvertiser(pool, `serving-test-2-${tag}`);
  a1 = await createAd(pool, adv1.advertiserId, 'first');
  a2 = await createAd(pool, adv1.advertiserId, 'second');
  b1 = await createAd(pool, adv2.advertiserId, 'other');

  // Hours 0..11 of the day are finalized; 12..23 are open (the speed layer's).
  await finalizeHours(
    pool,
    Array.from({ length: 12 }, (_, h) => at(day, h)),
  );
  await insertBatchRows(pool, {
    adMinutes: [
      [a1, at(day, 11, 58), 3],
      [a2, at(day, 11, 58), 4],
      [a1, at(day, 10, 5), 7],
    ],
    adHours: [
      [a1, at(day, 10), 7],
      [a1, at(day, 11), 3],
      [a2, at(day, 11), 4],
    ],
    advertiserMinutes: [
      [adv1.advertiserId, at(day, 10, 5), 7],
      [adv1.advertiserId, at(day, 11, 58), 7],
    ],
    advertiserHours: [
      [adv1.advertiserId, at(day, 10), 7],
      [adv1.advertiserId, at(day, 11), 7],
    ],
  });
  await insertSpeedRows(pool, [
    [a1, at(day, 11, 59), 0, 9], // in a finalized hour: must be ignored
    [a1, at(day, 11, 58), 0, 100], // disagrees with the batch: batch wins
    [a1, at(day, 12, 0), 0, 2], // two salts of one minute add up
    [a1, at(day, 12, 0), 3, 3],
    [a1, at(day, 12, 2), 1, 1],
    [a2, at(day, 13, 15), 0, 6],
    [b1, at(day, 12, 0), 0, 50], // another advertiser's ad
  ]);
});

afterAll(async () => {
  await app?.close();
  await temporal?.connection.close();
  await pool.end();
});

describe('GET /v1/ads/:adId/clicks', () => {
  const path = (adId: string, q: Record<string, string>) =>
    `${app.url}/v1/ads/${adId}/clicks?${new URLSearchParams(q).toString()}`;

  it('by minute: batch for finalized hours (even against a different speed count), speed for open ones', async () => {
    const { status, body } = await getJson(
      path(a1, { granularity: 'minute', from: iso(at(day, 11, 58)), to: iso(at(day, 12, 3)) }),
      adv1.key,
    );
    expect(status).toBe(200);
    expect(body).toEqual({
      adId: a1,
      granularity: 'minute',
      from: iso(at(day, 11, 58)),
      to: iso(at(day, 12, 3)),
      total: 9,
      points: [
        { start: iso(at(day, 11, 58)), clicks: 3, ...FINAL },
        { start: iso(at(day, 11, 59)), clicks: 0, ...FINAL },
        { start: iso(at(day, 12, 0)), clicks: 5, final: false },
        { start: iso(at(day, 12, 1)), clicks: 0, final: false },
        { start: iso(at(day, 12, 2)), clicks: 1, final: false },
      ],
    });
  });

  it('by hour: rollups for finalized hours, speed minutes summed for open ones, zeros included', async () => {
    const { status, body } = await getJson(
      path(a1, { granularity: 'hour', from: iso(at(day, 9)), to: iso(at(day, 14)) }),
      adv1.key,
    );
    expect(status).toBe(200);
    expect(body.points).toEqual([
      { start: iso(at(day, 9)), clicks: 0, ...FINAL },
      { start: iso(at(day, 10)), clicks: 7, ...FINAL },
      { start: iso(at(day, 11)), clicks: 3, ...FINAL },
      { start: iso(at(day, 12)), clicks: 6, final: false },
      { start: iso(at(day, 13)), clicks: 0, final: false },
    ]);
    expect(body.total).toBe(16);
  });

  it('by day: a half-finalized day is one point with final: false', async () => {
    const { status, body } = await getJson(
      path(a1, { granularity: 'day', from: iso(day), to: iso(day + DAY_MS) }),
      ADMIN,
    );
    expect(status).toBe(200);
    expect(body.points).toEqual([{ start: iso(day), clicks: 16, final: false }]);
  });

  it('by day: a wholly finalized day is read from the day rollups', async () => {
    const earlier = day - 4 * DAY_MS;
    await finalizeHours(
      pool,
      Array.from({ length: 24 }, (_, h) => at(earlier, h)),
    );
    await insertBatchRows(pool, {
      adHours: [
        [a1, at(earlier, 3), 5],
        [a1, at(earlier, 20), 6],
      ],
    });
    const q = path(a1, { granularity: 'day', from: iso(earlier), to: iso(earlier + DAY_MS) });
    expect((await getJson(q, ADMIN)).body.points).toEqual([
      { start: iso(earlier), clicks: 11, ...FINAL, revision: 24 },
    ]);
    // PostgreSQL: the day rollup, not the hours, is what is read. (Pinot keeps minute rows only and
    // sums them for a day, which the answer above checked.)
    if (config.BATCH_STORE === 'postgres') {
      await pool.query('update click_counts_day set clicks = 12 where ad_id = $1 and day = $2', [
        a1,
        new Date(earlier),
      ]);
      expect((await getJson(q, ADMIN)).body.points).toEqual([
        { start: iso(earlier), clicks: 12, ...FINAL, revision: 24 },
      ]);
    }
  });

  it('a range reaching into a partition retention dropped is a 400 naming the tier', async () => {
    const gone = day - 3 * DAY_MS;
    await pool.query(
      `insert into expired_partitions (table_name, range_from, range_to) values ('click_counts_minute', $1, $2)`,
      [new Date(gone), new Date(gone + DAY_MS)],
    );
    try {
      const minutes = await getJson(
        path(a1, { granularity: 'minute', from: iso(at(gone, 23)), to: iso(at(gone + DAY_MS, 1)) }),
        ADMIN,
      );
      expect(minutes.status).toBe(400);
      expect(minutes.body.error?.code).toBe('outside_retention');
      expect(minutes.body.error?.message).toMatch(
        `the minute tier no longer holds counts before ${iso(gone + DAY_MS)}`,
      );
      // The hour tier still holds that range; a minute range after the dropped day is answered.
      const hours = path(a1, { granularity: 'hour', from: iso(gone), to: iso(gone + DAY_MS) });
      expect((await getJson(hours, ADMIN)).status).toBe(200);
      const later = path(a1, {
        granularity: 'minute',
        from: iso(gone + DAY_MS),
        to: iso(at(gone + DAY_MS, 1)),
      });
      expect((await getJson(later, ADMIN)).status).toBe(200);
    } finally {
      await pool.query(
        "delete from expired_partitions where table_name = 'click_counts_minute' and range_from = $1",
        [new Date(gone)],
      );
    }
  });

  it('defaults: to = end of the running bucket, from = to - 1 day at hour granularity', async () => {
    const { status, body } = await getJson(path(a1, { granularity: 'hour' }), adv1.key);
    expect(status).toBe(200);
    expect(body.to).toBe(iso(at(day, 13)));
    expect(body.from).toBe(iso(at(day, 13) - DAY_MS));
    expect(body.points).toHaveLength(24);
  });

  it('defaults: minute granularity when none is given, over the last hour', async () => {
    const { body } = await getJson(path(a1, {}), adv1.key);
    expect(body.granularity).toBe('minute');
    expect(body.points).toHaveLength(60);
    expect(body.to).toBe(iso(at(day, 12, 31)));
  });

  it('scoping: 401 without a key or with an unknown key; 404 for another advertiser or an unknown ad', async () => {
    const q = { granularity: 'hour' };
    const none = await getJson(path(a1, q));
    expect(none.status).toBe(401);
    expect(none.body.error?.code).toBe('unauthorized');
    expect((await getJson(path(a1, q), 'ak_not-a-key')).status).toBe(401);
    const other = await getJson(path(a1, q), adv2.key);
    expect(other.status).toBe(404);
    expect(other.body).toEqual({
      error: { code: 'not_found', message: expect.any(String), requestId: expect.any(String) },
    });
    const missing = await getJson(path('999999999999999999', q), adv1.key);
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ error: { ...other.body.error, requestId: expect.any(String) } }); // no hint whether the ad exists
    expect((await getJson(path(b1, q), adv2.key)).status).toBe(200);
  });

  it.each([
    ['a malformed ad id', 'x1', {}, 'invalid_ad_id'],
    ['an unknown granularity', 'A', { granularity: 'week' }, 'invalid_granularity'],
    [
      'an unaligned minute',
      'A',
      { granularity: 'minute', from: '2026-01-01T00:00:30Z', to: '2026-01-01T01:00:00Z' },
      'unaligned_time',
    ],
    [
      'an unaligned hour',
      'A',
      { granularity: 'hour', from: '2026-01-01T00:30:00Z', to: '2026-01-01T02:00:00Z' },
      'unaligned_time',
    ],
    [
      'an unaligned day',
      'A',
      { granularity: 'day', from: '2026-01-01T01:00:00Z', to: '2026-01-03T00:00:00Z' },
      'unaligned_time',
    ],
    [
      'minutes over more than 7 days',
      'A',
      { granularity: 'minute', from: '2026-01-01T00:00:00Z', to: '2026-01-08T00:01:00Z' },
      'range_too_long',
    ],
    [
      'hours over more than 92 days',
      'A',
      { granularity: 'hour', from: '2026-01-01T00:00:00Z', to: '2026-04-04T00:00:00Z' },
      'range_too_long',
    ],
    [
      'days over more than 3 years',
      'A',
      { granularity: 'day', from: '2020-01-01T00:00:00Z', to: '2023-01-03T00:00:00Z' },
      'range_too_long',
    ],
    [
      'from after to',
      'A',
      { granularity: 'hour', from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z' },
      'invalid_range',
    ],
    ['an unreadable time', 'A', { granularity: 'hour', from: 'yesterday' }, 'invalid_time'],
  ])('400 for %s', async (_what, ad, q, code) => {
    const { status, body } = await getJson(path(ad === 'A' ? a1 : ad, q as Record<string, string>), adv1.key);
    expect(status).toBe(400);
    expect(body).toEqual({ error: { code, message: expect.any(String), requestId: expect.any(String) } });
  });

  it('accepts epoch milliseconds and the longest allowed ranges', async () => {
    const ms = await getJson(
      path(a1, { granularity: 'minute', from: String(at(day, 11, 58)), to: String(at(day, 12)) }),
      adv1.key,
    );
    expect(ms.status).toBe(200);
    expect(ms.body.total).toBe(3);
    const week = await getJson(
      path(a1, { granularity: 'minute', from: iso(day - 6 * DAY_MS), to: iso(day + DAY_MS) }),
      adv1.key,
    );
    expect(week.status).toBe(200);
    expect(week.body.points).toHaveLength(7 * 1440);
  });
});

describe('GET /v1/advertisers/me/clicks', () => {
  const path = (q: Record<string, string>) =>
    `${app.url}/v1/advertisers/me/clicks?${new URLSearchParams(q).toString()}`;

  it('sums the advertiser’s ads and ranks them, batch for finalized hours, speed for the rest', async () => {
    const { status, body } = await getJson(
      path({ granularity: 'hour', from: iso(at(day, 10)), to: iso(at(day, 14)) }),
      adv1.key,
    );
    expect(status).toBe(200);
    expect(body).toEqual({
      advertiserId: adv1.advertiserId,
      granularity: 'hour',
      from: iso(at(day, 10)),
      to: iso(at(day, 14)),
      total: 26,
      points: [
        { start: iso(at(day, 10)), clicks: 7, ...FINAL },
        { start: iso(at(day, 11)), clicks: 7, ...FINAL },
        { start: iso(at(day, 12)), clicks: 6, final: false },
        { start: iso(at(day, 13)), clicks: 6, final: false },
      ],
      ads: [
        { adId: a1, clicks: 16, name: 'first' },
        { adId: a2, clicks: 10, name: 'second' },
      ],
    });
  });

  it('by minute across a finalized/open boundary, with top ads from partial hours', async () => {
    const { body } = await getJson(
      path({ granularity: 'minute', from: iso(at(day, 11, 58)), to: iso(at(day, 12, 1)), top: '1' }),
      adv1.key,
    );
    expect(body.points).toEqual([
      { start: iso(at(day, 11, 58)), clicks: 7, ...FINAL },
      { start: iso(at(day, 11, 59)), clicks: 0, ...FINAL },
      { start: iso(at(day, 12, 0)), clicks: 5, final: false },
    ]);
    expect(body.total).toBe(12);
    expect(body.ads).toEqual([{ adId: a1, clicks: 8, name: 'first' }]);
  });

  it('top ads of a whole finalized day follow a re-finalized hour (no stale cached day)', async () => {
    const prev = day - DAY_MS;
    await finalizeHours(
      pool,
      Array.from({ length: 24 }, (_, h) => at(prev, h)),
    );
    const inserted = await insertBatchRows(pool, {
      adHours: [[a2, at(prev, 5), 40]],
      advertiserHours: [[adv1.advertiserId, at(prev, 5), 40]],
    });
    const q = path({ granularity: 'hour', from: iso(prev), to: iso(prev + DAY_MS), top: '1' });
    const first = await getJson(q, adv1.key);
    expect(first.body.ads).toEqual([{ adId: a2, clicks: 40, name: 'second' }]);
    expect((first.body.points as unknown[]).every((p) => (p as { final: boolean }).final)).toBe(true);
    expect((await getJson(q, adv1.key)).body.ads).toEqual(first.body.ads); // served again (cached day)

    // A backfill re-compacts hour 5: new counts and a new run id in one transaction.
    await recompactHour(
      pool,
      inserted,
      at(prev, 5),
      { adHours: [[a2, at(prev, 5), 2]], advertiserHours: [[adv1.advertiserId, at(prev, 5), 2]] },
      'serving-test-rerun',
    );
    const second = await getJson(q, adv1.key);
    expect(second.body.ads).toEqual([{ adId: a2, clicks: 2, name: 'second' }]);
    expect(second.body.total).toBe(2);
  });

  it('the admin names the advertiser; without one it is a 400', async () => {
    const q = { granularity: 'hour', from: iso(at(day, 12)), to: iso(at(day, 13)) };
    const named = await getJson(path({ ...q, advertiserId: adv2.advertiserId }), ADMIN);
    expect(named.status).toBe(200);
    expect(named.body.total).toBe(50);
    expect((await getJson(path(q), ADMIN)).body.error?.code).toBe('missing_advertiser_id');
  });

  it.each([['0'], ['1001'], ['ten']])('400 for top=%s', async (top) => {
    const { status, body } = await getJson(path({ granularity: 'hour', top }), adv1.key);
    expect(status).toBe(400);
    expect(body.error?.code).toBe('invalid_top');
  });

  it('401 without a key', async () => {
    expect((await getJson(path({}))).status).toBe(401);
  });
});

describe('speed layer down', () => {
  it('answers from the batch layer for finalized hours and marks the rest unavailable', async () => {
    const broken = await deadSpeedStore();
    const down = await startApp({ pool, speedStore: broken, now: () => at(day, 12, 30) });
    try {
      const { status, body } = await getJson(
        `${down.url}/v1/ads/${a1}/clicks?granularity=hour&from=${iso(at(day, 10))}&to=${iso(at(day, 13))}`,
        adv1.key,
      );
      expect(status).toBe(200);
      expect(body.points).toEqual([
        { start: iso(at(day, 10)), clicks: 7, ...FINAL },
        { start: iso(at(day, 11)), clicks: 3, ...FINAL },
        { start: iso(at(day, 12)), clicks: 0, final: false, unavailable: true },
      ]);
      expect(body.unavailable).toEqual({
        layer: 'speed',
        reason: expect.stringContaining('speed layer did not answer'),
        requestId: expect.any(String),
      });
      // A fully finalized range never asks the speed layer, so it is complete.
      const final = await getJson(
        `${down.url}/v1/ads/${a1}/clicks?granularity=hour&from=${iso(at(day, 10))}&to=${iso(at(day, 12))}`,
        adv1.key,
      );
      expect(final.body.unavailable).toBeUndefined();
      expect(final.body.total).toBe(10);
    } finally {
      await down.close();
    }
  });
});

describe('GET /v1/admin/hours', () => {
  it('lists each hour as finalized (with its run) or open', async () => {
    const { status, body } = await getJson(
      `${app.url}/v1/admin/hours?from=${iso(at(day, 10))}&to=${iso(at(day, 13))}`,
      ADMIN,
    );
    expect(status).toBe(200);
    const hours = body.hours as Array<Record<string, unknown>>;
    expect(hours.map((h) => [h.hour, h.state])).toEqual([
      [iso(at(day, 10)), 'finalized'],
      [iso(at(day, 11)), 'finalized'],
      [iso(at(day, 12)), 'open'],
    ]);
    expect(hours[0]).toMatchObject({
      runId: 'serving-test',
      workflowId: `serving-test-${at(day, 10)}`,
      finalizedAt: expect.any(String),
      counts: { batch: 0 },
    });
    expect(hours[2]!.counts).toMatchObject({ batch: null });
  });

  it('defaults to the last 24 hours; 403 for an advertiser; 400 when unaligned', async () => {
    const d = await getJson(`${app.url}/v1/admin/hours`, ADMIN);
    expect(d.body.hours).toHaveLength(24);
    expect(d.body.to).toBe(iso(at(day, 13)));
    expect((await getJson(`${app.url}/v1/admin/hours`, adv1.key)).status).toBe(403);
    expect((await getJson(`${app.url}/v1/admin/hours`)).status).toBe(401);
    const bad = await getJson(`${app.url}/v1/admin/hours?from=${iso(at(day, 10, 5))}`, ADMIN);
    expect(bad.status).toBe(400);
    expect(bad.body.error?.code).toBe('unaligned_time');
  });
});

describe('GET /v1/admin/reconciliation', () => {
  it('returns the day’s report, 404 when there is none, 400 for a bad date, 403 for an advertiser', async () => {
    const date = new Date(day).toISOString().slice(0, 10);
    const report: ReconciliationReport = {
      date,
      adsCompared: 1,
      batchTotal: 16,
      speedTotal: 17,
      differingAds: 1,
      differences: [{ adId: a1, batch: 16, speed: 17, difference: 1 }],
      onlyInBatch: [],
      onlyInSpeed: [],
      hours: [],
      finalizedHours: 24,
    };
    await pool.query(
      `insert into reconciliation_reports (day, speed_total, batch_total, report) values ($1, 17, 16, $2)
       on conflict (day) do update set report = excluded.report`,
      [date, JSON.stringify(report)],
    );
    const ok = await getJson(`${app.url}/v1/admin/reconciliation?date=${date}`, ADMIN);
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ date, createdAt: expect.any(String), speedTotal: 17, batchTotal: 16, report });
    const next = new Date(day + DAY_MS).toISOString().slice(0, 10);
    await pool.query('delete from reconciliation_reports where day = $1', [next]);
    expect((await getJson(`${app.url}/v1/admin/reconciliation?date=${next}`, ADMIN)).status).toBe(404);
    for (const bad of ['', '?date=2026-02-30', '?date=yesterday']) {
      const r = await getJson(`${app.url}/v1/admin/reconciliation${bad}`, ADMIN);
      expect(r.status).toBe(400);
      expect(r.body.error?.code).toBe('invalid_date');
    }
    expect((await getJson(`${app.url}/v1/admin/reconciliation?date=${date}`, adv1.key)).status).toBe(403);
  });
});

describe('POST /v1/admin/backfills', () => {
  const post = (body: unknown, key?: string) =>
    fetch(`${app.url}/v1/admin/backfills`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key && { authorization: `Bearer ${key}` }) },
      body: JSON.stringify(body),
    });

  it('starts the Temporal backfill workflow for an hour-aligned window: 202 {workflowId}', async () => {
    // Hours of a random past day nobody else uses (before the app's clock): the workflow may run if
    // a batch worker is up, and only ever touches those hours.
    const from = day - 2 * DAY_MS + 3 * HOUR_MS;
    const to = from + 2 * HOUR_MS;
    const res = await post({ from: iso(from), to: iso(to) }, ADMIN);
    expect(res.status).toBe(202);
    const body = (await res.json()) as { workflowId: string };
    expect(body.workflowId).toBe(`backfill-${iso(from)}-${iso(to)}`); // derived from the window
    const handle = temporal.workflow.getHandle(body.workflowId);
    const description = await handle.describe();
    expect(description.type).toBe('backfill');
    // Asking again for the same window is not a second run: same id, still 202.
    const again = await post({ from: iso(from), to: iso(to) }, ADMIN);
    expect(again.status).toBe(202);
    expect(((await again.json()) as { workflowId: string }).workflowId).toBe(body.workflowId);
    await handle.terminate('serving-layer contract test').catch(() => undefined);
  });

  it('400 for unaligned, reversed or missing bounds; 403 for an advertiser; 401 without a key', async () => {
    for (const body of [
      { from: '2026-01-01T00:30:00Z', to: '2026-01-01T02:00:00Z' },
      { from: '2026-01-01T02:00:00Z', to: '2026-01-01T01:00:00Z' },
      { from: '2026-01-01T00:00:00Z' },
      {},
    ]) {
      const res = await post(body, ADMIN);
      expect(res.status).toBe(400);
      const err = (await res.json()) as { error: { code: string; message: string } };
      expect(err.error.code).toMatch(/^(unaligned_time|invalid_range)$/);
    }
    expect((await post({ from: '2026-01-01T00:00:00Z', to: '2026-01-01T01:00:00Z' }, adv1.key)).status).toBe(
      403,
    );
    expect((await post({ from: '2026-01-01T00:00:00Z', to: '2026-01-01T01:00:00Z' })).status).toBe(401);
  });
});

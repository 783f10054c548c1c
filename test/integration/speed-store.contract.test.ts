// The SpeedStore read contract (common/speed-store.ts), one suite for every implementation: counts
// are written through the real pipeline (clicks topic → speed-layer consumer → store) and read back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { HOUR_MS, MINUTE_MS, dayOf, floorTo, minuteOf } from '../../common/time.js';
import { buildReconciliation } from '../../batch-layer/reconciliation.js';
import { PinotSpeedStore } from '../../speed-layer/pinot-speed-store.js';
import { PostgresSpeedStore } from '../../speed-layer/postgres-speed-store.js';
import { createSpeedStore } from '../../apps/speed-store.js';
import { click, expectedCounts, SpeedRig, uniqueAdIds, type StoreKind } from './speed-fixture.js';

const pinotUp = await fetch(`${config.PINOT_CONTROLLER_URL}/health`, { signal: AbortSignal.timeout(2000) })
  .then((r) => r.ok)
  .catch(() => false);
const stores: StoreKind[] = pinotUp ? ['postgres', 'pinot'] : ['postgres'];

describe.each(stores)('SpeedStore contract: %s', (kind) => {
  const rig = new SpeedRig(kind);
  const T = minuteOf(Date.now()) - 30 * MINUTE_MS;
  const [adA, adB, adC, silent] = uniqueAdIds(4) as [string, string, string, string];
  // adA and adB belong to one advertiser, adC to another (advertiser-wide reads).
  const [advAB, advC, advNone] = uniqueAdIds(3) as [string, string, string];
  const events = [
    click(adA, T + 10, 0, 'valid', advAB),
    click(adA, T + 20, 5, 'valid', advAB),
    click(adA, T + 30, 7, 'valid', advAB),
    click(adA, T + 2 * MINUTE_MS + 1, 1, 'valid', advAB),
    click(adB, T + MINUTE_MS - 1, 3, 'valid', advAB),
    click(adC, T + 5 * MINUTE_MS, 0, 'valid', advC),
  ];

  beforeAll(async () => {
    await rig.setUp();
    await rig.produce(events);
    const consumer = await rig.startConsumer();
    const all = expectedCounts(events);
    const got = await rig.waitForCounts([adA, adB, adC], T, T + 10 * MINUTE_MS, all, 60_000, 0);
    expect(got).toEqual(all);
    await rig.stopConsumer(consumer);
  });
  afterAll(() => rig.tearDown());

  it('sums the salts of each (ad, minute) and orders rows by ad then minute', async () => {
    const rows = await rig.store.minuteCounts([adB, adA], T, T + 10 * MINUTE_MS);
    const ab = rows.filter((r) => r.adId === adA || r.adId === adB);
    expect(ab).toEqual(
      [
        { adId: adA, minute: T, clicks: 3 },
        { adId: adA, minute: T + 2 * MINUTE_MS, clicks: 1 },
        { adId: adB, minute: T, clicks: 1 },
      ].sort((x, y) => (x.adId === y.adId ? x.minute - y.minute : x.adId < y.adId ? -1 : 1)),
    );
  });

  it('returns only the asked ads, minutes in [from, to), and no rows for minutes without clicks', async () => {
    expect(await rig.store.minuteCounts([adA], T + MINUTE_MS, T + 2 * MINUTE_MS)).toEqual([]);
    expect(await rig.store.minuteCounts([adA], T + 2 * MINUTE_MS, T + 3 * MINUTE_MS)).toEqual([
      { adId: adA, minute: T + 2 * MINUTE_MS, clicks: 1 },
    ]);
    expect(await rig.store.minuteCounts([adC], T, T + 5 * MINUTE_MS)).toEqual([]);
    expect(await rig.store.minuteCounts([silent], T, T + 10 * MINUTE_MS)).toEqual([]);
    expect(await rig.store.minuteCounts([], T, T + 10 * MINUTE_MS)).toEqual([]);
  });

  it('clickSums totals per bucket and per ad, for many ads at once', async () => {
    const byStart = <T extends { start: number }>(xs: T[]) => [...xs].sort((a, b) => a.start - b.start);
    const byAd = <T extends { adId: string }>(xs: T[]) => [...xs].sort((a, b) => (a.adId < b.adId ? -1 : 1));
    const perMinute = await rig.store.clickSums([adA, adB, adC, silent], T, T + 10 * MINUTE_MS, MINUTE_MS);
    expect(byStart(perMinute.buckets)).toEqual([
      { start: T, clicks: 4 },
      { start: T + 2 * MINUTE_MS, clicks: 1 },
      { start: T + 5 * MINUTE_MS, clicks: 1 },
    ]);
    expect(byAd(perMinute.ads)).toEqual(
      byAd([
        { adId: adA, clicks: 4 },
        { adId: adB, clicks: 1 },
        { adId: adC, clicks: 1 },
      ]),
    );
    // Hour buckets: the six clicks fall in the hour(s) of their minutes.
    const hourly = await rig.store.clickSums([adA, adB, adC], T, T + 10 * MINUTE_MS, HOUR_MS);
    const expected = new Map<number, number>();
    for (const [minute, n] of [
      [T, 4],
      [T + 2 * MINUTE_MS, 1],
      [T + 5 * MINUTE_MS, 1],
    ] as const)
      expected.set(floorTo(minute, HOUR_MS), (expected.get(floorTo(minute, HOUR_MS)) ?? 0) + n);
    expect(byStart(hourly.buckets)).toEqual(
      byStart([...expected].map(([start, clicks]) => ({ start, clicks }))),
    );
    // One ad alone (the ad endpoint's call): the same buckets and total as in the many-ad answer, over
    // minutes of more than one bucket (Pinot then asks one query, not two).
    const onlyB = await rig.store.clickSums([adB], T, T + 10 * MINUTE_MS, HOUR_MS);
    expect(onlyB.ads).toEqual(perMinute.ads.filter((a) => a.adId === adB));
    const onlyA = await rig.store.clickSums([adA], T, T + 10 * MINUTE_MS, MINUTE_MS);
    expect(onlyA.ads).toEqual(perMinute.ads.filter((a) => a.adId === adA));
    expect(onlyA.buckets.reduce((n, b) => n + b.clicks, 0)).toBe(onlyA.ads[0]!.clicks);
    // [from, to) is respected and empty inputs give empty sums.
    expect((await rig.store.clickSums([adA], T + MINUTE_MS, T + 2 * MINUTE_MS, MINUTE_MS)).ads).toEqual([]);
    expect(await rig.store.clickSums([], T, T + 10 * MINUTE_MS, MINUTE_MS)).toEqual({ buckets: [], ads: [] });
  });

  it('advertiserClickSums: the same sums keyed by the advertiser, no list of its ads', async () => {
    const byAd = <T extends { adId: string }>(xs: T[]) => [...xs].sort((a, b) => (a.adId < b.adId ? -1 : 1));
    const ab = await rig.store.advertiserClickSums(advAB, T, T + 10 * MINUTE_MS, MINUTE_MS);
    expect([...ab.buckets].sort((a, b) => a.start - b.start)).toEqual([
      { start: T, clicks: 4 },
      { start: T + 2 * MINUTE_MS, clicks: 1 },
    ]);
    expect(byAd(ab.ads)).toEqual(
      byAd([
        { adId: adA, clicks: 4 },
        { adId: adB, clicks: 1 },
      ]),
    );
    expect(await rig.store.advertiserClickSums(advC, T, T + 10 * MINUTE_MS, HOUR_MS)).toEqual({
      buckets: [{ start: floorTo(T + 5 * MINUTE_MS, HOUR_MS), clicks: 1 }],
      ads: [{ adId: adC, clicks: 1 }],
    });
    expect(await rig.store.advertiserClickSums(advC, T, T + 5 * MINUTE_MS, MINUTE_MS)).toEqual({
      buckets: [],
      ads: [],
    });
    expect(await rig.store.advertiserClickSums(advNone, T, T + 10 * MINUTE_MS, MINUTE_MS)).toEqual({
      buckets: [],
      ads: [],
    });
  });

  // Pinot reads an advertiser with one group-by by (ad, minute) while its pairs fit one query, else
  // with one per minute and one per ad: both give the answer above (a store that takes 2 pairs at
  // most reads advAB's 3 the second way, and remembers to).
  if (kind === 'pinot')
    it('advertiserClickSums: an advertiser wider than one query gets the same sums', async () => {
      const narrow = await rig.store.advertiserClickSums(advAB, T, T + 10 * MINUTE_MS, MINUTE_MS);
      const wideStore = new PinotSpeedStore(undefined, rig.table, {}, 2);
      for (let i = 0; i < 2; i++) {
        const wide = await wideStore.advertiserClickSums(advAB, T, T + 10 * MINUTE_MS, MINUTE_MS);
        expect([...wide.buckets].sort((a, b) => a.start - b.start)).toEqual(
          [...narrow.buckets].sort((a, b) => a.start - b.start),
        );
        expect([...wide.ads].sort((a, b) => (a.adId < b.adId ? -1 : 1))).toEqual(
          [...narrow.ads].sort((a, b) => (a.adId < b.adId ? -1 : 1)),
        );
      }
      // advC's one pair fits: read with the one group-by.
      expect(await wideStore.advertiserClickSums(advC, T, T + 10 * MINUTE_MS, HOUR_MS)).toEqual({
        buckets: [{ start: floorTo(T + 5 * MINUTE_MS, HOUR_MS), clicks: 1 }],
        ads: [{ adId: adC, clicks: 1 }],
      });
    });

  it('hourTotals sums every ad per hour; adTotals lists every ad with clicks', async () => {
    const hours = await rig.store.hourTotals(floorTo(T, HOUR_MS), T + HOUR_MS * 2);
    const ours = new Map<number, number>();
    for (const e of events) ours.set(floorTo(e.ts, HOUR_MS), (ours.get(floorTo(e.ts, HOUR_MS)) ?? 0) + 1);
    for (const [start, n] of ours) {
      const got = hours.find((h) => h.start === start)?.clicks ?? 0;
      // Pinot's table is this rig's own; PostgreSQL's is shared with other tests' clicks.
      if (kind === 'pinot') expect(got).toBe(n);
      else expect(got).toBeGreaterThanOrEqual(n);
    }
    const ads = await rig.store.adTotals(T, T + 10 * MINUTE_MS);
    const mine = ads.filter((a) => [adA, adB, adC, silent].includes(a.adId));
    expect(new Map(mine.map((a) => [a.adId, a.clicks]))).toEqual(
      new Map([
        [adA, 4],
        [adB, 1],
        [adC, 1],
      ]),
    );
  });

  it('reconciliation compares both ways, complete even past the group limit of the store', async () => {
    const [onlyBatch] = uniqueAdIds(1) as [string];
    const hour = new Date(floorTo(T, HOUR_MS));
    const rows: Array<[string, number]> = [
      [adA, 4], // equal in both layers
      [adB, 2], // the speed layer has 1
      [onlyBatch, 3], // no speed clicks at all
    ];
    for (const [adId, clicks] of rows)
      await rig.pool.query('insert into click_counts_hour (ad_id, hour, clicks) values ($1, $2, $3)', [
        adId,
        hour,
        clicks,
      ]);
    try {
      // Three ads have speed clicks; with a group limit and a page of 2 one group-by cannot hold them:
      // the store narrows the ids until each part fits (Pinot 0.11 keeps the server's group limit,
      // so the page size is what forces it here).
      const store =
        kind === 'pinot'
          ? new PinotSpeedStore(undefined, rig.table, { numGroupsLimit: 2, pageSize: 2 })
          : rig.store;
      const report = await buildReconciliation(rig.pool, store, dayOf(T));
      const ours = (list: Array<{ adId: string }>) =>
        list.filter((d) => [adA, adB, adC, onlyBatch].includes(d.adId));
      expect(ours(report.differences)).toEqual([{ adId: adB, batch: 2, speed: 1, difference: -1 }]);
      expect(ours(report.onlyInBatch)).toEqual([{ adId: onlyBatch, batch: 3, speed: 0, difference: -3 }]);
      expect(ours(report.onlyInSpeed)).toEqual([{ adId: adC, batch: 0, speed: 1, difference: 1 }]);
    } finally {
      await rig.pool.query('delete from click_counts_hour where ad_id = any($1::bigint[]) and hour = $2', [
        rows.map(([id]) => id),
        hour,
      ]);
    }
  });

  it('answers ping', async () => {
    await expect(rig.store.ping()).resolves.toBeUndefined();
  });

  it('createSpeedStore picks the implementation by SPEED_STORE', async () => {
    const store = createSpeedStore(kind);
    expect(store).toBeInstanceOf(kind === 'postgres' ? PostgresSpeedStore : PinotSpeedStore);
    await store.close();
  });
});

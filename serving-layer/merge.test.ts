import { describe, expect, it } from 'vitest';
import { DAY_MS, HOUR_MS, MINUTE_MS } from '../common/time.js';
import { finalizationOf, mergeClicks, speedSpans, topAds } from './merge.js';

const T0 = Date.UTC(2026, 10, 27); // a day start
const h = (n: number): number => T0 + n * HOUR_MS;
const m = (n: number): number => T0 + n * MINUTE_MS;

describe('mergeClicks', () => {
  it('a finalized hour takes the batch count and ignores a different speed count', () => {
    const r = mergeClicks(
      { from: m(0), to: m(2), granularity: 'minute' },
      new Set([h(0)]),
      [{ start: m(0), clicks: 5 }],
      [
        { start: m(0), clicks: 7 },
        { start: m(1), clicks: 3 },
      ],
    );
    expect(r.points).toEqual([
      { start: m(0), clicks: 5, final: true },
      { start: m(1), clicks: 0, final: true },
    ]);
    expect(r.total).toBe(5);
  });

  it('an open hour takes the speed count and ignores stray batch rows', () => {
    const r = mergeClicks(
      { from: h(1), to: h(1) + 2 * MINUTE_MS, granularity: 'minute' },
      new Set([h(0)]),
      [{ start: h(1), clicks: 100 }],
      [{ start: h(1) + MINUTE_MS, clicks: 4 }],
    );
    expect(r.points).toEqual([
      { start: h(1), clicks: 0, final: false },
      { start: h(1) + MINUTE_MS, clicks: 4, final: false },
    ]);
    expect(r.total).toBe(4);
  });

  it('every bucket is present with zeros, in time order', () => {
    const r = mergeClicks({ from: h(0), to: h(3), granularity: 'hour' }, new Set(), [], []);
    expect(r.points.map((p) => p.start)).toEqual([h(0), h(1), h(2)]);
    expect(r.points.every((p) => p.clicks === 0 && !p.final)).toBe(true);
    expect(r.total).toBe(0);
  });

  it('an empty range has no points and total 0', () => {
    expect(mergeClicks({ from: h(2), to: h(2), granularity: 'hour' }, new Set(), [], [])).toEqual({
      total: 0,
      points: [],
    });
  });

  it('minutes roll up into their hour, mixing hour rollups and minute rows', () => {
    const r = mergeClicks(
      { from: h(0), to: h(2), granularity: 'hour' },
      new Set([h(0)]),
      [{ start: h(0), clicks: 60 }], // an hour rollup row
      [
        { start: h(1) + 5 * MINUTE_MS, clicks: 2 },
        { start: h(1) + 59 * MINUTE_MS, clicks: 3 },
      ],
    );
    expect(r.points).toEqual([
      { start: h(0), clicks: 60, final: true },
      { start: h(1), clicks: 5, final: false },
    ]);
    expect(r.total).toBe(65);
  });

  it('a half-finalized day rolls up with final: false, a fully finalized day with final: true', () => {
    const finalized = new Set<number>();
    for (let i = 0; i < 24; i++) finalized.add(h(i)); // day 0 entirely
    for (let i = 24; i < 36; i++) finalized.add(h(i)); // first half of day 1
    const batch = [...finalized].map((start) => ({ start, clicks: 1 }));
    const speed = [
      { start: h(30), clicks: 50 }, // finalized: ignored
      { start: h(40) + 17 * MINUTE_MS, clicks: 4 },
    ];
    const r = mergeClicks({ from: T0, to: T0 + 2 * DAY_MS, granularity: 'day' }, finalized, batch, speed);
    expect(r.points).toEqual([
      { start: T0, clicks: 24, final: true },
      { start: T0 + DAY_MS, clicks: 12 + 4, final: false },
    ]);
    expect(r.total).toBe(40);
  });

  it('one missing hour makes its day provisional even if the others are final', () => {
    const finalized = new Set(Array.from({ length: 24 }, (_, i) => h(i)).filter((t) => t !== h(13)));
    const r = mergeClicks({ from: T0, to: T0 + DAY_MS, granularity: 'day' }, finalized, [], []);
    expect(r.points[0]!.final).toBe(false);
  });

  it('counts outside [from, to) are ignored, at both ends', () => {
    const r = mergeClicks(
      { from: m(10), to: m(12), granularity: 'minute' },
      new Set(),
      [],
      [
        { start: m(9), clicks: 1 },
        { start: m(10), clicks: 2 },
        { start: m(11), clicks: 3 },
        { start: m(12), clicks: 4 },
      ],
    );
    expect(r.points.map((p) => p.clicks)).toEqual([2, 3]);
    expect(r.total).toBe(5);
  });

  it('a minute range that does not start on an hour still uses each minute’s own hour', () => {
    const r = mergeClicks(
      { from: m(58), to: m(62), granularity: 'minute' },
      new Set([h(0)]),
      [
        { start: m(58), clicks: 1 },
        { start: m(60), clicks: 9 }, // hour 1 is open: ignored
      ],
      [
        { start: m(59), clicks: 9 }, // hour 0 is final: ignored
        { start: m(61), clicks: 2 },
      ],
    );
    expect(r.points).toEqual([
      { start: m(58), clicks: 1, final: true },
      { start: m(59), clicks: 0, final: true },
      { start: m(60), clicks: 0, final: false },
      { start: m(61), clicks: 2, final: false },
    ]);
  });

  it('several rows of one minute add up (salts, or several ads of an advertiser)', () => {
    const r = mergeClicks(
      { from: m(0), to: m(1), granularity: 'minute' },
      new Set(),
      [],
      [
        { start: m(0), clicks: 2 },
        { start: m(0), clicks: 3 },
      ],
    );
    expect(r.total).toBe(5);
  });

  it('with the speed layer down, finalized buckets still answer and the rest are marked unavailable', () => {
    const r = mergeClicks(
      { from: h(0), to: h(2), granularity: 'hour' },
      new Set([h(0)]),
      [{ start: h(0), clicks: 8 }],
      null,
    );
    expect(r.points).toEqual([
      { start: h(0), clicks: 8, final: true },
      { start: h(1), clicks: 0, final: false, unavailable: true },
    ]);
    expect(r.total).toBe(8);
  });
});

describe('speedSpans', () => {
  it('is the runs of open hours, clipped to the range', () => {
    const finalized = new Set([h(0), h(1), h(3)]);
    expect(speedSpans({ from: m(30), to: h(6) - 10 * MINUTE_MS }, finalized)).toEqual([
      [h(2), h(3)],
      [h(4), h(6) - 10 * MINUTE_MS],
    ]);
  });

  it('starts mid-hour when the first hour is open, and is empty when everything is final', () => {
    expect(speedSpans({ from: m(30), to: m(90) }, new Set([h(1)]))).toEqual([[m(30), h(1)]]);
    expect(speedSpans({ from: h(0), to: h(2) }, new Set([h(0), h(1)]))).toEqual([]);
  });
});

describe('topAds', () => {
  it('adds both layers per ad, ordered by clicks then numerically by ad id', () => {
    const r = topAds(
      [
        { adId: '10', clicks: 5 },
        { adId: '9', clicks: 1 },
      ],
      [
        { adId: '9', clicks: 4 },
        { adId: '11', clicks: 5 },
        { adId: '12', clicks: 2 },
      ],
      3,
    );
    expect(r).toEqual([
      { adId: '9', clicks: 5 },
      { adId: '10', clicks: 5 },
      { adId: '11', clicks: 5 },
    ]);
  });

  it('keeps only the top n and leaves out ads with no clicks', () => {
    const r = topAds(
      [
        { adId: '1', clicks: 0 },
        { adId: '2', clicks: 3 },
        { adId: '3', clicks: 2 },
      ],
      [],
      1,
    );
    expect(r).toEqual([{ adId: '2', clicks: 3 }]);
  });
});

describe('finalizationOf', () => {
  const H = Date.UTC(2026, 10, 27, 10);
  const hours = new Map([
    [H, { revision: 1, finalizedAt: 1000 }],
    [H + HOUR_MS, { revision: 3, finalizedAt: 5000 }],
  ]);
  it('a minute or hour point carries the revision and time of its hour', () => {
    expect(finalizationOf(H + 5 * 60_000, 60_000, hours)).toEqual({ revision: 1, finalizedAt: 1000 });
    expect(finalizationOf(H + HOUR_MS, HOUR_MS, hours)).toEqual({ revision: 3, finalizedAt: 5000 });
  });
  it('a point over several hours sums their revisions and keeps the latest time; any open hour: none', () => {
    expect(finalizationOf(H, 2 * HOUR_MS, hours)).toEqual({ revision: 4, finalizedAt: 5000 });
    expect(finalizationOf(H, 3 * HOUR_MS, hours)).toBeUndefined();
  });
});

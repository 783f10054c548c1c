import { describe, expect, it } from 'vitest';
import { adLine, differingIds, Fold } from './catalogue-checksum.js';
import { parseCopyLine } from './catalogue-feed.js';
import { lagOf, reached, replicaAdOf, replicaReady, STATUS_FRESH_MS } from './catalogue-replica.js';

describe('replicaAdOf: what the replica keeps of a row', () => {
  it('keeps advertiser and URL; active is implicit', () => {
    expect(
      replicaAdOf({ ad_id: 7, advertiser_id: 3, redirect_url: 'https://a.example/', name: 'x' }),
    ).toEqual({
      advertiserId: '3',
      redirectUrl: 'https://a.example/',
    });
    expect(
      replicaAdOf({ ad_id: 7, advertiser_id: '3', redirect_url: 'https://a.example/', status: 'active' }),
    ).toEqual({ advertiserId: '3', redirectUrl: 'https://a.example/' });
  });

  it('takes the state from status, else archived_at, else paused', () => {
    const base = { ad_id: 1, advertiser_id: 2, redirect_url: 'https://b.example/' };
    expect(replicaAdOf({ ...base, status: 'paused' }).state).toBe('paused');
    expect(replicaAdOf({ ...base, archived_at: '2026-12-01T00:00:00Z', paused: true }).state).toBe(
      'archived',
    );
    expect(replicaAdOf({ ...base, paused: true }).state).toBe('paused');
    expect(replicaAdOf({ ...base, paused: false }).state).toBeUndefined();
  });
});

describe('parseCopyLine: text COPY of (ad_id, to_jsonb(ads))', () => {
  it('undoes COPY’s backslash escaping of JSON escapes', () => {
    // The URL holds a quote and a backslash: JSON writes \" and \\, COPY doubles each backslash.
    const line =
      '42\t{"ad_id": 42, "advertiser_id": 9, "redirect_url": "https://c.example/?q=\\\\"x\\\\\\\\y"}';
    expect(parseCopyLine(line)).toEqual([
      '42',
      { advertiserId: '9', redirectUrl: 'https://c.example/?q="x\\y' },
    ]);
  });

  it('skips an empty or malformed line', () => {
    expect(parseCopyLine('')).toBeUndefined();
    expect(parseCopyLine('no tab here')).toBeUndefined();
  });
});

describe('catching up', () => {
  it('reached: every partition at or past its target; empty partitions need nothing', () => {
    expect(reached({ 0: '10', 1: '5' }, { 0: '10', 1: '5' })).toBe(true);
    expect(reached({ 0: '10', 1: '4' }, { 0: '10', 1: '5' })).toBe(false);
    expect(reached({ 0: '10' }, { 0: '10', 1: '0' })).toBe(true);
    expect(reached({ 0: '10' }, { 0: '10', 1: '3' })).toBe(false);
    expect(reached(undefined, { 0: '1' })).toBe(false);
  });

  it('lagOf sums what is left per partition', () => {
    expect(lagOf({ 0: '10', 1: '2' }, { 0: '12', 1: '5', 2: '1' })).toBe(6);
    expect(lagOf({ 0: '12' }, { 0: '10' })).toBe(0);
  });

  it('replicaReady: caught up or stale with a live feed; not while catching up or without a feed', () => {
    const now = 1_000_000;
    expect(replicaReady({ state: 'caught_up', at: now - 1000 }, now).ready).toBe(true);
    expect(replicaReady({ state: 'stale', at: now - 1000 }, now).ready).toBe(true);
    expect(replicaReady({ state: 'catching_up', at: now }, now)).toEqual({
      ready: false,
      state: 'catching_up',
    });
    expect(replicaReady({ state: 'bootstrapping', at: now }, now).ready).toBe(false);
    expect(replicaReady({ state: 'caught_up', at: now - STATUS_FRESH_MS - 1 }, now)).toEqual({
      ready: false,
      state: 'feed_silent',
    });
    expect(replicaReady(undefined, now)).toEqual({ ready: false, state: 'no_feed' });
  });
});

describe('checksum folds', () => {
  const ad = (url: string) => ({ advertiserId: '1', redirectUrl: url });

  it('equal sets fold equal, whatever the order', () => {
    const a = new Fold();
    const b = new Fold();
    a.add('1', ad('https://x/1'));
    a.add('5000', ad('https://x/2'));
    b.add('5000', ad('https://x/2'));
    b.add('1', ad('https://x/1'));
    expect(a.differingBuckets(b).size).toBe(0);
    expect(a.digest()).toBe(b.digest());
  });

  it('a changed URL, a changed state or a missing ad shows in its bucket', () => {
    const base = new Fold();
    base.add('1', ad('https://x/1'));
    base.add('2', ad('https://x/2'));
    const changed = new Fold();
    changed.add('1', ad('https://x/other'));
    changed.add('2', { ...ad('https://x/2'), state: 'paused' });
    expect([...base.differingBuckets(changed)].sort()).toEqual([1, 2]);
    const missing = new Fold();
    missing.add('1', ad('https://x/1'));
    expect([...base.differingBuckets(missing)]).toEqual([2]);
  });

  it('differingIds names changed and one-sided ids in numeric order', () => {
    const pg = new Map([
      ['10', adLine('10', ad('https://x/10'))],
      ['9', adLine('9', ad('https://x/9'))],
      ['100', adLine('100', ad('https://x/100'))],
    ]);
    const replica = new Map([
      ['10', adLine('10', ad('https://x/10'))],
      ['100', adLine('100', ad('https://x/changed'))],
      ['7', adLine('7', ad('https://x/7'))],
    ]);
    expect(differingIds(pg, replica)).toEqual(['7', '9', '100']);
  });
});

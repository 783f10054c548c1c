import { describe, expect, it } from 'vitest';
import { AdCache, type CachedAd } from './ad-cache.js';
import { sleep } from '../common/wait.js';

const ad = (n: number): CachedAd => ({ advertiserId: '1', redirectUrl: `https://example.com/${n}` });

/** A replica over `known` and a fallback over `db` that records every id it was asked for. */
function rig(known: Map<string, CachedAd>, db: Map<string, CachedAd>, delayMs = 0) {
  const calls: string[] = [];
  const load = async (id: string) => {
    calls.push(id);
    if (delayMs && calls.length === 1) await sleep(delayMs); // the first call is slow
    return db.get(id);
  };
  const counts = { hit: 0, negative_hit: 0, miss: 0 };
  const cache = new AdCache({ get: (id) => known.get(id) }, load, {
    maxEntries: 10,
    fallbackDeadlineMs: 50,
    onLookup: (r) => counts[r]++,
  });
  return { calls, cache, counts };
}

describe('AdCache over the replica', () => {
  it('answers from the replica without the fallback', async () => {
    const { calls, cache } = rig(new Map([['1', ad(1)]]), new Map());
    expect(cache.peek('1')).toEqual(ad(1));
    expect(await cache.get('1')).toEqual(ad(1));
    expect(calls).toEqual([]);
  });

  it('peek of an id the replica does not know is null and costs no query', () => {
    const { calls, cache, counts } = rig(new Map(), new Map([['2', ad(2)]]));
    expect(cache.peek('2')).toBeNull();
    expect(calls).toEqual([]);
    expect(counts.negative_hit).toBe(1);
  });

  it('get falls back once for an ad newer than the replica, then remembers it', async () => {
    const { calls, cache } = rig(new Map(), new Map([['3', ad(3)]]));
    const got = await Promise.all([cache.get('3'), cache.get('3'), cache.get('3')]);
    expect(got).toEqual([ad(3), ad(3), ad(3)]);
    expect(cache.peek('3')).toEqual(ad(3));
    expect(calls).toEqual(['3']);
  });

  it('the replica wins over an ad remembered from the fallback (a later change)', async () => {
    const known = new Map<string, CachedAd>();
    const { cache } = rig(known, new Map([['4', ad(4)]]));
    await cache.get('4');
    known.set('4', { advertiserId: '1', redirectUrl: 'https://example.com/changed' });
    expect(cache.peek('4')?.redirectUrl).toBe('https://example.com/changed');
  });

  it('an id the fallback did not find is asked again (it may be committed a moment later)', async () => {
    const db = new Map<string, CachedAd>();
    const { calls, cache } = rig(new Map(), db);
    expect(await cache.get('5')).toBeUndefined();
    db.set('5', ad(5));
    expect(await cache.get('5')).toEqual(ad(5));
    expect(calls).toEqual(['5', '5']);
  });

  it('a fallback past its deadline rejects, and is not remembered', async () => {
    const { calls, cache } = rig(new Map(), new Map([['6', ad(6)]]), 200);
    const started = Date.now();
    await expect(cache.get('6')).rejects.toThrow(/within 50 ms/);
    expect(Date.now() - started).toBeLessThan(190);
    expect(cache.peek('6')).toBeNull();
    expect(await cache.get('6')).toEqual(ad(6));
    expect(calls).toEqual(['6', '6']);
  });
});

import { describe, expect, it } from 'vitest';
import { AdCache, type CachedAd } from './ad-cache.js';

const ad = (n: number): CachedAd => ({ advertiserId: '1', redirectUrl: `https://example.com/${n}` });

/** A loader over `known` that records every id it was asked for (`calls`) and each query (`batches`). */
function counting(known: Set<string>) {
  const calls: string[] = [];
  const batches: string[][] = [];
  const load = async (ids: string[]) => {
    calls.push(...ids);
    batches.push(ids);
    return new Map(ids.filter((id) => known.has(id)).map((id) => [id, ad(Number(id))]));
  };
  return { calls, batches, load };
}

describe('AdCache', () => {
  it('a hot ad costs one load, then none', async () => {
    const { calls, load } = counting(new Set(['1']));
    const cache = new AdCache(load, { maxEntries: 10, negativeTtlMs: 1000 });
    for (let i = 0; i < 100; i++) expect(await cache.get('1')).toEqual(ad(1));
    expect(calls).toEqual(['1']);
    expect(cache.peek('1')).toEqual(ad(1));
  });

  it('concurrent misses on one id share one load', async () => {
    const { calls, load } = counting(new Set(['5']));
    const cache = new AdCache(load, { maxEntries: 10, negativeTtlMs: 1000 });
    const got = await Promise.all([cache.get('5'), cache.get('5'), cache.get('5')]);
    expect(got).toEqual([ad(5), ad(5), ad(5)]);
    expect(calls).toEqual(['5']);
  });

  it('the misses of one event-loop turn cost one load', async () => {
    const { batches, load } = counting(new Set(['1', '2', '4']));
    const cache = new AdCache(load, { maxEntries: 10, negativeTtlMs: 1000, maxBatch: 3 });
    const got = await Promise.all(['1', '2', '3', '2', '4'].map((id) => cache.get(id)));
    expect(got).toEqual([ad(1), ad(2), undefined, ad(2), ad(4)]);
    expect(batches).toEqual([['1', '2', '3'], ['4']]); // split at maxBatch
    expect(cache.peek('3')).toBeNull();
    await cache.get('1');
    expect(batches).toHaveLength(2);
  });

  it('unknown ids are remembered until the negative TTL runs out', async () => {
    let now = 5000;
    const { calls, load } = counting(new Set());
    const cache = new AdCache(load, { maxEntries: 10, negativeTtlMs: 1000, now: () => now });
    expect(await cache.get('9')).toBeUndefined();
    expect(await cache.get('9')).toBeUndefined();
    expect(cache.peek('9')).toBeNull();
    now = 5999;
    expect(cache.peek('9')).toBeNull();
    now = 6001;
    expect(cache.peek('9')).toBeUndefined();
    expect(await cache.get('9')).toBeUndefined();
    expect(calls).toEqual(['9', '9']);
  });

  it('an id remembered as unknown is looked up again when the caller knows it was created', async () => {
    const known = new Set<string>();
    const { calls, load } = counting(known);
    const cache = new AdCache(load, { maxEntries: 10, negativeTtlMs: 60_000 });
    expect(await cache.get('7')).toBeUndefined();
    known.add('7'); // created a moment later
    expect(await cache.get('7')).toBeUndefined(); // an unsigned click keeps the negative entry
    expect(await cache.get('7', { recheckUnknown: true })).toEqual(ad(7));
    expect(cache.peek('7')).toEqual(ad(7));
    expect(calls).toEqual(['7', '7']);
  });

  it('evicts the least recently used ad beyond maxEntries', async () => {
    const { calls, load } = counting(new Set(['1', '2', '3']));
    const cache = new AdCache(load, { maxEntries: 2, negativeTtlMs: 1000 });
    await cache.get('1');
    await cache.get('2');
    await cache.get('1'); // 2 is now the least recent
    await cache.get('3');
    expect(cache.size).toBe(2);
    expect(cache.peek('2')).toBeUndefined();
    expect(cache.peek('1')).toEqual(ad(1));
    expect(calls).toEqual(['1', '2', '3']);
  });

  it('a failed load is not cached', async () => {
    let fail = true;
    const cache = new AdCache(
      async (ids: string[]) => {
        if (fail) throw new Error('db down');
        return new Map(ids.map((id) => [id, ad(1)]));
      },
      { maxEntries: 2, negativeTtlMs: 1000 },
    );
    await expect(cache.get('1')).rejects.toThrow('db down');
    fail = false;
    expect(await cache.get('1')).toEqual(ad(1));
  });
});

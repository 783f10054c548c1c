// The click path's view of the catalogue: a bounded LRU of ads in front of PostgreSQL, plus a
// negative cache so a flood of clicks on unknown ids does not become a flood of queries. Ads never
// change once created (the API has no update), so a cached ad never goes stale; an unknown id is
// remembered only for a while, as it may be created later — and a caller that holds proof that the
// ad exists (a click signed for it: impressions are issued only for existing ads) looks it up again
// at once with `get(adId, { recheckUnknown: true })`, so a new ad is clickable the moment it exists.
// Concurrent misses on one id share one query (lru-cache's fetch). The loader is injected:
// PostgreSQL in production (`pgAdLoader`).
import { LRUCache } from 'lru-cache';
import type pg from 'pg';

export interface CachedAd {
  advertiserId: string;
  redirectUrl: string;
}

export type AdLoader = (adId: string) => Promise<CachedAd | undefined>;
export type CacheResult = 'hit' | 'negative_hit' | 'miss';

export interface AdCacheOptions {
  maxEntries: number;
  negativeTtlMs: number;
  now?: () => number;
  onLookup?: (result: CacheResult) => void;
}

export class AdCache {
  private readonly ads: LRUCache<string, CachedAd>;
  // Unknown ids may be attacker-chosen: bounded like the ads, and forgotten after the TTL.
  private readonly unknown: LRUCache<string, true>;

  constructor(
    load: AdLoader,
    private readonly opts: AdCacheOptions,
  ) {
    this.ads = new LRUCache<string, CachedAd>({
      max: opts.maxEntries,
      fetchMethod: async (adId) => {
        const ad = await load(adId);
        if (!ad) this.unknown.set(adId, true);
        return ad;
      },
    });
    this.unknown = new LRUCache<string, true>({
      max: opts.maxEntries,
      ttl: opts.negativeTtlMs,
      ...(opts.now && { perf: { now: opts.now }, ttlResolution: 0 }),
    });
  }

  /** The cached ad (or `null` = known unknown) without I/O; `undefined` when a lookup is needed. */
  peek(adId: string): CachedAd | null | undefined {
    const ad = this.ads.get(adId);
    if (ad) {
      this.opts.onLookup?.('hit');
      return ad;
    }
    if (this.unknown.has(adId)) {
      this.opts.onLookup?.('negative_hit');
      return null;
    }
    return undefined;
  }

  /**
   * The ad, or undefined for an id that does not exist. `recheckUnknown`: an id remembered as unknown
   * is looked up again (the caller knows it was created since), and forgotten as unknown if found.
   */
  async get(adId: string, opts: { recheckUnknown?: boolean } = {}): Promise<CachedAd | undefined> {
    const cached = this.peek(adId);
    if (cached) return cached;
    if (cached === null) {
      if (!opts.recheckUnknown) return undefined;
      this.unknown.delete(adId);
    }
    this.opts.onLookup?.('miss');
    return this.ads.fetch(adId);
  }

  get size(): number {
    return this.ads.size;
  }
}

/** Loads one ad by primary key. */
export function pgAdLoader(pool: pg.Pool): AdLoader {
  return async (adId) => {
    const r = await pool.query<{ advertiser_id: string; redirect_url: string }>({
      name: 'click-ad-by-id',
      text: 'select advertiser_id, redirect_url from ads where ad_id = $1',
      values: [adId],
    });
    const row = r.rows[0];
    return row ? { advertiserId: row.advertiser_id, redirectUrl: row.redirect_url } : undefined;
  };
}

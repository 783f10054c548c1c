// The click path's view of the catalogue: a bounded LRU of ads in front of PostgreSQL, plus a
// negative cache so a flood of clicks on unknown ids does not become a flood of queries. Ads never
// change once created (the API has no update), so a cached ad never goes stale; an unknown id is
// remembered only for a while, as it may be created later. Concurrent misses on one id share one
// query. The loader is injected: PostgreSQL in production (`pgAdLoader`), anything in unit tests.
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
  // A Map iterates in insertion order: re-inserting on a hit makes the first key the least recent.
  private readonly ads = new Map<string, CachedAd>();
  private readonly unknown = new Map<string, number>();
  private readonly loading = new Map<string, Promise<CachedAd | undefined>>();
  private readonly now: () => number;

  constructor(
    private readonly load: AdLoader,
    private readonly opts: AdCacheOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** The cached ad (or `null` = known unknown) without I/O; `undefined` when a lookup is needed. */
  peek(adId: string): CachedAd | null | undefined {
    const ad = this.ads.get(adId);
    if (ad) {
      this.ads.delete(adId);
      this.ads.set(adId, ad);
      this.opts.onLookup?.('hit');
      return ad;
    }
    const until = this.unknown.get(adId);
    if (until !== undefined) {
      if (until > this.now()) {
        this.opts.onLookup?.('negative_hit');
        return null;
      }
      this.unknown.delete(adId);
    }
    return undefined;
  }

  /** The ad, or undefined for an id that does not exist. */
  async get(adId: string): Promise<CachedAd | undefined> {
    const cached = this.peek(adId);
    if (cached !== undefined) return cached ?? undefined;
    this.opts.onLookup?.('miss');
    let pending = this.loading.get(adId);
    if (!pending) {
      pending = this.load(adId).then(
        (ad) => {
          this.loading.delete(adId);
          this.remember(adId, ad);
          return ad;
        },
        (e: unknown) => {
          this.loading.delete(adId);
          throw e;
        },
      );
      this.loading.set(adId, pending);
    }
    return pending;
  }

  get size(): number {
    return this.ads.size;
  }

  private remember(adId: string, ad: CachedAd | undefined): void {
    if (ad) {
      this.ads.set(adId, ad);
      if (this.ads.size > this.opts.maxEntries) this.ads.delete(this.ads.keys().next().value as string);
      return;
    }
    this.unknown.set(adId, this.now() + this.opts.negativeTtlMs);
    // Unknown ids may be attacker-chosen: bound them too (oldest first, same as the LRU).
    if (this.unknown.size > this.opts.maxEntries)
      this.unknown.delete(this.unknown.keys().next().value as string);
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

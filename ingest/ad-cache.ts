// The click path's view of the catalogue: a bounded LRU of ads in front of PostgreSQL, plus a
// negative cache so a flood of clicks on unknown ids does not become a flood of queries. Ads never
// change once created (the API has no update), so a cached ad never goes stale; an unknown id is
// remembered only for a while, as it may be created later — and a caller that holds proof that the
// ad exists (a click signed for it: impressions are issued only for existing ads) looks it up again
// at once with `get(adId, { recheckUnknown: true })`, so a new ad is clickable the moment it exists.
//
// Misses cost one query per event-loop turn, not one per click: the ids missed during a turn are
// looked up together (`where ad_id = any($1)`), and concurrent misses on one id share that lookup.
// After a restart, with 10M ads and clicks spread by a Zipf law, most clicks miss for a while; one
// round trip per miss was most of PostgreSQL's work and a large part of the click worker's. The
// loader is injected: PostgreSQL in production (`pgAdLoader`).
import { LRUCache } from 'lru-cache';
import type pg from 'pg';

export interface CachedAd {
  advertiserId: string;
  redirectUrl: string;
}

/** Loads the ads among `adIds` that exist (ids not in the map do not exist). */
export type AdLoader = (adIds: string[]) => Promise<Map<string, CachedAd>>;
export type CacheResult = 'hit' | 'negative_hit' | 'miss';

export interface AdCacheOptions {
  maxEntries: number;
  negativeTtlMs: number;
  /** At most this many ids per lookup; a larger turn's misses are split (default 1000). */
  maxBatch?: number;
  /** 0: the misses of each event-loop turn go together; more: the misses of that many ms. */
  batchMs?: number;
  now?: () => number;
  onLookup?: (result: CacheResult) => void;
}

interface PendingLookup {
  promise: Promise<CachedAd | undefined>;
  resolve: (ad: CachedAd | undefined) => void;
  reject: (e: Error) => void;
}

export class AdCache {
  private readonly ads: LRUCache<string, CachedAd>;
  // Unknown ids may be attacker-chosen: bounded like the ads, and forgotten after the TTL.
  private readonly unknown: LRUCache<string, true>;
  /** Ids being looked up (queued for this turn's query, or in a query running now). */
  private readonly pending = new Map<string, PendingLookup>();
  private queued: string[] = [];

  constructor(
    private readonly load: AdLoader,
    private readonly opts: AdCacheOptions,
  ) {
    this.ads = new LRUCache<string, CachedAd>({ max: opts.maxEntries });
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
  get(adId: string, opts: { recheckUnknown?: boolean } = {}): Promise<CachedAd | undefined> {
    const cached = this.peek(adId);
    if (cached) return Promise.resolve(cached);
    if (cached === null) {
      if (!opts.recheckUnknown) return Promise.resolve(undefined);
      this.unknown.delete(adId);
    }
    this.opts.onLookup?.('miss');
    const running = this.pending.get(adId);
    if (running) return running.promise;
    let resolve!: PendingLookup['resolve'];
    let reject!: PendingLookup['reject'];
    const promise = new Promise<CachedAd | undefined>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.pending.set(adId, { promise, resolve, reject });
    if (this.queued.push(adId) === 1) {
      if (this.opts.batchMs) setTimeout(() => this.lookUpQueued(), this.opts.batchMs);
      else setImmediate(() => this.lookUpQueued());
    }
    return promise;
  }

  get size(): number {
    return this.ads.size;
  }

  private lookUpQueued(): void {
    const ids = this.queued;
    this.queued = [];
    const max = this.opts.maxBatch ?? 1000;
    for (let i = 0; i < ids.length; i += max) void this.lookUp(ids.slice(i, i + max));
  }

  private async lookUp(ids: string[]): Promise<void> {
    let found: Map<string, CachedAd>;
    try {
      found = await this.load(ids);
    } catch (e) {
      // Not cached: the next click on these ids asks again.
      for (const id of ids) {
        this.pending.get(id)?.reject(e as Error);
        this.pending.delete(id);
      }
      return;
    }
    for (const id of ids) {
      const ad = found.get(id);
      if (ad) this.ads.set(id, ad);
      else this.unknown.set(id, true);
      this.pending.get(id)?.resolve(ad);
      this.pending.delete(id);
    }
  }
}

/** Loads ads by primary key, many in one query. */
export function pgAdLoader(pool: pg.Pool): AdLoader {
  return async (adIds) => {
    const r = await pool.query<{ ad_id: string; advertiser_id: string; redirect_url: string }>({
      name: 'click-ads-by-id',
      text: 'select ad_id::text, advertiser_id::text, redirect_url from ads where ad_id = any($1::bigint[])',
      values: [adIds],
    });
    const ads = new Map<string, CachedAd>();
    for (const row of r.rows)
      ads.set(row.ad_id, { advertiserId: row.advertiser_id, redirectUrl: row.redirect_url });
    return ads;
  };
}

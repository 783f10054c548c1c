// The click path's view of the catalogue: the host's replica (ingest/catalogue-replica.ts, LMDB on
// the click process's disk) answers every lookup synchronously, without PostgreSQL. An id the
// replica does not know is answered 404 at once, unless the caller holds proof that the ad exists
// (a click signed for it: impressions are issued only for existing ads, so the ad may be newer than
// the replica's last change): then, and only then, PostgreSQL is asked for that one ad under a short
// deadline (`get`). An ad found that way is remembered until the replica has it; one not found is
// not remembered (the signature says it existed when signed: it may be committed a moment later).
// Concurrent fallbacks on one id share their query; their number in flight is bounded, so a hung
// PostgreSQL holds neither memory nor connections, and a flood needs valid signatures. The loader is injected: `pgAdLoader` in production.
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import { withDeadline } from '../common/wait.js';
import { replicaAdOf, type AdRow, type ReplicaAd } from './catalogue-replica.js';

export type CachedAd = ReplicaAd;

/** The replica: a synchronous lookup. */
export interface AdSource {
  get(adId: string): CachedAd | undefined;
}

/** Loads one ad from the catalogue's database (undefined: it does not exist). */
export type AdLoader = (adId: string) => Promise<CachedAd | undefined>;
export type CacheResult = 'hit' | 'negative_hit' | 'miss';

export interface AdCacheOptions {
  /** Ads found by the fallback, kept until the replica has them (entries). */
  maxEntries: number;
  /** The fallback's deadline (ms): past it the click gets a 503, never a wait. */
  fallbackDeadlineMs: number;
  /** Fallbacks in flight at most; more are refused at once (503). Default 64. */
  maxInFlight?: number;
  onLookup?: (result: CacheResult) => void;
}

export class AdCache {
  private readonly found: LRUCache<string, CachedAd>;
  private readonly pending = new Map<string, Promise<CachedAd | undefined>>();

  constructor(
    private readonly replica: AdSource,
    private readonly load: AdLoader,
    private readonly opts: AdCacheOptions,
  ) {
    this.found = new LRUCache<string, CachedAd>({ max: opts.maxEntries });
  }

  /** The ad from the replica (or from an earlier fallback); `null`: not known here (no I/O). */
  peek(adId: string): CachedAd | null {
    const ad = this.replica.get(adId);
    if (ad) {
      if (this.found.size > 0) this.found.delete(adId); // the replica has it now: it wins
      this.opts.onLookup?.('hit');
      return ad;
    }
    const earlier = this.found.get(adId);
    if (earlier) {
      this.opts.onLookup?.('hit');
      return earlier;
    }
    this.opts.onLookup?.('negative_hit');
    return null;
  }

  /**
   * For a click that proves the ad exists: the replica's ad, else PostgreSQL's under the deadline.
   * Resolves undefined when the ad does not exist; rejects when it cannot be told in time.
   */
  get(adId: string): Promise<CachedAd | undefined> {
    const ad = this.replica.get(adId) ?? this.found.get(adId);
    if (ad) return Promise.resolve(ad);
    const running = this.pending.get(adId);
    if (running) return running;
    if (this.pending.size >= (this.opts.maxInFlight ?? 64))
      return Promise.reject(new Error('too many catalogue fallbacks in flight'));
    this.opts.onLookup?.('miss');
    const ms = this.opts.fallbackDeadlineMs;
    const lookup = withDeadline(this.load(adId), ms, `the catalogue did not answer within ${ms} ms`).then(
      (loaded) => {
        this.pending.delete(adId);
        if (loaded) this.found.set(adId, loaded);
        return loaded;
      },
      (e: Error) => {
        this.pending.delete(adId);
        throw e;
      },
    );
    this.pending.set(adId, lookup);
    return lookup;
  }
}

/** Loads one ad by primary key (the whole row, mapped as the replica maps it). */
export function pgAdLoader(pool: pg.Pool, deadlineMs: number): AdLoader {
  return async (adId) => {
    const r = await pool.query<{ ad: AdRow }>({
      text: 'select to_jsonb(a) as ad from ads a where ad_id = $1::bigint',
      values: [adId],
      // The server gives up too, so a hung query does not hold the connection past the deadline.
      query_timeout: deadlineMs,
    } as pg.QueryConfig);
    const row = r.rows[0];
    return row ? replicaAdOf(row.ad) : undefined;
  };
}

// The speed layer's read contract, used by the serving layer. Implementations: Pinot (default) and
// PostgreSQL (SPEED_STORE=postgres); both pass one shared contract test suite.
export interface MinuteCount {
  adId: string;
  /** Bucket start, epoch ms, minute-aligned (UTC). */
  minute: number;
  /** Provisional count of valid first clicks, salts already summed. */
  clicks: number;
}

export interface AdClicks {
  adId: string;
  clicks: number;
}

/** Provisional sums over a span: per bucket (summed over the ads) and per ad (over the span). */
export interface SpeedTotals {
  /** Clicks per bucket of `bucketMs` (a multiple of a minute), bucket start in epoch ms; empty buckets absent. */
  buckets: { start: number; clicks: number }[];
  /** Clicks per ad over [from, to); ads without clicks absent. */
  ads: AdClicks[];
}

export interface SpeedStore {
  /** Provisional counts for these ads with minute in [from, to); minutes with no clicks are absent. */
  minuteCounts(adIds: readonly string[], from: number, to: number): Promise<MinuteCount[]>;
  /**
   * The same counts summed where the data lives, for many ads at once (an advertiser's dashboard):
   * shipping one row per (ad, minute) of 1,000 busy ads would cost more than the query.
   */
  clickSums(adIds: readonly string[], from: number, to: number, bucketMs: number): Promise<SpeedTotals>;
  /**
   * The same sums over every ad of one advertiser, keyed by the advertiser where the data lives: the
   * query does not list the advertiser's ads, so its cost does not grow with a list of 100,000 ids.
   * Counts written before rows carried the advertiser (see docs/security.md) are not in it.
   */
  advertiserClickSums(advertiserId: string, from: number, to: number, bucketMs: number): Promise<SpeedTotals>;
  /** Provisional clicks per hour over every ad, hour start in epoch ms; hours without clicks absent. */
  hourTotals(from: number, to: number): Promise<{ start: number; clicks: number }[]>;
  /**
   * Provisional clicks per ad over [from, to) for every ad that has any, however many there are
   * (reconciliation): never a truncated answer.
   */
  adTotals(from: number, to: number): Promise<AdClicks[]>;
  /** Resolves when the store answers; rejects with the reason otherwise (used by /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

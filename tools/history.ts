// Synthetic click history with a known answer: impressions with a first valid click in a past range,
// plus repeats of the same impression (marked `valid` as if Redis dedup had been down, or
// `duplicate`) that may fall in later minutes and hours, plus invalid clicks. Pure (seeded).
import { saltOf, type ClickEvent, type ClickStatus } from '../common/click-event.js';
import { HOUR_MS, MINUTE_MS, minuteOf } from '../common/time.js';
import { mulberry32 } from '../common/seeded-random.js';

export interface HistoryOptions {
  /** Hour-aligned start (epoch ms) of the range the first clicks fall in. */
  from: number;
  hours: number;
  /** Impressions clicked (each counted exactly once). */
  impressions: number;
  /** Ad ids are adBase .. adBase + ads − 1 (pick a unique base per run). */
  adBase: bigint;
  ads: number;
  /** Share of impressions clicked again later (default 0.3). */
  repeatRate?: number;
  /** Share of extra invalid clicks (bad signature, expired) per impression (default 0.05). */
  invalidRate?: number;
  salts?: number;
  seed?: number;
}

export interface History {
  events: ClickEvent[];
  /** Ground truth: valid first clicks per `${adId}|${minute}`. */
  truth: Map<string, number>;
  counted: number;
}

/** mulberry32 (common/seeded-random.ts), so a history can be regenerated from its seed. */
export const rng = mulberry32;

const hex = (r: () => number, n: number): string =>
  Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');

export const advertiserOf = (adId: bigint): string => (adId / 10n + 1n).toString();

export const truthKey = (adId: string, minute: number): string => `${adId}|${minute}`;

export function generateHistory(o: HistoryOptions): History {
  const r = rng(o.seed ?? 1);
  const salts = o.salts ?? 8;
  const repeatRate = o.repeatRate ?? 0.3;
  const invalidRate = o.invalidRate ?? 0.05;
  const span = o.hours * HOUR_MS;
  const events: ClickEvent[] = [];
  const truth = new Map<string, number>();
  const runTag = hex(r, 8);
  for (let i = 0; i < o.impressions; i++) {
    const ad = o.adBase + BigInt(Math.floor(r() * o.ads));
    const adId = ad.toString();
    const advertiserId = advertiserOf(ad);
    const eventId = `${runTag}-${hex(r, 8)}-${i.toString(16)}`;
    const salt = saltOf(eventId, salts);
    const ts = o.from + Math.floor(r() * span);
    const base = { v: 1 as const, eventId, adId, advertiserId, salt };
    events.push({ ...base, ts, status: 'valid' });
    truth.set(truthKey(adId, minuteOf(ts)), (truth.get(truthKey(adId, minuteOf(ts))) ?? 0) + 1);
    if (r() < repeatRate) {
      // A later click of the same impression: up to 3 hours later, so it often lands in another hour.
      const later = ts + 1 + Math.floor(r() * 3 * HOUR_MS);
      const status: ClickStatus = r() < 0.5 ? 'valid' : 'duplicate';
      events.push({ ...base, ts: later, status });
      if (r() < 0.3) events.push({ ...base, ts: later + MINUTE_MS, status: 'valid' });
    }
    if (r() < invalidRate) {
      events.push({ ...base, ts: ts - 1, status: r() < 0.5 ? 'bad_signature' : 'expired' });
    }
  }
  // Replayed history arrives out of order.
  for (let i = events.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [events[i], events[j]] = [events[j]!, events[i]!];
  }
  return { events, truth, counted: o.impressions };
}

/** Ground truth restricted to minutes in [from, to). */
export function truthIn(truth: ReadonlyMap<string, number>, from: number, to: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of truth) {
    const minute = Number(k.slice(k.indexOf('|') + 1));
    if (minute >= from && minute < to) out.set(k, v);
  }
  return out;
}

// --- Volume at scale (tools/scale.ts, docs/capacity.md): Zipf-distributed ads, a diurnal rate. ---

/**
 * Clicks per second in the hour starting `hourOfDay` (0..23, UTC) of a diurnal curve: a floor of
 * 2 % of the peak plus a bell of one hour's deviation around 20:00 UTC. Its mean is 12.4 % of the
 * peak: a 10,000/s peak gives ~107M clicks a day, the target's "~100M a day".
 */
export function diurnalRate(hourOfDay: number, peakPerSecond: number): number {
  const mid = hourOfDay + 0.5;
  const d = Math.min(Math.abs(mid - 20), 24 - Math.abs(mid - 20));
  return peakPerSecond * (0.02 + Math.exp(-(d * d) / 2));
}

/**
 * The Zipf law over ranks 0..ads−1 as its continuous approximation (a power law on [1, ads+1)),
 * which DuckDB can draw from in SQL: P(rank < k) = F(k + 1), F below. Exponent 1 is the harmonic law.
 */
export function zipfCdf(x: number, ads: number, exponent: number): number {
  if (exponent === 1) return Math.log(x) / Math.log(ads + 1);
  const e = 1 - exponent;
  return (Math.pow(x, e) - 1) / (Math.pow(ads + 1, e) - 1);
}

/** The SQL expression of a Zipf rank (0-based) from a uniform draw `u` in [0, 1). */
export function zipfRankSql(u: string, ads: number, exponent: number): string {
  const x =
    exponent === 1
      ? `pow(${ads + 1}, ${u})`
      : `pow((pow(${ads + 1}, ${1 - exponent}) - 1) * ${u} + 1, ${1 / (1 - exponent)})`;
  return `least(${ads - 1}, greatest(0, floor(${x}) - 1))::bigint`;
}

/**
 * Expected distinct keys among `n` independent draws, for keys with probabilities given in blocks
 * of `count` keys sharing probability `p` each: Σ count · (1 − (1 − p)^n).
 */
export function expectedDistinct(blocks: ReadonlyArray<{ count: number; p: number }>, n: number): number {
  let sum = 0;
  for (const { count, p } of blocks) sum += count * -Math.expm1(n * Math.log1p(-p));
  return sum;
}

/** The Zipf law of `zipfCdf` as blocks of ranks of nearly equal probability (log-spaced). */
export function zipfBlocks(
  ads: number,
  exponent: number,
  perDecade = 2000,
): Array<{ count: number; p: number }> {
  const blocks: Array<{ count: number; p: number }> = [];
  let k = 1;
  while (k <= ads) {
    const next = Math.min(ads + 1, Math.max(k + 1, Math.floor(k * Math.pow(10, 1 / perDecade))));
    const count = next - k;
    blocks.push({ count, p: (zipfCdf(next, ads, exponent) - zipfCdf(k, ads, exponent)) / count });
    k = next;
  }
  return blocks;
}

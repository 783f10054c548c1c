// Click traffic as the `system` benchmark offers it: ads drawn by a Zipf law (exponent 1, as
// DESIGN.md's volume estimate assumes) over the whole catalogue, with shares of repeated, badly
// signed and expired impressions. Pure functions over an injected random source, so the mix is
// unit-tested; the paths are signed with the same functions the API uses.
import { randomUUID } from 'node:crypto';
import { clickPath, signImpression } from '../ingest/impression.js';

const EULER_GAMMA = 0.5772156649015329;
/** Ranks up to here are drawn from an exact cumulative table; beyond, from ln k + γ (error < 1e-12). */
const EXACT_RANKS = 1 << 20;

/** Draws ranks 1..n with P(k) ∝ 1/k. */
export class ZipfSampler {
  private readonly table: Float64Array;
  private readonly total: number;

  constructor(
    readonly n: number,
    private readonly random: () => number = Math.random,
  ) {
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`Zipf needs n ≥ 1, got ${n}`);
    const exact = Math.min(n, EXACT_RANKS);
    this.table = new Float64Array(exact);
    let h = 0;
    for (let k = 1; k <= exact; k++) this.table[k - 1] = h += 1 / k;
    this.total = n <= exact ? h : harmonic(n);
  }

  /** A rank in [1, n]: rank 1 is the hottest ad. */
  next(): number {
    const u = this.random() * this.total;
    const t = this.table;
    if (u <= t[t.length - 1]!) {
      let lo = 0;
      let hi = t.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (t[mid]! < u) lo = mid + 1;
        else hi = mid;
      }
      return lo + 1;
    }
    return Math.min(this.n, Math.max(t.length + 1, Math.ceil(Math.exp(u - EULER_GAMMA) - 0.5)));
  }
}

/** H(n) = Σ 1/k for large n (asymptotic expansion). */
function harmonic(n: number): number {
  return Math.log(n) + EULER_GAMMA + 1 / (2 * n) - 1 / (12 * n * n);
}

/**
 * A bijection of [0, n) that scatters ranks over the catalogue, so the hot ads are not all the
 * oldest (lowest) ids: i ↦ (i·a + b) mod n with a coprime to n.
 */
export function scatter(n: number, seed = 0x9e3779b1): (i: number) => number {
  let a = (seed % n) + 1;
  while (gcd(a, n) !== 1) a++;
  const b = Math.floor(n / 3);
  // i·a < n² stays an exact double up to n ≈ 9.4e7; BigInt beyond (ten times slower).
  if (n * n < Number.MAX_SAFE_INTEGER) return (i) => (i * a + b) % n;
  return (i) => Number((BigInt(i) * BigInt(a) + BigInt(b)) % BigInt(n));
}

const gcd = (x: number, y: number): number => (y === 0 ? x : gcd(y, x % y));

export interface ClickMix {
  /** Share of clicks that repeat an earlier impression's click (→ `duplicate`). */
  duplicate: number;
  /** Share with a signature that does not match (→ `bad_signature`). */
  badSignature: number;
  /** Share of impressions whose expiry has passed (→ `expired`). */
  expired: number;
}

/** The mix: 10 % duplicates, 3 % bad signatures, 1 % expired; the rest valid first clicks. */
export const SYSTEM_MIX: ClickMix = { duplicate: 0.1, badSignature: 0.03, expired: 0.01 };

export type PathKind = 'valid' | 'duplicate' | 'bad_signature' | 'expired';

export interface ClickPathSource {
  /** The next click path and what the click service should make of it. */
  next(): { path: string; kind: PathKind };
}

/**
 * Signed click paths over `adIdAt(index)` for index = scatter(zipf rank - 1). Duplicates repeat one
 * of the last 1,000 valid paths this source produced (so the original is always sent first by the
 * same wrk thread); valid impressions live `ttlSeconds` from `now`, expired ones ended a minute ago.
 */
export function clickPaths(opts: {
  adIdAt: (index: number) => string;
  catalogueSize: number;
  secret: string;
  now: number;
  ttlSeconds: number;
  mix?: ClickMix;
  random?: () => number;
  newId?: () => string;
}): ClickPathSource {
  const random = opts.random ?? Math.random;
  const newId = opts.newId ?? randomUUID;
  const mix = opts.mix ?? SYSTEM_MIX;
  const zipf = new ZipfSampler(opts.catalogueSize, random);
  const place = scatter(opts.catalogueSize);
  const recent: string[] = [];
  let recentAt = 0;
  const signed = (expiresAt: number, forge: boolean): string => {
    const adId = opts.adIdAt(place(zipf.next() - 1));
    const impressionId = newId();
    let sig = signImpression(opts.secret, adId, impressionId, expiresAt);
    if (forge) sig = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
    return clickPath({ adId, impressionId, expiresAt, sig });
  };
  return {
    next() {
      const u = random();
      if (u < mix.duplicate) {
        if (recent.length > 0)
          return { path: recent[Math.floor(random() * recent.length)]!, kind: 'duplicate' };
      } else if (u < mix.duplicate + mix.badSignature) {
        return { path: signed(opts.now + opts.ttlSeconds * 1000, true), kind: 'bad_signature' };
      } else if (u < mix.duplicate + mix.badSignature + mix.expired) {
        return { path: signed(opts.now - 60_000, false), kind: 'expired' };
      }
      const path = signed(opts.now + opts.ttlSeconds * 1000, false);
      if (recent.length < 1000) recent.push(path);
      else recent[recentAt++ % 1000] = path;
      return { path, kind: 'valid' };
    },
  };
}

// Comparing a catalogue replica with PostgreSQL (tools/catalogue-checksum.ts): each side is folded
// into BUCKETS bucket sums of per-ad hashes over (ad id, advertiser id, redirect URL, state), which
// is order-free and needs no memory per ad; only the ads of buckets whose sums differ are compared
// one by one, so the differing ad ids can be named. The hash is MD5 (speed, not secrecy).
import { createHash } from 'node:crypto';
import type { ReplicaAd } from './catalogue-replica.js';

export const BUCKETS = 4096;

/** The canonical text of an ad as both sides see it. */
export const adLine = (adId: string, ad: ReplicaAd): string =>
  `${adId}\t${ad.advertiserId}\t${ad.redirectUrl}\t${ad.state ?? 'active'}`;

export const bucketOf = (adId: string): number => Number(adId) % BUCKETS;

/** Per-ad hash: 8 bytes of MD5, as two 32-bit halves. */
function hash(adId: string, ad: ReplicaAd): [number, number] {
  const d = createHash('md5').update(adLine(adId, ad)).digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4)];
}

export class Fold {
  readonly count = new Uint32Array(BUCKETS);
  private readonly lo = new Uint32Array(BUCKETS);
  private readonly hi = new Uint32Array(BUCKETS);
  total = 0;

  add(adId: string, ad: ReplicaAd): void {
    const b = bucketOf(adId);
    const [l, h] = hash(adId, ad);
    this.count[b]! += 1;
    this.lo[b] = (this.lo[b]! + l) >>> 0;
    this.hi[b] = (this.hi[b]! + h) >>> 0;
    this.total++;
  }

  /** Buckets whose count or sum differs from `other`'s. */
  differingBuckets(other: Fold): Set<number> {
    const out = new Set<number>();
    for (let b = 0; b < BUCKETS; b++)
      if (this.count[b] !== other.count[b] || this.lo[b] !== other.lo[b] || this.hi[b] !== other.hi[b])
        out.add(b);
    return out;
  }

  /** One hex digest of the whole side (for the report). */
  digest(): string {
    const h = createHash('sha256');
    h.update(Buffer.from(this.count.buffer))
      .update(Buffer.from(this.lo.buffer))
      .update(Buffer.from(this.hi.buffer));
    return h.digest('hex').slice(0, 16);
  }
}

/** Ad ids whose lines differ between two maps of id → canonical line (missing on either side too). */
export function differingIds(a: Map<string, string>, b: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [id, line] of a) if (b.get(id) !== line) out.push(id);
  for (const id of b.keys()) if (!a.has(id)) out.push(id);
  return out.sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : BigInt(x) > BigInt(y) ? 1 : 0));
}

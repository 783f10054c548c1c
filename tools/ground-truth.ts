// Ground truth of a simulated run and how to compare it with what the metrics API reports. Pure
// functions; the simulator writes a GroundTruth file, the verifier reads it.
import { isoSeconds, minuteOf } from '../common/time.js';

export interface GroundTruth {
  baseUrl: string;
  startedAt: number;
  endedAt: number;
  advertisers: { advertiserId: string; apiKey: string }[];
  ads: { adId: string; advertiserId: string }[];
  /** Valid first clicks: adId → minute (ISO) → count. */
  counts: Record<string, Record<string, number>>;
  /** Requests sent by intended outcome, and HTTP answers that were not what that outcome expects. */
  sent: Record<string, number>;
  unexpected: number;
  /**
   * Failure drills (all optional, absent in older files): the clock offset the run used (startedAt,
   * endedAt and the minutes above are on that clock); requests that got no answer at all; and the
   * valid first clicks whose connection broke after the request was sent — the click service may
   * have logged them without its 302 arriving, so the verifier looks them up in the clicks topic.
   */
  clockOffsetMs?: number;
  /** How long sending took (ms, from the first click to the last one sent; answers come after). */
  sendingMs?: number;
  failed?: number;
  ambiguous?: AmbiguousClick[];
  /**
   * Valid first clicks answered 302 whose request and answer fell in different minutes (a queue
   * before the click service, under load): the click service stamped one of the two, and only the
   * clicks topic says which. The verifier takes their minute from there, and each must be there.
   */
  unsureMinute?: AmbiguousClick[];
}

/** A valid first click whose outcome is unknown: sent, then the connection broke before an answer. */
export interface AmbiguousClick {
  adId: string;
  impressionId: string;
}

export function recordValidClick(counts: GroundTruth['counts'], adId: string, ts: number): void {
  const minute = isoSeconds(minuteOf(ts));
  const perAd = (counts[adId] ??= {});
  perAd[minute] = (perAd[minute] ?? 0) + 1;
}

export interface CountDifference {
  adId: string;
  minute: string;
  expected: number;
  reported: number;
}

/** Every (ad, minute) where the reported count differs from the truth, zeros included. */
export function diffCounts(
  truth: GroundTruth['counts'],
  reported: Record<string, Record<string, number>>,
): CountDifference[] {
  const diffs: CountDifference[] = [];
  const ads = new Set([...Object.keys(truth), ...Object.keys(reported)]);
  for (const adId of ads) {
    const minutes = new Set([...Object.keys(truth[adId] ?? {}), ...Object.keys(reported[adId] ?? {})]);
    for (const minute of minutes) {
      const expected = truth[adId]?.[minute] ?? 0;
      const got = reported[adId]?.[minute] ?? 0;
      if (expected !== got) diffs.push({ adId, minute, expected, reported: got });
    }
  }
  return diffs.sort((a, b) => a.adId.localeCompare(b.adId) || a.minute.localeCompare(b.minute));
}

export const totalOf = (counts: GroundTruth['counts']): number =>
  Object.values(counts).reduce((sum, perAd) => sum + Object.values(perAd).reduce((a, b) => a + b, 0), 0);

/**
 * Whether a click sent at `now` could be stamped with a different minute by the server than by us:
 * the simulator sends no click this close to a minute boundary, so per-minute truth is exact.
 */
export function nearMinuteBoundary(now: number, marginMs: number): boolean {
  const intoMinute = now - minuteOf(now);
  return intoMinute < marginMs || intoMinute > 60_000 - marginMs;
}

/**
 * A badly signed copy of `sig`, always different from it: its first character swapped for another
 * base64url character. (Overwriting the last characters, as the simulator once did, left about one
 * signature in a thousand unchanged — a "bad signature" click the server rightly counted as valid.)
 */
export function tamperedSignature(sig: string): string {
  if (sig.length === 0) return 'A';
  return (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
}

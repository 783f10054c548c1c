// What the click process itself saw of a step: its redirect latency (from the request's arrival to
// its answer), and the two waits inside it, Redis's first-click check and the click log's Kafka ack,
// read from its Prometheus histograms before and after the step's steady part. Beside the load
// generator's p50/p99 they say where a slow 302 waited: inside the click process (its checks, or an
// event loop whose turns are long because the cores are full), or outside it (the kernel's sockets,
// the load generator's own scheduling). Pure functions over /metrics text, no I/O.

/** One Prometheus histogram (all label sets but `le` summed): cumulative bucket counts by bound. */
export interface Histogram {
  /** [upper bound in seconds, cumulative count], by ascending bound; the last bound is Infinity. */
  buckets: Array<[number, number]>;
  sum: number;
  count: number;
}

const SAMPLE = /^(\w+?)(_bucket|_sum|_count)(\{[^}]*\})? ([\d.e+-]+|NaN)$/;

/** The histogram `name` of a /metrics text, summed over the series whose labels include `label`. */
export function histogramOf(text: string, name: string, label?: string): Histogram | undefined {
  const bounds = new Map<number, number>();
  let sum = 0;
  let count = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = SAMPLE.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = m[3] ?? '';
    if (label && !labels.includes(label)) continue;
    const value = Number(m[4]);
    seen = true;
    if (m[2] === '_sum') sum += value;
    else if (m[2] === '_count') count += value;
    else {
      const le = /le="([^"]+)"/.exec(labels)?.[1];
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Infinity : Number(le);
      bounds.set(bound, (bounds.get(bound) ?? 0) + value);
    }
  }
  if (!seen) return undefined;
  return { buckets: [...bounds.entries()].sort((a, b) => a[0] - b[0]), sum, count };
}

/** What was observed between two readings of one histogram (`before` undefined: since the start). */
export function histogramDelta(after: Histogram, before: Histogram | undefined): Histogram {
  const was = new Map(before?.buckets ?? []);
  return {
    buckets: after.buckets.map(([bound, n]) => [bound, n - (was.get(bound) ?? 0)]),
    sum: after.sum - (before?.sum ?? 0),
    count: after.count - (before?.count ?? 0),
  };
}

/**
 * The upper bound (seconds) of the bucket that holds the q-quantile: the true quantile is at most
 * this and above the bucket below. Infinity when it lies past the last finite bound; NaN if empty.
 */
export function quantileBound(h: Histogram, q: number): number {
  if (h.count <= 0) return NaN;
  const rank = q * h.count;
  for (const [bound, n] of h.buckets) if (n >= rank) return bound;
  return Infinity;
}

export const meanOf = (h: Histogram): number => (h.count > 0 ? h.sum / h.count : NaN);

/** The click process's own view of a step, in milliseconds. */
export interface ClickStages {
  redirects: number;
  /** Mean, and the bucket bounds holding p50 and p99, of the redirect as the click process timed it. */
  meanMs: number;
  p50AtMostMs: number;
  p99AtMostMs: number;
  /** Mean waits for Redis's first-click check and for the click log's Kafka ack. */
  redisMeanMs: number;
  kafkaMeanMs: number;
}

const REDIRECT = 'adclick_click_redirect_seconds';
const REDIS = 'adclick_click_dedup_seconds';
const KAFKA = 'adclick_click_produce_seconds';

/** The click process's stages between two /metrics texts of the same process (undefined: not served). */
export function clickStagesBetween(before: string, after: string): ClickStages | undefined {
  const between = (name: string, label?: string): Histogram | undefined => {
    const h = histogramOf(after, name, label);
    return h && histogramDelta(h, histogramOf(before, name, label));
  };
  const redirect = between(REDIRECT);
  if (!redirect || redirect.count <= 0) return undefined;
  const ms = (s: number) => s * 1000;
  const redis = between(REDIS);
  const kafka = between(KAFKA, 'destination="kafka"');
  return {
    redirects: redirect.count,
    meanMs: ms(meanOf(redirect)),
    p50AtMostMs: ms(quantileBound(redirect, 0.5)),
    p99AtMostMs: ms(quantileBound(redirect, 0.99)),
    redisMeanMs: redis ? ms(meanOf(redis)) : NaN,
    kafkaMeanMs: kafka ? ms(meanOf(kafka)) : NaN,
  };
}

/** "mean 61 ms, p50 ≤ 100, p99 ≤ 250; Redis 35, Kafka 23" (ms). */
export function formatStages(s: ClickStages | undefined): string {
  if (!s) return 'not served';
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(x < 10 ? 1 : 0) : x === Infinity ? '∞' : '-');
  return `mean ${f(s.meanMs)} ms, p50 ≤ ${f(s.p50AtMostMs)}, p99 ≤ ${f(s.p99AtMostMs)}; waits: Redis ${f(s.redisMeanMs)}, Kafka ${f(s.kafkaMeanMs)}`;
}

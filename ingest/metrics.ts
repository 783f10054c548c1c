// The click path's Prometheus metrics, registered on the process registry (common/metrics.ts).
// Under node:cluster each worker keeps its own values; /metrics sums them across workers. The metrics
// touched per click are FastHistograms and FastCounters (common/fast-metrics.ts): prom-client's cost
// 3.7 % of the click process.
import { Counter, Gauge } from 'prom-client';
import { FastCounter, FastHistogram } from '../common/fast-metrics.js';
import { registry } from '../common/metrics.js';

export type ClickOutcome = 'valid' | 'duplicate' | 'bad_signature' | 'expired' | 'unknown_ad' | 'malformed';

export interface ClickMetrics {
  clicks: FastCounter<'outcome'>;
  /** Answers of the click route by HTTP status: 302, and the 4xx/5xx a person did not get redirected by. */
  responses: FastCounter<'code'>;
  /** Time from a click request's arrival to its 302 (Redis, the log, and any catalogue fallback). */
  redirectSeconds: FastHistogram;
  /** Time from a click event's hand-off to the log until it is in Kafka or in the spool. */
  produceSeconds: FastHistogram<'destination'>;
  /** Time a click waits for Redis's first-click check (a fail-open counts its deadline). */
  dedupSeconds: FastHistogram;
  spoolDepth: Gauge;
  spoolBytes: Gauge;
  redisFailOpen: FastCounter;
  /** 1 while the first-click check's circuit breaker is open (Redis missed its deadline repeatedly). */
  redisBreakerOpen: Gauge;
  adCache: FastCounter<'result'>;
  /** Spooled records that passed their CRC but are no click event, moved to `<spool>.poison`. */
  spoolPoison: Counter;
  /** Damaged spool bytes that replay skipped (resynchronising to the next valid record). */
  spoolCorruptBytes: Counter;
}

/** Spools of this process report their backlog here; the spool gauges sum them when scraped. */
export const spoolSources = new Set<() => { depth: number; bytes: number }>();
const sumSpools = (k: 'depth' | 'bytes'): number => {
  let total = 0;
  for (const s of spoolSources) total += s()[k];
  return total;
};

function getOrCreate<T>(name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** The metrics, created once per process (safe to call again, e.g. from several tests). */
// eslint-disable-next-line max-lines-per-function -- a table of metric definitions (name, help, labels) an operator reads against the alerts (docs/architecture.md, sizes kept on purpose)
export function clickMetrics(): ClickMetrics {
  return {
    clicks: getOrCreate(
      'adclick_clicks_total',
      () =>
        new FastCounter({
          name: 'adclick_clicks_total',
          help: 'Click requests by outcome (valid/duplicate/bad_signature/expired are logged; unknown_ad/malformed are not)',
          labelNames: ['outcome'],
          registers: [registry],
        }),
    ),
    responses: getOrCreate(
      'adclick_click_responses_total',
      () =>
        new FastCounter({
          name: 'adclick_click_responses_total',
          help: 'Answers of GET /c/:adId by HTTP status code (302 = redirected)',
          labelNames: ['code'],
          registers: [registry],
        }),
    ),
    redirectSeconds: getOrCreate(
      'adclick_click_redirect_seconds',
      () =>
        new FastHistogram({
          name: 'adclick_click_redirect_seconds',
          help: "Time from a click request's arrival to its 302 (DESIGN: p99 <= 25 ms)",
          buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
          registers: [registry],
        }),
    ),
    produceSeconds: getOrCreate(
      'adclick_click_produce_seconds',
      () =>
        new FastHistogram({
          name: 'adclick_click_produce_seconds',
          help: 'Time until a click event is acked by Kafka or fsynced to the spool',
          labelNames: ['destination'],
          buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
          registers: [registry],
        }),
    ),
    dedupSeconds: getOrCreate(
      'adclick_click_dedup_seconds',
      () =>
        new FastHistogram({
          name: 'adclick_click_dedup_seconds',
          help: "Time a click waits for Redis's first-click check (its batch's round trip; a fail-open takes ADCLICK_REDIS_DEADLINE_MS)",
          buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
          registers: [registry],
        }),
    ),
    spoolDepth: getOrCreate(
      'adclick_spool_depth',
      () =>
        new Gauge({
          name: 'adclick_spool_depth',
          help: 'Click events in the spool waiting to be replayed into Kafka',
          registers: [registry],
          collect() {
            this.set(sumSpools('depth'));
          },
        }),
    ),
    spoolBytes: getOrCreate(
      'adclick_spool_bytes',
      () =>
        new Gauge({
          name: 'adclick_spool_bytes',
          help: 'Bytes of the spool not yet replayed into Kafka',
          registers: [registry],
          collect() {
            this.set(sumSpools('bytes'));
          },
        }),
    ),
    redisFailOpen: getOrCreate(
      'adclick_redis_fail_open_total',
      () =>
        new FastCounter({
          name: 'adclick_redis_fail_open_total',
          help: 'Clicks let through as valid because Redis did not answer the dedup check in time (the batch layer dedups them)',
          registers: [registry],
        }),
    ),
    redisBreakerOpen: getOrCreate(
      'adclick_redis_breaker_open',
      () =>
        new Gauge({
          name: 'adclick_redis_breaker_open',
          help: 'Click workers whose first-click check fails open at once: Redis missed its deadline on consecutive checks; a probe a second tries it again',
          registers: [registry],
        }),
    ),
    adCache: getOrCreate(
      'adclick_ad_cache_total',
      () =>
        new FastCounter({
          name: 'adclick_ad_cache_total',
          help: 'Ad lookups of the click path: hit (in the replica, or found by the fallback), negative_hit (unknown to the replica: 404 without PostgreSQL, or a fallback), miss (PostgreSQL asked for a signed click)',
          labelNames: ['result'],
          registers: [registry],
        }),
    ),
    spoolPoison: getOrCreate(
      'adclick_spool_poison_records_total',
      () =>
        new Counter({
          name: 'adclick_spool_poison_records_total',
          help: 'Spooled records that could not be decoded as click events, moved aside to <spool>.poison (look there)',
          registers: [registry],
        }),
    ),
    spoolCorruptBytes: getOrCreate(
      'adclick_spool_corrupt_bytes_total',
      () =>
        new Counter({
          name: 'adclick_spool_corrupt_bytes_total',
          help: 'Damaged spool bytes (failed CRC or framing) skipped by replay; the records in them are lost',
          registers: [registry],
        }),
    ),
  };
}

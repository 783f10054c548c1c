// First-click detection: `SET dedup:<impressionId> 1 PX <remaining lifetime> NX` in Redis. If Redis
// does not answer within the deadline (down, slow, unreachable) the click fails open: it is logged
// as valid and counted in /metrics, and the batch layer's exact dedup by impression id fixes the
// authoritative count. `forget` has the same deadline; past it the key is left behind (see below).
// A Redis that keeps missing the deadline (hung, or slow behind a bad link) opens a circuit breaker
// (cockatiel): the checks fail open at once instead of each waiting out the deadline, and one batch a
// second probes whether Redis answers again. Without it, every click of a hung Redis pays the whole
// deadline, which alone is twice DESIGN's 25 ms p99.
// Before the breaker opens, a stall costs the clicks of one deadline, not of every batch until then:
// Redis answers one connection's commands in order, so once a batch has missed its deadline nothing
// sent after it can be answered sooner. The batches behind it, and those sent while it is still
// unanswered, wait STALLED_WAIT_MS more (a stall that ends at once still answers them), then fail
// open; their commands still go out (they set their keys, and their answers tell the breaker and this
// check when Redis keeps up again). The breaker's probes fail their clicks open at once.
import {
  BrokenCircuitError,
  CircuitState,
  circuitBreaker,
  handleAll,
  type CircuitBreakerPolicy,
  type IBreaker,
} from 'cockatiel';
import type { Redis } from 'ioredis';
import { createRedis } from '../common/redis.js';
import { deadlineTimer, waitFor } from '../common/wait.js';

export type DedupAnswer = 'first' | 'duplicate' | 'unavailable';

export interface DedupStore {
  firstClick(impressionId: string, ttlMs: number): Promise<DedupAnswer>;
  /**
   * Undoes a `first` answer whose click could not be logged (503: the person was not redirected), so
   * the retry is the first click again. Best effort: a key left behind only makes the provisional
   * count miss that click; the batch layer counts it anyway (it does not trust Redis's verdict).
   */
  forget(impressionId: string): Promise<void>;
}

// One round trip and one command for every first-click check of an event-loop turn (or of a short
// window, `batchMs`): per-command client overhead and the socket write, not Redis, are what a click
// pays for. Same semantics as one SET NX per key.
// (A Redis Cluster would need the keys of one call in one slot: hash-tag them, or send per key.)
const SET_MANY = `
local r = {}
for i, k in ipairs(KEYS) do
  r[i] = redis.call('SET', k, '1', 'PX', ARGV[i], 'NX') and 1 or 0
end
return r`;

/** A Redis client for the click path: no offline queue, auto-pipelined (one write per tick). */
export function createClickRedis(url: string): Redis {
  const redis = createRedis(url, { autoPipelining: true }); // errors are answered per command: fail open
  // Load the first-click script on every (re)connect, so no click pays the NOSCRIPT round trip.
  redis.on('ready', () => void redis.script('LOAD', SET_MANY).catch(() => undefined));
  redis.connect().catch(() => undefined);
  return redis;
}

/**
 * Resolves true once `redis` is connected and its first-click script is loaded, false after
 * `timeoutMs`. A click service waits for this before it listens, so its first clicks are not
 * failed open only because the connection was still being made; it starts anyway when Redis is down.
 */
export function redisReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  return waitFor(
    'Redis to load the dedup script',
    // SCRIPT LOAD is idempotent: loading it here too means "ready" cannot race the 'ready' handler.
    async () => redis.status === 'ready' && (await redis.script('LOAD', SET_MANY)) !== undefined,
    timeoutMs,
    20,
  ).then(
    () => true,
    () => false,
  );
}

type SetMany = (keys: number, ...args: string[]) => Promise<number[]>;

interface Check {
  key: string;
  ttlMs: string;
  resolve: (a: DedupAnswer) => void;
}

/** The checks sent in one call, answered together: by Redis, or as unavailable at the deadline. */
interface CheckBatch {
  checks: Check[];
  /** The deadline, set when the batch is sent. */
  timer: NodeJS.Timeout | undefined;
  /** Its outcome is known: Redis answered in time, or the deadline passed (or the call failed). */
  settled: boolean;
  /** The deadline passed (or the call failed) before Redis answered. */
  missed: boolean;
  /** Fails the batch's call in the breaker when the deadline passes before Redis answers. */
  onDeadline?: () => void;
  /** Fails its checks open soon: it waits behind a batch that missed (releaseSoon). */
  release?: NodeJS.Timeout;
}

export interface DedupBreakerOptions {
  /** Batches that missed the deadline or failed, with no answered one between them, before it opens… */
  failures: number;
  /** …and for how long at least they kept missing (ms), from the first of them. */
  spanMs: number;
  /** How long the breaker stays open before one batch probes Redis again. */
  halfOpenAfterMs: number;
  /** Told when the breaker opens (true) and closes again (false). */
  onOpen?: (open: boolean) => void;
}

export const DEFAULT_DEDUP_BREAKER: DedupBreakerOptions = { failures: 3, spanMs: 200, halfOpenAfterMs: 1000 };

/**
 * Opens once the checks have kept missing for a while, not on a burst: at least `failures` missed
 * batches with no answered one between them, the first at least `spanMs` before the last. A loaded
 * click process sends a batch about every millisecond, so one short stall of Redis or of the machine
 * makes the dozens of batches in flight miss together; a breaker that opened after 3 misses in a row
 * did so on each stall and failed every check open for the next second (21 times in one minute of the
 * system bench at 5,000 clicks/s: a third of the valid clicks went unchecked). A hung Redis opens it
 * after `spanMs` plus one deadline.
 */
export class SustainedMissBreaker implements IBreaker {
  state = { misses: 0, since: 0 };

  constructor(
    private readonly failures: number,
    private readonly spanMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  success(): void {
    this.state = { misses: 0, since: 0 };
  }

  failure(): boolean {
    const now = this.now();
    if (this.state.misses === 0) this.state.since = now;
    this.state.misses++;
    return this.state.misses >= this.failures && now - this.state.since >= this.spanMs;
  }
}

/**
 * How long a batch waits behind one that missed its deadline before its checks fail open: a stall
 * that ends at once (a busy moment of Redis or of the machine) still answers it, and a hang costs
 * its clicks this much, well inside DESIGN's 25 ms.
 */
export const STALLED_WAIT_MS = 10;

/** Answers a batch's checks as unavailable now; its command and its deadline go on. */
function release(batch: CheckBatch): void {
  for (const c of batch.checks) c.resolve('unavailable'); // a later answer is then a no-op
}

/** Releases the batch in STALLED_WAIT_MS unless Redis has answered it by then. */
function releaseSoon(batch: CheckBatch): void {
  if (batch.settled || batch.release) return;
  batch.release = deadlineTimer(STALLED_WAIT_MS, () => release(batch));
}

/**
 * The batches whose command has not come back yet (answer, error, or the client's command timeout),
 * in the order they were sent: the order in which Redis answers them on its one connection.
 */
class InFlightBatches {
  private readonly batches = new Set<CheckBatch>();

  add(batch: CheckBatch): void {
    this.batches.add(batch);
  }

  delete(batch: CheckBatch): void {
    this.batches.delete(batch);
  }

  /** The oldest command in flight missed its deadline: a batch sent now cannot be answered sooner. */
  stalled(): boolean {
    const oldest = this.batches.values().next();
    return !oldest.done && oldest.value.missed;
  }

  releaseAllSoon(): void {
    for (const b of this.batches) releaseSoon(b);
  }
}

/** The breaker over Redis's first-click checks; `onOpen` is told once per outage. */
function dedupBreaker(options: DedupBreakerOptions): CircuitBreakerPolicy {
  const breaker = circuitBreaker(handleAll, {
    halfOpenAfter: options.halfOpenAfterMs,
    breaker: new SustainedMissBreaker(options.failures, options.spanMs),
  });
  // A failed probe (half-open → open) is not a new outage.
  let wasOpen = false;
  breaker.onStateChange((s) => {
    if (s === CircuitState.HalfOpen || (s === CircuitState.Open) === wasOpen) return;
    wasOpen = s === CircuitState.Open;
    options.onOpen?.(wasOpen);
  });
  return breaker;
}

/**
 * `batchMs`: 0 sends the checks of each event-loop turn together (setImmediate); more gathers the
 * checks of that many ms into one call, fewer round trips for at most that much more latency. The
 * deadline runs from the batch's send: one timer per batch, not one per click; an answer already in
 * when it passes wins (deadlineTimer: a busy click process must not fail a fast Redis open).
 */
export function redisDedup(
  redis: Redis,
  deadlineMs: number,
  batchMs = 0,
  breakerOptions: DedupBreakerOptions = DEFAULT_DEDUP_BREAKER,
): DedupStore {
  if (!('adclickSetMany' in redis)) redis.defineCommand('adclickSetMany', { lua: SET_MANY });
  const setMany = (redis as unknown as { adclickSetMany: SetMany }).adclickSetMany.bind(redis);
  const breaker = dedupBreaker(breakerOptions);
  let open: CheckBatch | undefined;
  const inFlight = new InFlightBatches();

  function settle(batch: CheckBatch, answers: number[] | undefined, rejected = false): void {
    if (batch.settled) return; // a late answer after the deadline, or the deadline after the answer
    if (answers === undefined && !rejected) {
      batch.onDeadline?.(); // count the miss in the breaker
      batch.missed = true;
      // Every batch still in flight was sent after this one (earlier ones missed first) and waits
      // behind it on the connection.
      inFlight.releaseAllSoon();
    }
    batch.settled = true;
    clearTimeout(batch.timer);
    clearTimeout(batch.release);
    batch.checks.forEach((c, i) =>
      c.resolve(answers === undefined ? 'unavailable' : answers[i] === 1 ? 'first' : 'duplicate'),
    );
  }

  function send(): void {
    const batch = open!;
    open = undefined;
    const { checks } = batch;
    // The breaker sees the batch fail at the deadline, not only when Redis errors: a hung Redis
    // never errors. While another batch is probing it (cockatiel would hold this batch until the
    // probe ends, up to a deadline), the batch fails open at once without asking.
    if (breaker.state === CircuitState.HalfOpen) return settle(batch, undefined, true);
    // No click waits for a probe of an open breaker (nor for a batch refused by it), and behind a
    // batch that has already missed its deadline only a moment.
    if (breaker.state === CircuitState.Open) release(batch);
    else if (inFlight.stalled()) releaseSoon(batch);
    // From the send, not from the first check: a loop busy for longer than the deadline before the
    // send (a loaded process) would otherwise expire it before the command is even written, and fail
    // open every check of that batch without asking Redis.
    batch.timer = deadlineTimer(deadlineMs, () => settle(batch, undefined));
    breaker
      .execute(
        () =>
          new Promise<number[]>((resolve, reject) => {
            batch.onDeadline = () => reject(new Error('Redis missed the dedup deadline'));
            inFlight.add(batch);
            setMany(checks.length, ...checks.map((c) => c.key), ...checks.map((c) => c.ttlMs))
              .then(resolve, reject)
              .finally(() => inFlight.delete(batch));
          }),
      )
      .then(
        (r) => settle(batch, r),
        (e: unknown) => settle(batch, undefined, e instanceof BrokenCircuitError),
      );
  }

  return {
    firstClick(impressionId, ttlMs) {
      return new Promise<DedupAnswer>((resolve) => {
        if (!open) {
          open = { checks: [], settled: false, missed: false, timer: undefined };
          if (batchMs > 0) setTimeout(send, batchMs);
          else setImmediate(send);
        }
        open.checks.push({
          key: `dedup:${impressionId}`,
          ttlMs: String(Math.max(1, Math.ceil(ttlMs))),
          resolve,
        });
      });
    },
    // Under the same deadline as the check: a hung Redis must not hold the 503 it precedes.
    async forget(impressionId) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        redis.del(`dedup:${impressionId}`).catch(() => undefined),
        new Promise<void>((resolve) => (timer = deadlineTimer(deadlineMs, resolve))),
      ]);
      clearTimeout(timer);
    },
  };
}

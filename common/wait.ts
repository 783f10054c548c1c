// Waiting, one way for the whole repository (product, stack scripts, tests): `sleep`, `waitFor` (poll
// until a check gives a value, within a bound), `withDeadline` (a bound on one call) and `backoffDelay`
// (how long a retry loop waits before its next attempt). Retry loops that run until they succeed are `keepTrying` (common/startup.ts).
import { setTimeout as timer } from 'node:timers/promises';

/** Resolves after `ms`; at once when `signal` aborts (a stopping loop then sees that it is stopped). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return timer(ms, undefined, { signal }).catch((e: unknown) => {
    if (signal?.aborted) return;
    throw e;
  });
}

/**
 * Polls `check` every `everyMs` until it gives a truthy value, and resolves with that value. A check
 * that throws counts as "not yet"; past `timeoutMs` the promise rejects, naming `what` and the last
 * error. The check runs at least once, also with a zero timeout.
 */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs = 60_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const why =
        lastError === undefined ? '' : ` (last error: ${(lastError as Error)?.message ?? lastError})`;
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${why}`);
    }
    await sleep(Math.max(0, Math.min(everyMs, deadline - Date.now())));
  }
}

/**
 * A timer for a deadline on an answer: `onExpire` runs `ms` after now, but one step of the event loop
 * after the timer fires (setImmediate), once the loop has handled the I/O already in. A loop that is
 * late by more than the deadline (a busy process) runs its expired timers before the poll phase reads
 * its sockets, so without the step an answer that came back in 1 ms while the loop was busy would be
 * judged late. Clearing the timer before it fires cancels it; `onExpire` must be harmless after the
 * answer (a settled promise, a settled flag).
 */
export function deadlineTimer(ms: number, onExpire: () => void): NodeJS.Timeout {
  return setTimeout(() => setImmediate(onExpire), ms);
}

/**
 * `work`, or a rejection with `message` if it has not settled within `ms` (the work itself is not
 * cancelled: a caller that must stop it too aborts it on that rejection). An answer already in when
 * the deadline passes wins (deadlineTimer).
 */
export function withDeadline<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = deadlineTimer(ms, () => reject(new Error(message)));
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/**
 * The wait before retry number `attempt` (1 for the first retry): `firstMs`, doubling each time, at
 * most `maxMs`. Exponential backoff keeps a dependency that is down from being hammered and one that
 * is back from being waited for long.
 */
export function backoffDelay(attempt: number, opts: { firstMs: number; maxMs: number }): number {
  return Math.min(opts.maxMs, opts.firstMs * 2 ** Math.max(0, attempt - 1));
}

// Restart with backoff, for the supervisors that restart a process that died (apps/click.ts restarts
// its workers, stack/app.ts the app's processes): one that ran for a while gets a fresh backoff, one
// that keeps dying (a taken port, a bad config) waits longer each time, up to a cap, instead of
// spinning a core.
export interface RestartBackoffOptions {
  /** The delay before the first restart; it doubles with each restart that follows a short run. */
  baseMs: number;
  /** The longest delay (default 30 s). */
  maxMs?: number;
  /** A process that ran longer than this before it died starts again from `baseMs` (default 60 s). */
  healthyAfterMs?: number;
}

/** The restart delays of one supervised process. */
export class RestartBackoff {
  private restarts = 0;

  constructor(private readonly opts: RestartBackoffOptions) {}

  /** The delay before restarting the process, which died after running for `ranMs`. */
  next(ranMs: number): number {
    if (ranMs > (this.opts.healthyAfterMs ?? 60_000)) this.restarts = 0;
    return backoffDelay(++this.restarts, { firstMs: this.opts.baseMs, maxMs: this.opts.maxMs ?? 30_000 });
  }
}

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
    return Math.min(this.opts.maxMs ?? 30_000, this.opts.baseMs * 2 ** this.restarts++);
  }
}

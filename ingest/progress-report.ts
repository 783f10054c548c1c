// How far this click process's clicks are in Kafka, told to the batch layer every few seconds: "every
// click I stamped before `logged_before` is acknowledged by Kafka" (nothing older is buffered, in
// flight or in my spool). An hour is finalized only once every live click process says so for the
// hour's end (batch-layer/completeness.ts, docs/completeness.md). One row per spool, on the click
// topic it feeds; the database's clock stamps the report, so the batch layer measures silence on it.
import type pg from 'pg';

export interface ProgressReporterOptions {
  pool: pg.Pool;
  /** Stable for the spool this process owns: `<host>:<spool path>`. */
  processId: string;
  topic: string;
  clickLog: { oldestUnlogged(): number | undefined; readonly spoolDepth: number };
  /** The click path's clock (the one events are stamped with). */
  clock: () => number;
  intervalMs: number;
  /**
   * How long a click may take from being stamped to being handed to the log (the Redis dedup deadline
   * and scheduling): a report never claims the last `marginMs` as logged.
   */
  marginMs: number;
  log?: (message: string) => void;
}

export interface ProgressReporter {
  /** Writes one report now (also what the timer does). */
  report(): Promise<void>;
  /** Stops the timer after a last report. */
  stop(): Promise<void>;
}

/** What a report claims: the oldest un-logged click's ts, or now less the margin, whichever is older. */
export function loggedBefore(oldestUnlogged: number | undefined, now: number, marginMs: number): number {
  return Math.min(oldestUnlogged ?? Infinity, now - marginMs);
}

export function startProgressReports(opts: ProgressReporterOptions): ProgressReporter {
  let failing = false;
  const report = async (): Promise<void> => {
    const before = loggedBefore(opts.clickLog.oldestUnlogged(), opts.clock(), opts.marginMs);
    try {
      await opts.pool.query(
        `insert into click_process_reports (process_id, topic, reported_at, logged_before, spool_depth)
         values ($1, $2, now(), $3, $4)
         on conflict (process_id) do update set topic = excluded.topic, reported_at = now(),
           logged_before = excluded.logged_before, spool_depth = excluded.spool_depth`,
        [opts.processId, opts.topic, new Date(Math.max(0, before)), opts.clickLog.spoolDepth],
      );
      if (failing) opts.log?.('progress reports reach PostgreSQL again');
      failing = false;
    } catch (e) {
      // Silence is safe: past the bound the batch layer stops waiting and the late path takes over.
      if (!failing) opts.log?.(`cannot write the progress report (retried): ${(e as Error).message}`);
      failing = true;
    }
  };
  let running: Promise<void> = report();
  const timer = setInterval(() => {
    running = running.then(report);
  }, opts.intervalMs);
  timer.unref();
  return {
    report: () => (running = running.then(report)),
    stop: async () => {
      clearInterval(timer);
      await (running = running.then(report));
    },
  };
}

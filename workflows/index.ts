// Batch workflows: deterministic orchestration only (no S3, Kafka or SQL here — see activities/).
//   compactHour({hour})          wait until the hour is complete (docs/completeness.md), then compact it
//   compactDay({date})           re-compact the 24 hours of a day, then reconcile with the speed layer
//   backfill({from, to, parallelism?})  compactHour for every hour in [from, to) as child workflows
//   finalizeLateHours({})        the late path: finalize again every hour that got raw files after its
//                                last compaction, and the later hours whose dedup that changes
//   sweepHours({})               no hour left behind: compactHour for every hour in the raw-data
//                                retention never finalized, or whose compaction failed since
//   applyRetention({})           the retention tiers: create the count tables' upcoming partitions,
//                                drop expired ones, delete raw Parquet past the raw retention
// Started by a schedule with no input, compactHour/compactDay take their window from the schedule's
// nominal time (TemporalScheduledStartTime): schedule arguments are fixed when the schedule is made.
import {
  ApplicationFailure,
  ParentClosePolicy,
  defineQuery,
  executeChild,
  log,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import {
  SearchAttributeType,
  WorkflowExecutionAlreadyStartedError,
  defineSearchAttributeKey,
} from '@temporalio/common';
import type {
  BatchActivities,
  CompactHourResult,
  Offsets,
  PartitionRetentionResult,
  RawRetentionResult,
  ReconciliationReport,
} from '../activities/index.js';
import {
  backfillHours,
  dateOf,
  dayBeforeNominal,
  hourBeforeNominal,
  hourIso,
  hoursOfDay,
  parseDate,
  parseHour,
} from '../common/time.js';
import { compactHourId } from '../common/workflow-ids.js';

const { hourComplete, lateHours, hoursToSweep, recordHourFailure } = proxyActivities<BatchActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

const { compactHourCounts } = proxyActivities<BatchActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 20,
  },
});

const retention = proxyActivities<BatchActivities>({
  startToCloseTimeout: '30 minutes',
  retry: {
    initialInterval: '10 seconds',
    backoffCoefficient: 2,
    maximumInterval: '5 minutes',
    maximumAttempts: 5,
  },
});

const { reconcileDay } = proxyActivities<BatchActivities>({
  startToCloseTimeout: '10 minutes',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '2 minutes',
    maximumAttempts: 10,
  },
});

const scheduledStartKey = defineSearchAttributeKey(
  'TemporalScheduledStartTime',
  SearchAttributeType.DATETIME,
);

/** The schedule's nominal start time of this run; fails clearly when started by hand without a window. */
function nominalStart(what: string): number {
  const at = workflowInfo().typedSearchAttributes.get(scheduledStartKey);
  if (!at) {
    throw ApplicationFailure.nonRetryable(
      `${what} needs its window in the input when not started by a schedule`,
    );
  }
  return at.getTime();
}

export interface CompactHourInput {
  /** ISO, hour-aligned, e.g. "2026-11-27T10:00:00Z". Omitted when started by the hourly schedule. */
  hour?: string;
  /** How long to wait for the hour to be complete before giving up (default 180 min). */
  maxWatermarkWaitMinutes?: number;
  /** Between two completeness checks (default 30 s). */
  watermarkPollSeconds?: number;
}

/** The failure type of a compaction that gave up waiting for completeness (not an error). */
const NOT_COMPLETE = 'NotComplete';

/** The failure type refusing a compaction whose raw inputs are gone (past the raw cutoff). */
const RAW_INPUTS_GONE = 'RawInputsGone';

/** The innermost failure's type and message, through activity and child workflow failures. */
function rootFailure(e: unknown): { type?: string; message: string } {
  let type: string | undefined;
  let message = (e as Error).message;
  for (
    let f = e as { type?: string; message?: string; cause?: unknown } | undefined;
    f;
    f = f.cause as typeof f
  ) {
    if (f.type) type = f.type;
    if (f.message) message = f.message;
  }
  return { type, message };
}

/**
 * Waits, bounded, until every click of the hour is in the raw archive: archive watermarks, the click
 * processes' reports, then the archiver's offsets (activities: hourComplete). What it waits for is
 * in the workflow's memo, so the Web UI shows why an hour is not final yet.
 */
async function awaitComplete(hourStart: number, maxWaitMinutes: number, pollSeconds: number): Promise<void> {
  const deadline = Date.now() + maxWaitMinutes * 60_000; // workflow time: deterministic
  let target: Offsets | undefined;
  let shown: string | undefined;
  for (;;) {
    const answer = await hourComplete(hourIso(hourStart), target);
    if (answer.complete) {
      if (shown !== undefined) upsertMemo({ waitingFor: null });
      return;
    }
    target = answer.target;
    if (answer.waitingFor !== shown) {
      upsertMemo({ waitingFor: (shown = answer.waitingFor) });
      // `waiting` in GET /v1/admin/hours, with what for: waiting is not failing. (Patched: runs
      // waiting since before this release replay without the call.)
      if (patched('issue-24-waiting-state'))
        await recordHourFailure(hourIso(hourStart), answer.waitingFor, 'waiting');
    }
    if (Date.now() >= deadline) {
      throw ApplicationFailure.nonRetryable(
        `${answer.waitingFor} (gave up after ${maxWaitMinutes} min; the sweep starts the hour again)`,
        NOT_COMPLETE,
      );
    }
    await sleep(pollSeconds * 1000);
  }
}

export async function compactHour(input: CompactHourInput = {}): Promise<CompactHourResult> {
  const hourStart = input.hour ? parseHour(input.hour) : hourBeforeNominal(nominalStart('compactHour'));
  try {
    await awaitComplete(hourStart, input.maxWatermarkWaitMinutes ?? 180, input.watermarkPollSeconds ?? 30);
    const result = await compactHourCounts(hourIso(hourStart));
    log.info(result.changed ? 'hour finalized' : 'hour finalized again, numbers unchanged', { ...result });
    return result;
  } catch (e) {
    // Never silent: `waiting` (it gave up waiting for completeness) or `failed` (an error, or a
    // refusal: the raw files are past the cutoff) in GET /v1/admin/hours; the sweep starts it again.
    const root = rootFailure(e);
    await recordHourFailure(
      hourIso(hourStart),
      root.message,
      root.type === NOT_COMPLETE ? 'waiting' : 'failed',
    );
    // Refused: the workflow fails with the refusal's own reason (it names the raw cutoff).
    if (root.type === RAW_INPUTS_GONE) throw ApplicationFailure.nonRetryable(root.message, RAW_INPUTS_GONE);
    throw e;
  }
}

/** A day's reconciliation is tried this many times, 15 minutes apart. */
const RECONCILE_ATTEMPTS = 96;

export interface CompactDayInput {
  /** YYYY-MM-DD (UTC). Omitted when started by the daily schedule. */
  date?: string;
  /** Hours compacted at once (default 2). */
  parallelism?: number;
}

export interface CompactDayResult {
  date: string;
  hours: CompactHourResult[];
  reconciliation: ReconciliationReport;
}

/** Runs `work` over `items` with at most `parallelism` in flight, keeping results in input order. */
async function boundedMap<T, R>(
  items: readonly T[],
  parallelism: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallelism, items.length)) }, lane));
  return results;
}

export async function compactDay(input: CompactDayInput = {}): Promise<CompactDayResult> {
  const dayStart = input.date ? parseDate(input.date) : dayBeforeNominal(nominalStart('compactDay'));
  const date = dateOf(dayStart);
  const hours = hoursOfDay(dayStart);
  await awaitComplete(hours[hours.length - 1]!, 180, 30);
  // Every hour is recounted against the seen-ids of the hours before it, so late files that landed
  // after an hour's first compaction are now counted exactly once across the day.
  const results = await boundedMap(hours, input.parallelism ?? 2, (h) => compactHourCounts(hourIso(h)));
  // A failed reconciliation (the speed layer down for longer than the activity's retries) is tried
  // again every 15 minutes for a day; the memo says why it waits.
  let reconciliation: ReconciliationReport | undefined;
  for (let attempt = 1; !reconciliation; attempt++) {
    try {
      reconciliation = await reconcileDay(date);
    } catch (e) {
      if (attempt >= RECONCILE_ATTEMPTS) throw e;
      upsertMemo({
        reconciliation: `failed (attempt ${attempt}), retried in 15 min: ${(e as Error).message}`,
      });
      log.warn('reconciliation failed; retried in 15 min', { date, attempt, error: (e as Error).message });
      await sleep('15 minutes');
    }
  }
  upsertMemo({ reconciliation: 'done' });
  log.info('day compacted and reconciled', {
    date,
    batchTotal: reconciliation.batchTotal,
    speedTotal: reconciliation.speedTotal,
    differingAds: reconciliation.differingAds,
  });
  return { date, hours: results, reconciliation };
}

export interface BackfillInput {
  /** ISO hour-aligned, inclusive. */
  from: string;
  /** ISO hour-aligned, exclusive. */
  to: string;
  /** Hours compacted at once (default 2: the worker machine has few cores). */
  parallelism?: number;
}

export interface BackfillProgress {
  total: number;
  done: number;
  running: number;
  failed: number;
  validClicks: number;
  failedHours: string[];
}

export const backfillProgressQuery = defineQuery<BackfillProgress>('progress');

export async function backfill(input: BackfillInput): Promise<BackfillProgress> {
  let hours: number[];
  try {
    hours = backfillHours(input.from, input.to);
  } catch (e) {
    throw ApplicationFailure.nonRetryable((e as Error).message);
  }
  const progress: BackfillProgress = {
    total: hours.length,
    done: 0,
    running: 0,
    failed: 0,
    validClicks: 0,
    failedHours: [],
  };
  setHandler(backfillProgressQuery, () => progress);
  // The memo shows in the Temporal UI's workflow view without running a query.
  const publish = (): void =>
    upsertMemo({ progress: `${progress.done + progress.failed}/${progress.total} hours`, ...progress });
  publish();

  const runHour = async (hourStart: number): Promise<void> => {
    progress.running++;
    publish();
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const r = await executeChild(compactHour, {
            workflowId: compactHourId(hourStart),
            // History is replayed, hardly awaited: an hour not complete within minutes fails, visibly.
            args: [{ hour: hourIso(hourStart), maxWatermarkWaitMinutes: 5, watermarkPollSeconds: 5 }],
            parentClosePolicy: ParentClosePolicy.TERMINATE,
          });
          progress.validClicks += r.validClicks;
          progress.done++;
          return;
        } catch (e) {
          // Another backfill's child of this very hour is in flight (same id): wait for it. A scheduled
          // run of the hour has an id of its own and never collides here.
          if (e instanceof WorkflowExecutionAlreadyStartedError && attempt < 60) {
            await sleep('30 seconds');
            continue;
          }
          throw e;
        }
      }
    } catch (e) {
      progress.failed++;
      progress.failedHours.push(hourIso(hourStart));
      log.warn('hour failed in backfill', { hour: hourIso(hourStart), error: (e as Error).message });
    } finally {
      progress.running--;
      publish();
    }
  };
  await boundedMap(hours, input.parallelism ?? 2, runHour);
  if (progress.failed > 0) {
    throw ApplicationFailure.nonRetryable(
      `backfill ${input.from}..${input.to}: ${progress.failed} of ${progress.total} hours failed: ${progress.failedHours.join(', ')}`,
    );
  }
  return progress;
}

export interface FinalizeLateInput {
  /** Only hours in [from, to) (ISO, hour-aligned); default: every finalized hour. */
  from?: string;
  to?: string;
  /** Most hours taken up in one run (default 48); the rest wait for the next run. */
  maxHours?: number;
}

export interface FinalizeLateResult {
  /** Hours finalized again, in the order they ran, with the revision each ended at. */
  hours: Array<{ hour: string; revision: number; changed: boolean }>;
  /** Hours whose compaction failed (recorded; the next run takes them up again, after the others). */
  failed: Array<{ hour: string; error: string }>;
}

/**
 * The late path (docs/completeness.md), run by its schedule every few minutes. Its queue is durable
 * state, not workflow memory: the finalized hours any of whose inputs (their own raw files, or those
 * of the hours in their lookback) were uploaded after their last compaction listed them
 * (batch-layer/decisions.ts, `staleHours`), read again after each round, so later hours whose dedup
 * a late file changes are found whichever compaction handled the earlier hour. Each is compacted
 * under its own `compact-hour-<hour>` id (never beside a backfill of that hour). A failing hour is
 * recorded and skipped, never holding back the others; it comes last in the next run. Never before
 * the raw cutoff. Idempotent: an hour whose numbers do not change keeps its revision.
 */
export async function finalizeLateHours(input: FinalizeLateInput = {}): Promise<FinalizeLateResult> {
  const budget = input.maxHours ?? 48;
  const taken: string[] = [];
  const result: FinalizeLateResult = { hours: [], failed: [] };
  for (;;) {
    const queue = await lateHours({ from: input.from, to: input.to }, budget - taken.length, taken);
    if (queue.length === 0) break;
    for (const hour of queue) {
      taken.push(hour);
      upsertMemo({ running: hour, done: result.hours.length, failed: result.failed.length });
      try {
        const r = await executeChild(compactHour, {
          workflowId: compactHourId(parseHour(hour)),
          args: [{ hour, maxWatermarkWaitMinutes: 60, watermarkPollSeconds: 10 }],
          parentClosePolicy: ParentClosePolicy.TERMINATE,
        });
        result.hours.push({ hour, revision: r.revision, changed: r.changed });
      } catch (e) {
        // A backfill of this hour is running: it lists S3 after the late file, so it covers it (and
        // if not, the hour is still stale for the next run).
        if (e instanceof WorkflowExecutionAlreadyStartedError) continue;
        result.failed.push({ hour, error: (e as Error).message });
        log.warn('hour failed in the late path; the others go on', { hour, error: (e as Error).message });
      }
    }
    if (taken.length >= budget) break;
  }
  upsertMemo({ running: null, done: result.hours.length, failed: result.failed.length });
  return result;
}

export interface SweepInput {
  /** Only hours in [from, to) (ISO, hour-aligned); default: the raw-data retention up to 2 h ago. */
  from?: string;
  to?: string;
  /** Most hours started by one run (default 48, oldest first); the next run takes the rest. */
  maxHours?: number;
  /** Hours compacted at once (default 2). */
  parallelism?: number;
}

export interface SweepResult {
  hours: string[];
  finalized: string[];
  failed: string[];
}

/**
 * The sweep, run by its schedule every hour: hours the hourly schedule never finalized (a Temporal
 * outage past its catch-up window, a wait that passed its bound, a compaction that failed for good)
 * are compacted again, as `compact-hour-<hour>` (never beside a backfill or the late path of that
 * hour). A failure is recorded by compactHour itself and retried by the next sweep.
 */
export async function sweepHours(input: SweepInput = {}): Promise<SweepResult> {
  const hours = await hoursToSweep({ from: input.from, to: input.to }, input.maxHours ?? 48);
  const result: SweepResult = { hours, finalized: [], failed: [] };
  const publish = (): void =>
    upsertMemo({
      progress: `${result.finalized.length + result.failed.length}/${hours.length} hours`,
      ...result,
    });
  publish();
  await boundedMap(hours, input.parallelism ?? 2, async (hour) => {
    try {
      await executeChild(compactHour, {
        workflowId: compactHourId(parseHour(hour)),
        args: [{ hour, maxWatermarkWaitMinutes: 30, watermarkPollSeconds: 30 }],
        parentClosePolicy: ParentClosePolicy.TERMINATE,
      });
      result.finalized.push(hour);
    } catch (e) {
      if (e instanceof WorkflowExecutionAlreadyStartedError) return; // being compacted right now
      result.failed.push(hour);
      log.warn('hour failed in sweep', { hour, error: (e as Error).message });
    } finally {
      publish();
    }
  });
  return result;
}

export interface RetentionInput {
  /** The clock retention applies at (ISO); default: now. For tests on tables of their own. */
  now?: string;
}

export interface RetentionResult {
  partitions: PartitionRetentionResult;
  raw: RawRetentionResult;
}

/**
 * Retention, run by its schedule every hour: each count tier gets its upcoming partitions and loses
 * the ones wholly past its window (a drop, not a delete), then raw Parquet past the raw retention is
 * deleted. Both steps are idempotent; what changed is in the memo.
 */
export async function applyRetention(input: RetentionInput = {}): Promise<RetentionResult> {
  const partitions = await retention.applyPartitionRetention(input.now);
  upsertMemo({
    created: partitions.created.map((c) => c.partition),
    dropped: partitions.dropped.map((d) => d.partition),
  });
  const raw = await retention.expireRawFiles(input.now);
  upsertMemo({ rawDeletedBefore: raw.before, rawObjects: raw.rawObjects });
  return { partitions, raw };
}

// The hours that need compacting again, found in durable state: the late path (finalizeLateHours)
// and the sweep (sweepHours). Each hour runs as its own `compact-hour-<hour>` child.
import { ParentClosePolicy, executeChild, log, upsertMemo } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { parseHour } from '../common/time.js';
import { compactHourId } from '../common/workflow-ids.js';
import { compactHour } from './compact-hour.js';
import { boundedMap, hoursToSweep, lateHours } from './support.js';

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

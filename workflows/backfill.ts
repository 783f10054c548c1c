// backfill: compactHour for every hour in [from, to) as child workflows, a few at once, with its
// progress in a query and the memo.
import {
  ApplicationFailure,
  ParentClosePolicy,
  defineQuery,
  executeChild,
  log,
  setHandler,
  sleep,
  upsertMemo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { CompactHourResult } from '../activities/index.js';
import { backfillHours, hourIso } from '../common/time.js';
import { compactHourId } from '../common/workflow-ids.js';
import { compactHour } from './compact-hour.js';
import { boundedMap } from './support.js';

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
      const r = await compactChildHour(hourStart);
      progress.validClicks += r.validClicks;
      progress.done++;
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

/**
 * The hour as a child `compact-hour-<hour>`. Another backfill's child of this very hour is in flight
 * (same id): wait for it. A scheduled run of the hour has an id of its own and never collides here.
 */
async function compactChildHour(hourStart: number): Promise<CompactHourResult> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await executeChild(compactHour, {
        workflowId: compactHourId(hourStart),
        // History is replayed, hardly awaited: an hour not complete within minutes fails, visibly.
        args: [{ hour: hourIso(hourStart), maxWatermarkWaitMinutes: 5, watermarkPollSeconds: 5 }],
        parentClosePolicy: ParentClosePolicy.TERMINATE,
      });
    } catch (e) {
      if (e instanceof WorkflowExecutionAlreadyStartedError && attempt < 60) {
        await sleep('30 seconds');
        continue;
      }
      throw e;
    }
  }
}

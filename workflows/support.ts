// What the batch workflows share: the activity stubs with their timeouts and retries, the schedule's
// nominal time, the root of a failure, and a bounded parallel map. Deterministic, like every file here.
import { ApplicationFailure, proxyActivities, workflowInfo } from '@temporalio/workflow';
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import type { BatchActivities } from '../activities/index.js';

export const { hourComplete, lateHours, hoursToSweep, recordHourFailure } = proxyActivities<BatchActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

export const { compactHourCounts } = proxyActivities<BatchActivities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: {
    initialInterval: '2 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 20,
  },
});

export const retention = proxyActivities<BatchActivities>({
  startToCloseTimeout: '30 minutes',
  retry: {
    initialInterval: '10 seconds',
    backoffCoefficient: 2,
    maximumInterval: '5 minutes',
    maximumAttempts: 5,
  },
});

export const { reconcileDay } = proxyActivities<BatchActivities>({
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
export function nominalStart(what: string): number {
  const at = workflowInfo().typedSearchAttributes.get(scheduledStartKey);
  if (!at) {
    throw ApplicationFailure.nonRetryable(
      `${what} needs its window in the input when not started by a schedule`,
    );
  }
  return at.getTime();
}

/** The innermost failure's type and message, through activity and child workflow failures. */
export function rootFailure(e: unknown): { type?: string; message: string } {
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

/** Runs `work` over `items` with at most `parallelism` in flight, keeping results in input order. */
export async function boundedMap<T, R>(
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

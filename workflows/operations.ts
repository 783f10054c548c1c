// Starting and scheduling the batch workflows, shared by the operator commands (apps/backfill.ts,
// apps/schedules.ts) and the HTTP API (wired by apps/api.ts): start a backfill, create or update the
// schedules. Client code, not workflow code: the worker's bundle (index.ts) never imports it.
//
// Workflows are named by their exports: `workflowType('backfill')` only type-checks while index.ts
// exports a workflow `backfill`, and the arguments are checked against its parameters, so renaming a
// workflow (or changing its input) fails type-checking here. The import of the workflows is type-only:
// this file loads no workflow code.
import {
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  WorkflowExecutionAlreadyStartedError,
  type Client,
  type ScheduleOptions,
  type ScheduleOptionsAction,
} from '@temporalio/client';
import { config } from '../common/config.js';
import { backfillHours, parseHour, hourIso } from '../common/time.js';
import { backfillId } from '../common/workflow-ids.js';
import type * as workflows from './index.js';

type Exports = typeof workflows;
/** The names of the workflows the worker runs (index.ts's exported functions). */
export type BatchWorkflowName = {
  [K in keyof Exports]: Exports[K] extends (...args: never[]) => Promise<unknown> ? K : never;
}[keyof Exports];
export type BatchWorkflow<K extends BatchWorkflowName> = Exports[K];

/** A workflow's type name, checked against the exports of index.ts. */
export const workflowType = <K extends BatchWorkflowName>(name: K): K => name;

/** A schedule's action: start the workflow `name` with `args` checked against its parameters. */
export function startWorkflowAction<K extends BatchWorkflowName>(
  name: K,
  opts: { workflowId: string; taskQueue: string; args: Parameters<BatchWorkflow<K>> },
): ScheduleOptionsAction {
  // Checked above, per workflow; the schedule client takes any workflow's arguments.
  const { args, ...rest } = opts;
  return { type: 'startWorkflow', workflowType: workflowType(name), args: args as unknown[], ...rest };
}

export interface BackfillRequest {
  from: string;
  to: string;
  parallelism?: number;
  taskQueue?: string;
}

/**
 * Starts the backfill workflow of [from, to). Idempotent: while a backfill of the same window is
 * running, the running one is returned instead of starting a second; once it has closed, a new
 * request re-runs the window (re-compaction is itself idempotent).
 */
export async function startBackfill(
  client: Client,
  req: BackfillRequest,
): Promise<{ workflowId: string; runId?: string }> {
  const hours = backfillHours(req.from, req.to); // throws a clear message on a bad range
  const workflowId = backfillId(hours[0]!, parseHour(req.to));
  try {
    const handle = await client.workflow.start<BatchWorkflow<'backfill'>>(workflowType('backfill'), {
      taskQueue: req.taskQueue ?? config.TEMPORAL_TASK_QUEUE,
      workflowId,
      args: [{ from: hourIso(hours[0]!), to: hourIso(parseHour(req.to)), parallelism: req.parallelism }],
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
    return { workflowId, runId: handle.firstExecutionRunId };
  } catch (e) {
    if (e instanceof WorkflowExecutionAlreadyStartedError) return { workflowId };
    throw e;
  }
}

export const hourlyScheduleId = (prefix: string): string => `${prefix}-compact-hourly`;
export const dailyScheduleId = (prefix: string): string => `${prefix}-compact-daily`;
export const lateScheduleId = (prefix: string): string => `${prefix}-finalize-late`;
export const sweepScheduleId = (prefix: string): string => `${prefix}-sweep`;
export const retentionScheduleId = (prefix: string): string => `${prefix}-retention`;

/**
 * Creates (or updates to the current definition) the hourly and daily compaction schedules, the
 * late path's (every `lateEveryMinutes`: hours that got raw files after they were finalized) and the
 * sweep's (hourly: hours never finalized, or whose compaction failed) and retention's (hourly:
 * partitions ahead, expired partitions dropped, old raw Parquet deleted).
 * Schedule arguments are fixed at creation, so the workflows get no window in their input and take
 * it from the run's nominal time (TemporalScheduledStartTime); the started workflow ids get that
 * nominal time appended by Temporal, so each window has one id. BUFFER_ALL: a window that comes
 * while the previous run is still going is queued, never skipped.
 */
export async function ensureSchedules(
  client: Client,
  opts: { taskQueue: string; prefix: string; lateEveryMinutes?: number },
): Promise<string[]> {
  const defs = scheduleDefinitions(opts);
  for (const def of defs) {
    try {
      await client.schedule.create(def);
    } catch (e) {
      if (!(e instanceof ScheduleAlreadyRunning)) throw e;
      await client.schedule.getHandle(def.scheduleId).update((prev) => ({
        ...prev,
        spec: def.spec,
        action: def.action,
        policies: { ...prev.policies, ...def.policies },
      }));
    }
  }
  return defs.map((d) => d.scheduleId);
}

/** The schedules' definitions (see `ensureSchedules`). */
function scheduleDefinitions(opts: {
  taskQueue: string;
  prefix: string;
  lateEveryMinutes?: number;
}): ScheduleOptions[] {
  return [
    {
      scheduleId: hourlyScheduleId(opts.prefix),
      spec: { intervals: [{ every: '1h', offset: '5m' }] },
      action: startWorkflowAction('compactHour', {
        workflowId: `${opts.prefix}-scheduled-compact-hour`,
        taskQueue: opts.taskQueue,
        args: [{}],
      }),
      policies: { overlap: ScheduleOverlapPolicy.BUFFER_ALL, catchupWindow: '1 day' },
    },
    {
      scheduleId: dailyScheduleId(opts.prefix),
      spec: { intervals: [{ every: '1d', offset: '30m' }] },
      action: startWorkflowAction('compactDay', {
        workflowId: `${opts.prefix}-scheduled-compact-day`,
        taskQueue: opts.taskQueue,
        args: [{}],
      }),
      policies: { overlap: ScheduleOverlapPolicy.BUFFER_ALL, catchupWindow: '1 day' },
    },
    {
      scheduleId: lateScheduleId(opts.prefix),
      spec: { intervals: [{ every: `${opts.lateEveryMinutes ?? 5}m` }] },
      action: startWorkflowAction('finalizeLateHours', {
        workflowId: `${opts.prefix}-scheduled-finalize-late`,
        taskQueue: opts.taskQueue,
        args: [{}],
      }),
      // A run still busy when the next is due: one waits, the rest are skipped (each run finds every
      // late hour there is, so nothing is lost).
      policies: { overlap: ScheduleOverlapPolicy.BUFFER_ONE, catchupWindow: '1 hour' },
    },
    {
      scheduleId: sweepScheduleId(opts.prefix),
      spec: { intervals: [{ every: '1h', offset: '35m' }] },
      action: startWorkflowAction('sweepHours', {
        workflowId: `${opts.prefix}-scheduled-sweep`,
        taskQueue: opts.taskQueue,
        args: [{}],
      }),
      // No hour left behind: a run still busy makes the next one wait; runs missed in an outage
      // are not needed (each run finds every hour there is).
      policies: { overlap: ScheduleOverlapPolicy.BUFFER_ONE, catchupWindow: '1 hour' },
    },
    {
      scheduleId: retentionScheduleId(opts.prefix),
      spec: { intervals: [{ every: '1h', offset: '50m' }] },
      action: startWorkflowAction('applyRetention', {
        workflowId: `${opts.prefix}-scheduled-retention`,
        taskQueue: opts.taskQueue,
        args: [{}],
      }),
      // Each run does everything due: missed runs are not needed, and runs never overlap.
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' },
    },
  ];
}

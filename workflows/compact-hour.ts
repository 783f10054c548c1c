// compactHour: wait until the hour is complete (docs/completeness.md), then compact it. Its failures
// are recorded (`waiting` or `failed` in GET /v1/admin/hours) for the sweep to start it again.
import { ApplicationFailure, log, patched, sleep, upsertMemo } from '@temporalio/workflow';
import type { CompactHourResult, Offsets } from '../activities/index.js';
import { hourBeforeNominal, hourIso, parseHour } from '../common/time.js';
import { compactHourCounts, hourComplete, nominalStart, recordHourFailure, rootFailure } from './support.js';

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

/**
 * Waits, bounded, until every click of the hour is in the raw archive: archive watermarks, the click
 * processes' reports, then the archiver's offsets (activities: hourComplete). What it waits for is
 * in the workflow's memo, so the Web UI shows why an hour is not final yet.
 */
export async function awaitComplete(
  hourStart: number,
  maxWaitMinutes: number,
  pollSeconds: number,
): Promise<void> {
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

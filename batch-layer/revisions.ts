// An hour's finalization and its revisions in PostgreSQL (finalized_hours, hour_revisions,
// hour_adjustments), under the hour's advisory lock taken by the writer (hour-write.ts or
// pinot-hour-write.ts). The decisions themselves are pure, in decisions.ts.
import type pg from 'pg';
import { HOUR_MS, hourIso } from '../common/time.js';
import { nextRevision, refusal, type Finalization } from './decisions.js';
import type { HourCounts } from './hour-count.js';
import { rawCutoffOf } from './late-files.js';

/** Who finalized the hour: recorded in finalized_hours. */
export interface CompactionRun {
  workflowId: string;
  runId: string;
}

/** A finalization refused because the hour's raw inputs are gone (decisions.ts, `refusal`). */
export class RawInputsGone extends Error {
  override name = 'RawInputsGone';
}

/** The advisory lock key of an hour: two runs of the same hour (schedule, backfill, daily) take turns. */
export const hourLock = (hourStart: number): [number, number] => [7_262_005, hourStart / HOUR_MS];

/** Takes the hour's advisory lock until the transaction ends. */
export async function lockHour(client: pg.PoolClient, hourStart: number): Promise<void> {
  await client.query('select pg_advisory_xact_lock($1, $2)', hourLock(hourStart));
}

/**
 * Refuses (RawInputsGone) when retention's raw cutoff of `rawPrefix` has passed the hour. Checked
 * again under the hour's lock: retention records its cutoff before it deletes anything.
 */
export async function refuseIfPastCutoff(
  client: pg.PoolClient,
  hourStart: number,
  rawPrefix: string | undefined,
): Promise<void> {
  if (rawPrefix === undefined) return;
  const refused = refusal({
    hourStart,
    cutoff: await rawCutoffOf(client, rawPrefix),
    listed: [],
    recorded: [],
    iso: hourIso,
  });
  if (refused) throw new RawInputsGone(refused);
}

/** The hour's current finalization (under the hour's lock), if any. */
export async function currentFinalization(
  client: pg.PoolClient,
  hourStart: number,
): Promise<Finalization | undefined> {
  const { rows } = await client.query<{ revision: number; valid_clicks: string; events: string }>(
    'select revision, valid_clicks, events from finalized_hours where hour = $1',
    [new Date(hourStart)],
  );
  const r = rows[0];
  return r && { revision: r.revision, validClicks: Number(r.valid_clicks), events: Number(r.events) };
}

/**
 * Marks the hour finalized by `run`. A run whose numbers differ from the hour's current revision (or
 * the hour's first) makes a new revision, kept in hour_revisions; one that changes nothing keeps the
 * revision and its time, so `revision` changes exactly when a final number may have.
 */
export async function recordFinalization(
  client: pg.PoolClient,
  hourStart: number,
  counts: Pick<HourCounts, 'validClicks' | 'events'>,
  run: CompactionRun,
  listedAt: Date,
  was: Finalization | undefined,
): Promise<{ revision: number; changed: boolean }> {
  const hour = new Date(hourStart);
  const { revision, changed } = nextRevision(was, counts);
  await client.query(
    `insert into finalized_hours (hour, run_id, workflow_id, finalized_at, valid_clicks, events, revision, listed_at)
     values ($1, $2, $3, now(), $4, $5, $6, $7)
     on conflict (hour) do update set run_id = excluded.run_id, workflow_id = excluded.workflow_id,
       valid_clicks = excluded.valid_clicks, events = excluded.events, listed_at = excluded.listed_at,
       revision = excluded.revision,
       finalized_at = case when $8 then excluded.finalized_at else finalized_hours.finalized_at end`,
    [hour, run.runId, run.workflowId, counts.validClicks, counts.events, revision, listedAt, changed],
  );
  await client.query('delete from hour_failures where hour = $1', [hour]);
  if (changed)
    await client.query(
      `insert into hour_revisions (hour, revision, finalized_at, run_id, workflow_id, valid_clicks, events)
       values ($1, $2, now(), $3, $4, $5, $6) on conflict (hour, revision) do nothing`,
      [hour, revision, run.runId, run.workflowId, counts.validClicks, counts.events],
    );
  return { revision, changed };
}

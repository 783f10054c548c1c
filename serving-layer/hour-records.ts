// The batch layer's records of each hour, as the serving layer reads them from PostgreSQL: its
// finalizations and revisions (finalized_hours, hour_revisions), its last unsuccessful compaction
// (hour_failures), the adjustments of its final counts, the raw cutoff, and the daily reconciliation
// reports. Whatever the batch store (BATCH_STORE), these always live in PostgreSQL.
import type pg from 'pg';
import { hourOf } from '../common/time.js';
import type { ReconciliationReport } from '../common/reconciliation.js';
import type { HourFailureKind } from './hour-state.js';

export interface FinalizedHour {
  hour: number;
  /** Grows each time a finalization changes the hour's numbers (late clicks). */
  revision: number;
  runId: string;
  workflowId: string;
  finalizedAt: number;
  validClicks: number;
  events: number;
}

/** One finalization of an hour that changed its numbers (hour_revisions). */
export interface HourRevision {
  revision: number;
  finalizedAt: number;
  runId: string;
  workflowId: string;
  validClicks: number;
  events: number;
}

/** An hour's last failed compaction. */
export interface HourFailure {
  failedAt: number;
  workflowId: string;
  reason: string;
  /** `waiting`: it waits (or gave up waiting) for completeness, `reason` says for what; `failed`: an error. */
  kind: HourFailureKind;
}

/** What one revision of an hour changed for one ad or advertiser (migration 010). */
export interface Adjustment {
  hour: number;
  revision: number;
  finalizedAt: number;
  scope: 'ad' | 'advertiser';
  id: string;
  /** The ad's advertiser (scope `ad`), or the advertiser itself. */
  advertiserId: string | null;
  clicksBefore: number;
  clicksAfter: number;
}

/** A stored daily reconciliation report and when it was made. */
export interface StoredReconciliation {
  createdAt: number;
  report: ReconciliationReport;
}

const ts = (ms: number): Date => new Date(ms);

/** An hour's records in PostgreSQL (the counts are BatchStore's, which extends this). */
export class HourRecords {
  constructor(protected readonly pool: pg.Pool) {}

  /** Finalized hours touching [from, to), with their run, as recorded by hourly compaction. */
  async finalizedHours(from: number, to: number): Promise<FinalizedHour[]> {
    const r = await this.pool.query<{
      hour: Date;
      run_id: string;
      workflow_id: string;
      finalized_at: Date;
      valid_clicks: string;
      events: string;
      revision: number;
    }>(
      `select hour, run_id, workflow_id, finalized_at, valid_clicks, events, revision
         from finalized_hours where hour >= $1 and hour < $2 order by hour`,
      [ts(hourOf(from)), ts(to)],
    );
    return r.rows.map((row) => ({
      hour: row.hour.getTime(),
      revision: row.revision,
      runId: row.run_id,
      workflowId: row.workflow_id,
      finalizedAt: row.finalized_at.getTime(),
      validClicks: Number(row.valid_clicks),
      events: Number(row.events),
    }));
  }

  /** Every revision of each hour in [from, to): when it was made, by which run, with which counts. */
  async hourRevisions(from: number, to: number): Promise<Map<number, HourRevision[]>> {
    const r = await this.pool.query<{
      hour: Date;
      revision: number;
      finalized_at: Date;
      run_id: string;
      workflow_id: string;
      valid_clicks: string;
      events: string;
    }>(
      `select hour, revision, finalized_at, run_id, workflow_id, valid_clicks, events from hour_revisions
        where hour >= $1 and hour < $2 order by hour, revision`,
      [ts(hourOf(from)), ts(to)],
    );
    const byHour = new Map<number, HourRevision[]>();
    for (const row of r.rows) {
      const list = byHour.get(row.hour.getTime()) ?? [];
      list.push({
        revision: row.revision,
        finalizedAt: row.finalized_at.getTime(),
        runId: row.run_id,
        workflowId: row.workflow_id,
        validClicks: Number(row.valid_clicks),
        events: Number(row.events),
      });
      byHour.set(row.hour.getTime(), list);
    }
    return byHour;
  }

  /** The last failed compaction of each hour in [from, to) that has one (hour_failures). */
  async hourFailures(from: number, to: number): Promise<Map<number, HourFailure>> {
    const r = await this.pool.query<{
      hour: Date;
      failed_at: Date;
      workflow_id: string;
      reason: string;
      kind: HourFailureKind;
    }>(
      'select hour, failed_at, workflow_id, reason, kind from hour_failures where hour >= $1 and hour < $2',
      [ts(hourOf(from)), ts(to)],
    );
    return new Map(
      r.rows.map((row) => [
        row.hour.getTime(),
        {
          failedAt: row.failed_at.getTime(),
          workflowId: row.workflow_id,
          reason: row.reason,
          kind: row.kind,
        },
      ]),
    );
  }

  /**
   * Adjustments of hours in [from, to): every ad and advertiser whose final count a revision after
   * the hour's first changed, oldest hour and revision first. `advertiserId`: only that advertiser
   * (its own row and its ads' rows).
   */
  async adjustments(from: number, to: number, advertiserId?: string, limit = 10_000): Promise<Adjustment[]> {
    const r = await this.pool.query<{
      hour: Date;
      revision: number;
      finalized_at: Date;
      scope: 'ad' | 'advertiser';
      id: string;
      advertiser_id: string | null;
      clicks_before: string;
      clicks_after: string;
    }>(
      `select a.hour, a.revision, r.finalized_at, a.scope, a.id,
              case when a.scope = 'ad' then ads.advertiser_id else a.id end as advertiser_id,
              a.clicks_before, a.clicks_after
         from hour_adjustments a
         join hour_revisions r on r.hour = a.hour and r.revision = a.revision
         left join ads on a.scope = 'ad' and ads.ad_id = a.id
        where a.hour >= $1 and a.hour < $2
          and ($3::bigint is null or (a.scope = 'advertiser' and a.id = $3) or (a.scope = 'ad' and ads.advertiser_id = $3))
        order by a.hour, a.revision, a.scope desc, a.id
        limit $4`,
      [ts(from), ts(to), advertiserId ?? null, limit],
    );
    return r.rows.map((row) => ({
      hour: row.hour.getTime(),
      revision: row.revision,
      finalizedAt: row.finalized_at.getTime(),
      scope: row.scope,
      id: row.id,
      advertiserId: row.advertiser_id,
      clicksBefore: Number(row.clicks_before),
      clicksAfter: Number(row.clicks_after),
    }));
  }

  /** The raw cutoff retention recorded for this S3 prefix (raw files of earlier hours are gone). */
  async rawCutoff(prefix: string): Promise<number | undefined> {
    const r = await this.pool.query<{ raw_before: Date }>(
      'select raw_before from raw_expiry where prefix = $1',
      [prefix],
    );
    return r.rows[0]?.raw_before.getTime();
  }

  /** Just the hour starts of `finalizedHours`, as the merge wants them. */
  async finalizedHourSet(from: number, to: number): Promise<Set<number>> {
    const r = await this.pool.query<{ hour: Date }>(
      'select hour from finalized_hours where hour >= $1 and hour < $2',
      [ts(hourOf(from)), ts(to)],
    );
    return new Set(r.rows.map((row) => row.hour.getTime()));
  }

  /** The daily reconciliation report of `day` (YYYY-MM-DD), or undefined if none was written. */
  async reconciliation(day: string): Promise<StoredReconciliation | undefined> {
    const r = await this.pool.query<{ created_at: Date; report: ReconciliationReport }>(
      `select created_at, report from reconciliation_reports where day = $1::date`,
      [day],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return { createdAt: row.created_at.getTime(), report: row.report };
  }
}

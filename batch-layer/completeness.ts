// When may an hour be called final? When every click redirected as valid in it is in the raw archive
// (docs/completeness.md). Three facts, all required:
//   1. Every partition of the clicks topic, as Kafka lists them now, has an archive watermark past
//      the hour's end (a partition the archive has never reported blocks; one Kafka no longer lists
//      is ignored).
//   2. Every click process that reported within the silence bound says every click it stamped
//      before the hour's end is acknowledged by Kafka: nothing older in flight or in its spool. A
//      process silent for longer is not waited for; the late path finalizes again when its clicks come.
//   3. The archiver has committed (uploaded) every offset the topic had once 1 and 2 held: the clicks
//      those processes had in Kafka at their report are in S3 too, even spool replays whose old
//      timestamps the watermark of 1 does not see.
// `judgeHour` is the pure rule; `readHourEvidence` gathers 1 and 2; the offsets of 3 come from Kafka.
import type { Admin } from 'kafkajs';
import type pg from 'pg';

export interface ProcessReport {
  processId: string;
  /** Milliseconds since the report, on the database's clock. */
  silentMs: number;
  /** Every click this process stamped before this (epoch ms, click clock) is in Kafka. */
  loggedBefore: number;
  spoolDepth: number;
}

export interface HourEvidence {
  hourEnd: number;
  /** Partitions of the clicks topic as Kafka lists them now. */
  partitions: readonly number[];
  /** Archive watermark per partition (epoch ms); absent: never reported. */
  watermarks: ReadonlyMap<number, number>;
  reports: readonly ProcessReport[];
  silenceBoundMs: number;
}

export type Judgement = { ready: true; notWaitedFor: string[] } | { ready: false; waitingFor: string };

/** Facts 1 and 2: may the hour ending at `hourEnd` be finalized once the archiver has caught up? */
export function judgeHour(e: HourEvidence): Judgement {
  const behind = e.partitions.filter((p) => (e.watermarks.get(p) ?? -Infinity) < e.hourEnd);
  if (behind.length > 0)
    return {
      ready: false,
      waitingFor: `the archive watermark of partition(s) ${behind.join(', ')} to pass the hour's end`,
    };
  const live = e.reports.filter((r) => r.silentMs <= e.silenceBoundMs);
  const late = live.filter((r) => r.loggedBefore < e.hourEnd);
  if (late.length > 0)
    return {
      ready: false,
      waitingFor:
        `click process(es) still holding clicks of the hour (not yet in Kafka): ` +
        late.map((r) => `${r.processId} (${r.spoolDepth} spooled)`).join(', '),
    };
  const silent = e.reports.filter((r) => r.silentMs > e.silenceBoundMs && r.loggedBefore < e.hourEnd);
  return { ready: true, notWaitedFor: silent.map((r) => r.processId) };
}

/** Per-partition offsets, as decimal strings (JSON-safe for workflow state). */
export type Offsets = Record<string, string>;

/** Fact 3: has the archiver committed at least `target` on every partition? */
export function archivedThrough(archived: Offsets, target: Offsets): boolean {
  return Object.entries(target).every(([p, end]) => BigInt(archived[p] ?? '0') >= BigInt(end));
}

/** Facts 1 and 2 from PostgreSQL and Kafka. */
export async function readHourEvidence(
  pool: pg.Pool,
  admin: Admin,
  topic: string,
  hourEnd: number,
  silenceBoundMs: number,
): Promise<HourEvidence> {
  const [meta] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
  const partitions = (meta?.partitions ?? []).map((p) => p.partitionId).sort((a, b) => a - b);
  const marks = await pool.query<{ partition: number; watermark: Date }>(
    'select partition, watermark from archive_watermarks where topic = $1',
    [topic],
  );
  const reports = await pool.query<{
    process_id: string;
    silent_ms: number;
    logged_before: Date;
    spool_depth: string;
  }>(
    `select process_id, extract(epoch from now() - reported_at) * 1000 as silent_ms, logged_before, spool_depth
       from click_process_reports where topic = $1`,
    [topic],
  );
  return {
    hourEnd,
    partitions,
    watermarks: new Map(marks.rows.map((r) => [r.partition, r.watermark.getTime()])),
    reports: reports.rows.map((r) => ({
      processId: r.process_id,
      silentMs: Number(r.silent_ms),
      loggedBefore: r.logged_before.getTime(),
      spoolDepth: Number(r.spool_depth),
    })),
    silenceBoundMs,
  };
}

/** The topic's end offsets now: what the archiver must reach (fact 3). */
export async function endOffsets(admin: Admin, topic: string): Promise<Offsets> {
  const ends = await admin.fetchTopicOffsets(topic);
  return Object.fromEntries(ends.map((e) => [String(e.partition), e.high]));
}

/** The archiver group's committed offsets (it commits only after the upload). */
export async function archivedOffsets(admin: Admin, groupId: string, topic: string): Promise<Offsets> {
  const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return Object.fromEntries(
    (committed?.partitions ?? []).map((c) => [String(c.partition), BigInt(c.offset) < 0n ? '0' : c.offset]),
  );
}

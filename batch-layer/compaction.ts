// Hourly compaction: raw click Parquet of one hour (plus the seen-ids indexes of the hours before it,
// within the impression lifetime) → authoritative counts per (ad, minute), written to PostgreSQL in
// one transaction that replaces the hour (or published to Pinot, BATCH_STORE=pinot). Deterministic:
// the same raw files give the same rows. This file runs the steps; each step is a module of its own:
//   hour-archive.ts       the hour's objects in S3: list, download, replace
//   seen-index.ts         the seen indexes: the lookback hours' (built when stale), the hour's own
//   hour-count.ts         deduplication and counting (DuckDB) into CSVs
//   hour-write.ts         the PostgreSQL writes, with the minute partition swap
//   day-rows.ts           day rows of whole days
//   revisions.ts          finalization, revisions, the raw-cutoff refusal
//   pinot-hour-write.ts   the Pinot OFFLINE segment of the hour (BATCH_STORE=pinot)
//   decisions.ts          the pure decisions behind them all (simulated in decisions.sim.test.ts)
//
// Dedup rule (DESIGN rule 1): an impression counts once, in the minute of its first valid click.
// "Valid" here is signed and unexpired, whatever Redis said: a click logged `duplicate` counts when no
// earlier click of its impression reached the log (its first click's append failed, or Redis kept a
// key it should not have). Inside the hour: group those events by impression id and keep min(ts).
// Across hours: an impression with a valid click in any of the `lookbackHours` before this one is not
// counted here. Each hour's "seen" index (its distinct valid impression ids) depends only on that
// hour's raw files, so hours can be compacted in any order or in parallel and still agree; the index
// is named after the raw files it covers, so a late file makes it stale and it is rebuilt.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { HOUR_MS, hourIso } from '../common/time.js';
import { sleep } from '../common/wait.js';
import { lookbackHoursOf, refusal, type RawCutoff } from './decisions.js';
import { hourArchive, hourScratchDir, type ArchiveBucket, type HourArchive } from './hour-archive.js';
import { countRollups, type HourRollups } from './hour-count.js';
import { writeHourCounts } from './hour-write.js';
import { rawCutoffOf, recordedRawKeys } from './late-files.js';
import { writeHourToPinot } from './pinot-hour-write.js';
import type { PinotOfflineDeps } from './pinot-offline.js';
import { PhaseClock, allPhases, type PhaseTime } from './phase-clock.js';
import { RawInputsGone, type CompactionRun } from './revisions.js';
import { lookbackSeenIndex, publishSeenIndex } from './seen-index.js';
import type { S3Object } from './storage.js';

// The pieces the benchmark, the tools and the tests call directly.
export { countHour } from './hour-count.js';
export { writeHourCounts } from './hour-write.js';
export { writeHourToPinot } from './pinot-hour-write.js';
export { PhaseClock, type PhaseTime } from './phase-clock.js';
export { RawInputsGone, type CompactionRun } from './revisions.js';

export interface CompactionDeps extends ArchiveBucket {
  pool: pg.Pool;
  workDir: string;
  /** Hours before this one whose impressions may still be clicked (impression lifetime). */
  lookbackHours: number;
  /** Failure drills: pause after downloading (config BATCH_FAULT_PAUSE_MS). */
  faultPauseMs?: number;
  /** BATCH_STORE=pinot: the hour's counts go to this OFFLINE table, not the PostgreSQL count tables. */
  pinot?: PinotOfflineDeps;
}

export interface CompactionProgress {
  phase: 'listing' | 'downloading' | 'indexing' | 'counting' | 'publishing-index' | 'writing' | 'done';
  filesDone: number;
  filesTotal: number;
}

export interface CompactHourResult {
  hour: string;
  /** The hour's finalization revision after this run (a run that changes no number keeps it). */
  revision: number;
  /** This run made a new revision. */
  changed: boolean;
  files: number;
  /** Distinct Kafka messages of the hour, all statuses. */
  events: number;
  validClicks: number;
  adMinutes: number;
  adHours: number;
  /** Impressions with a valid click in this hour that were already seen in an earlier hour. */
  seenEarlier: number;
  /** Where the time went, step by step. */
  phases: PhaseTime[];
}

type Progress = (p: CompactionProgress) => void;

/** One compaction's context, built once: the hour's archive, its scratch folder, its clock. */
interface Run {
  deps: CompactionDeps;
  archive: HourArchive;
  dir: string;
  clock: PhaseClock;
  run: CompactionRun;
}

/** The whole hourly compaction: list, download, index, count, write. Safe to run again. */
export async function compactHourFromS3(
  deps: CompactionDeps,
  hourStart: number,
  run: CompactionRun,
  onProgress: Progress = () => undefined,
): Promise<CompactHourResult> {
  const r: Run = {
    deps,
    archive: hourArchive(deps, hourStart),
    dir: hourScratchDir(deps.workDir, deps, hourStart),
    clock: new PhaseClock(),
    run,
  };
  await mkdir(r.dir, { recursive: true });
  onProgress({ phase: 'listing', filesDone: 0, filesTotal: 0 });
  const { raw, listedAt, cutoff } = await listInputs(r);
  let done = 0;
  const progress = (phase: CompactionProgress['phase']): void =>
    onProgress({ phase, filesDone: done, filesTotal: raw.length });
  const files = await r.archive.downloadAll(raw, join(r.dir, 'raw'), () => {
    done++;
    progress('downloading');
  });
  r.clock.lap('download');
  if (deps.faultPauseMs) await sleep(deps.faultPauseMs);
  progress('indexing');
  const earlier = await lookbackIndexes(r, cutoff);
  progress('counting');
  const indexPath = join(r.dir, 'seen-index.parquet');
  const rollups = await countRollups(files, earlier, hourStart, r.dir, indexPath, r.clock);
  progress('writing');
  const { revision, changed, events } = await writeAndPublish(r, rollups, {
    raw,
    files,
    indexPath,
    listedAt,
  });
  progress('publishing-index');
  progress('done');
  await rm(r.dir, { recursive: true, force: true });
  const { counts } = rollups;
  return {
    hour: hourIso(hourStart),
    revision,
    changed,
    files: raw.length,
    events,
    validClicks: counts.validClicks,
    adMinutes: counts.adMinutes,
    adHours: counts.adHours,
    seenEarlier: counts.seenEarlier,
    phases: allPhases(r.clock, rollups.restClock),
  };
}

/**
 * Lists the hour's raw files and refuses to go on when its inputs are gone: never lower an hour
 * because of that — past the raw cutoff, or a file the archiver recorded (before this listing)
 * missing from it.
 */
async function listInputs(r: Run): Promise<{ raw: S3Object[]; listedAt: Date; cutoff: RawCutoff }> {
  const { deps, archive } = r;
  // On the database's clock, before the listing: a raw file recorded after this is late for this run.
  const listedAt = (await deps.pool.query<{ now: Date }>('select now()')).rows[0]!.now;
  const raw = await archive.rawFiles();
  const cutoff = await rawCutoffOf(deps.pool, deps.prefix);
  const refused = refusal({
    hourStart: archive.hourStart,
    cutoff,
    listed: raw.map((o) => o.key),
    recorded: await recordedRawKeys(deps.pool, archive.hourStart, deps.prefix, listedAt),
    iso: hourIso,
  });
  if (refused) throw new RawInputsGone(refused);
  r.clock.lap('list');
  return { raw, listedAt, cutoff };
}

/** The local seen indexes of the hours in the lookback that have one. */
async function lookbackIndexes(r: Run, cutoff: RawCutoff): Promise<string[]> {
  const earlier: string[] = [];
  for (const before of lookbackHoursOf(r.archive.hourStart, r.deps.lookbackHours, HOUR_MS)) {
    const path = await lookbackSeenIndex(hourArchive(r.deps, before), r.dir, cutoff);
    if (path) earlier.push(path);
  }
  r.clock.lap('lookback seen indexes');
  return earlier;
}

/**
 * The hour's counts into the batch store, while the hour's seen index and its events count (DuckDB),
 * then the index's upload, run beside: each side keeps a core busy.
 */
async function writeAndPublish(
  r: Run,
  { counts, rest, restClock }: HourRollups,
  inputs: { raw: readonly S3Object[]; files: readonly string[]; indexPath: string; listedAt: Date },
): Promise<{ revision: number; changed: boolean; events: number }> {
  const { deps, archive, clock, run } = r;
  const hourStart = archive.hourStart;
  const indexed = rest.then(async (events) => {
    if (inputs.files.length > 0) await publishSeenIndex(archive, inputs.raw, inputs.indexPath);
    restClock.lap('seen index published');
    return events;
  });
  const pending = { ...counts, events: rest };
  const [written, published] = await Promise.allSettled([
    deps.pinot
      ? writeHourToPinot(
          deps.pool,
          deps.pinot,
          hourStart,
          pending,
          inputs.files,
          run,
          inputs.listedAt,
          clock,
          deps.prefix,
        )
      : writeHourCounts(deps.pool, hourStart, pending, run, inputs.listedAt, clock, deps.prefix),
    indexed,
  ]);
  if (written.status === 'rejected') throw written.reason;
  if (published.status === 'rejected') throw published.reason;
  clock.lap('seen index publication awaited');
  return { ...written.value, events: published.value };
}

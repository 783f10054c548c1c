// The batch layer's decisions, pure: no SQL, no S3, no clock of their own. `compaction.ts`,
// `late-files.ts`, `retention.ts` and the activities gather the facts (listings, rows, the database's
// clock) and ask these functions what to do; `decisions.sim.test.ts` asks the very same functions
// under thousands of seeded schedules (docs/completeness.md, "How the invariants are checked").
//
//   countedStatuses / firstClicks   the dedup rule: an impression counts once, at its first signed,
//                                   unexpired click, in that click's hour, unless an earlier hour
//                                   within the impression lifetime holds a valid click of it
//   lookbackSource                  where an earlier hour's seen ids come from: its raw files, or
//                                   its retained seen index once the raw files are past the cutoff
//   refusal                         a finalization never lowers an hour because its inputs are gone
//   nextRevision                    versioned finals: a new revision exactly when a number changes
//   staleHours                      the late path's durable queue: finalized hours any of whose inputs
//                                   (their own raw files, the raw files of the hours in their
//                                   lookback) arrived after they listed them
//   rawExpiryCutoff                 retention never deletes the raw inputs of an hour still owed a
//                                   finalization
//   sweepFrom                       where the sweep starts: the first hour whose raw files are kept

/** Raw statuses that may be an impression's first click: signed and unexpired, whatever Redis said. */
export const countedStatuses = ['valid', 'duplicate'] as const;

export const isCounted = (status: string): boolean => (countedStatuses as readonly string[]).includes(status);

/** One raw event, as the archive holds it (the fields the decisions look at). */
export interface RawEvent {
  eventId: string;
  ts: number;
  adId: string;
  advertiserId: string;
  status: string;
}

/**
 * The dedup rule inside one hour: every impression with a counted click in [hourStart, hourEnd),
 * mapped to its first such click. DuckDB runs the same rule over Parquet in compaction.ts
 * (`validInHour` filters on `countedStatuses`, then `min(ts)` per impression).
 */
export function firstClicks(
  events: Iterable<RawEvent>,
  hourStart: number,
  hourMs: number,
): Map<string, RawEvent> {
  const first = new Map<string, RawEvent>();
  for (const e of events) {
    if (!isCounted(e.status) || e.ts < hourStart || e.ts >= hourStart + hourMs) continue;
    const was = first.get(e.eventId);
    if (!was || e.ts < was.ts) first.set(e.eventId, e);
  }
  return first;
}

/** The clicks an hour counts: its first clicks minus impressions seen in an earlier hour. */
export function countedClicks(
  first: ReadonlyMap<string, RawEvent>,
  seenEarlier: (eventId: string) => boolean,
): RawEvent[] {
  return [...first.values()].filter((e) => !seenEarlier(e.eventId));
}

/** The hours whose seen ids an hour is deduplicated against, newest first. */
export function lookbackHoursOf(hourStart: number, lookbackHours: number, hourMs: number): number[] {
  return Array.from({ length: lookbackHours }, (_, i) => hourStart - (i + 1) * hourMs);
}

/** The first hour whose raw files retention still keeps (undefined: retention never ran here). */
export type RawCutoff = number | undefined;

export const pastRawCutoff = (hourStart: number, cutoff: RawCutoff): boolean =>
  cutoff !== undefined && hourStart < cutoff;

/**
 * Where an earlier hour's seen ids come from. Inside the raw retention: its raw files (the index is
 * rebuilt when they changed). Past it: the seen index retention kept on purpose, never a rebuild
 * from whatever raw files are left (a file drained after the cutoff would make a partial index).
 */
export function lookbackSource(f: {
  hourStart: number;
  cutoff: RawCutoff;
  rawFiles: number;
  retainedIndex: boolean;
}): 'raw' | 'retained-index' | 'none' {
  if (!pastRawCutoff(f.hourStart, f.cutoff) && f.rawFiles > 0) return 'raw';
  if (f.retainedIndex) return 'retained-index';
  return 'none';
}

/**
 * Why this hour must not be finalized now (undefined: it may). A finalization recounts an hour from
 * its raw files: once they are gone, or some the archiver recorded are missing from the listing, a
 * recount would lower the hour because its inputs are gone, so it is refused and the finals kept.
 */
export function refusal(f: {
  hourStart: number;
  cutoff: RawCutoff;
  /** Raw file keys of the hour the compaction listed. */
  listed: readonly string[];
  /** Raw file keys the archiver recorded for the hour (raw_files). */
  recorded: readonly string[];
  iso: (t: number) => string;
}): string | undefined {
  if (pastRawCutoff(f.hourStart, f.cutoff))
    return (
      `refused: ${f.iso(f.hourStart)} is before the raw cutoff ${f.iso(f.cutoff!)}: its raw files are ` +
      `past the raw retention, so it cannot be recounted; its finals are kept as they are`
    );
  const listed = new Set(f.listed);
  const missing = f.recorded.filter((k) => !listed.has(k));
  if (missing.length > 0)
    return (
      `refused: ${missing.length} raw file(s) of ${f.iso(f.hourStart)} recorded by the archiver are ` +
      `missing from S3 (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}); ` +
      `recounting would lower the hour, so its finals are kept as they are`
    );
  return undefined;
}

export interface Finalization {
  revision: number;
  validClicks: number;
  events: number;
}

/** A run that changes a number makes a new revision; one that changes nothing keeps it. */
export function nextRevision(
  was: Finalization | undefined,
  now: { validClicks: number; events: number },
): { revision: number; changed: boolean } {
  const changed = !was || was.validClicks !== now.validClicks || was.events !== now.events;
  return { revision: !was ? 1 : changed ? was.revision + 1 : was.revision, changed };
}

export interface FinalizedHourState {
  hour: number;
  /** When its last compaction listed its inputs (database clock). */
  listedAt: number;
  /** Its last compaction failed after its last finalization. */
  failing: boolean;
}

/**
 * The late path's queue, derived from durable state only: a finalized hour is stale when a raw file
 * of the hour itself or of an hour in its lookback was uploaded after it listed its inputs (its
 * count, or its dedup against earlier hours, may change). Nothing another compaction does can hide
 * it: only a finalization of that very hour, listing after the upload, clears it. The range
 * [from, to) names the hours whose late files are looked at: the stale hours in it, and the later
 * hours (up to the lookback past `to`) that those files make stale. Hours before `from` (never before
 * the raw cutoff) are left alone: they cannot be recounted. Oldest first; hours whose last compaction
 * failed come after the others, so one failing hour does not hold the rest back.
 */
export function staleHours(f: {
  finalized: readonly FinalizedHourState[];
  /** Newest raw file upload per hour (database clock). */
  newestUpload: ReadonlyMap<number, number>;
  lookbackHours: number;
  hourMs: number;
  from: number;
  to: number;
  limit: number;
  exclude?: ReadonlySet<number>;
}): number[] {
  const stale = f.finalized.filter((h) => {
    if (h.hour < f.from || h.hour >= f.to + f.lookbackHours * f.hourMs || f.exclude?.has(h.hour))
      return false;
    for (let i = 0; i <= f.lookbackHours; i++) {
      const input = h.hour - i * f.hourMs;
      if (input >= f.to) continue;
      const up = f.newestUpload.get(input);
      if (up !== undefined && up > h.listedAt) return true;
    }
    return false;
  });
  stale.sort((a, b) => Number(a.failing) - Number(b.failing) || a.hour - b.hour);
  return stale.slice(0, f.limit).map((h) => h.hour);
}

/**
 * The hour before which retention may delete raw files now: the retention's own cutoff, held back
 * (at most `maxHoldHours`) so that no hour still owed a finalization (never finalized, or stale: see
 * `staleHours`) loses its raw files or those of the hours in its lookback. Never moves backwards.
 */
export function rawExpiryCutoff(f: {
  now: number;
  retentionHours: number;
  lookbackHours: number;
  hourMs: number;
  /** Hours with raw files never finalized, and stale finalized hours. */
  owed: readonly number[];
  previous: RawCutoff;
  /** Held back at most this long past the retention (an hour that fails for good must not keep raw files forever). */
  maxHoldHours: number;
}): number {
  const clock = Math.floor(f.now / f.hourMs) * f.hourMs - f.retentionHours * f.hourMs;
  let cutoff = clock;
  for (const h of f.owed) cutoff = Math.min(cutoff, h - f.lookbackHours * f.hourMs);
  cutoff = Math.max(cutoff, clock - f.maxHoldHours * f.hourMs);
  return f.previous === undefined ? cutoff : Math.max(cutoff, f.previous);
}

/**
 * Where the sweep starts looking for hours never finalized: the first hour whose raw files are still
 * kept (retention may hold raw files longer than its window for an hour still owed a finalization).
 */
export function sweepFrom(f: {
  now: number;
  retentionHours: number;
  hourMs: number;
  cutoff: RawCutoff;
}): number {
  const clock = Math.floor(f.now / f.hourMs) * f.hourMs - f.retentionHours * f.hourMs;
  return f.cutoff === undefined ? clock : Math.min(clock, f.cutoff);
}

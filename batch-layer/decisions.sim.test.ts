// Deterministic simulation of the batch layer's decisions (the approach of FoundationDB's simulation
// testing): click hosts that lose Kafka, spool, die and come back days later; Kafka partitions; the
// archiver; the raw archive and the seen indexes; and every kind of compaction (hourly schedule,
// daily run, late path, sweep, operator backfills, retention) interleaved by a seeded random
// schedule with crashes and delays. Storage is a few maps; every decision is the project's own
// (batch-layer/decisions.ts, batch-layer/completeness.ts): this file decides nothing itself.
//
// Invariants, checked after quiescence (every spool drained, the schedules run on):
//   1. every finalized hour equals the ground truth: the first signed, unexpired click of each
//      impression, counted in its hour, over the clicks that reached the archive while their hour
//      was still inside the raw retention (later ones can never be counted: docs/completeness.md);
//   2. no finalization ever lowered an hour while some of its inputs were gone.
// A failure prints its seed; replay it with SIM_SEED=<seed> npx vitest run batch-layer/decisions.sim.test.ts
import { describe, expect, it } from 'vitest';
import { archivedThrough, judgeHour, type ProcessReport } from './completeness.js';
import { mulberry32 } from '../common/seeded-random.js';
import {
  countedClicks,
  firstClicks,
  lookbackHoursOf,
  lookbackSource,
  nextRevision,
  rawExpiryCutoff,
  refusal,
  staleHours,
  sweepFrom,
  type RawCutoff,
  type RawEvent,
} from './decisions.js';

// Scaled time: one unit is a minute, an hour is 60, a "day" 6 hours.
const H = 60;
const DAY = 6 * H;
const LOOKBACK = 3; // hours; the impression lifetime is LOOKBACK hours
const TTL = LOOKBACK * H;
const RAW_RETENTION = 10; // hours
const SILENCE_BOUND = 15;
const PARTITIONS = 2;

const prng = mulberry32;

interface SimEvent extends RawEvent {
  partition: number;
  host: number;
  /** When Kafka acknowledged it (a spooled click: when its spool drained). */
  kafkaAt: number;
  /** When its raw file was uploaded. */
  uploadedAt: number;
  /** Reached the archive while its hour was inside the raw retention: it must be counted. */
  due?: boolean;
}

interface RawFile {
  key: string;
  hour: number;
  uploadedAt: number;
  events: SimEvent[];
}

interface Final {
  revision: number;
  validClicks: number;
  events: number;
  listedAt: number;
  perAd: Map<string, number>;
}

interface Host {
  /** Cut off from Kafka in [cutFrom, backAt): clicks go to its spool, drained at backAt. */
  cutFrom: number;
  backAt: number;
  /** Silent while cut off (the host died), or still reporting (alive, spooling). */
  dies: boolean;
}

interface Step {
  at: number;
  seq: number;
  run: () => void;
}
const before = (a: Step, b: Step): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);

class Sim {
  readonly rnd: () => number;
  now = 0;
  private readonly queue: Step[] = [];
  private seq = 0;
  readonly events: SimEvent[] = [];
  readonly hosts: Host[] = [];
  // Storage stand-ins: S3 (raw files, seen indexes), PostgreSQL (raw_files, finalized_hours, ...).
  readonly raw = new Map<number, RawFile[]>();
  readonly rawFilesTable = new Map<number, Map<string, number>>();
  readonly indexes = new Map<number, { keys: string; ids: Set<string> }>();
  readonly finals = new Map<number, Final>();
  readonly failing = new Set<number>();
  cutoff: RawCutoff;
  readonly violations: string[] = [];
  readonly lastClick: number;
  readonly end: number;
  private fileSeq = 0;

  constructor(readonly seed: number) {
    this.rnd = prng(seed);
    const r = this.rnd;
    const clickHours = 8 + Math.floor(r() * 10);
    this.lastClick = clickHours * H;
    const hosts = 2 + Math.floor(r() * 2);
    let latest = this.lastClick;
    for (let h = 0; h < hosts; h++) {
      const cut = r() < 0.6;
      const cutFrom = cut ? Math.floor(r() * this.lastClick) : Infinity;
      // Back soon, hours later, or after the raw retention has passed its clicks' hours.
      const away = r() < 0.5 ? 5 + r() * 60 : r() < 0.7 ? H + r() * 6 * H : RAW_RETENTION * H + r() * 6 * H;
      const backAt = cut ? Math.floor(cutFrom + away) : Infinity;
      this.hosts.push({ cutFrom, backAt, dies: r() < 0.7 });
      if (cut) latest = Math.max(latest, backAt);
    }
    this.end = latest + (RAW_RETENTION + 2 * LOOKBACK + 6) * H;
    this.makeClicks();
  }

  /** Runs `run` at time `t` (a binary heap ordered by time, then by scheduling order). */
  at(t: number, run: () => void): void {
    const q = this.queue;
    q.push({ at: Math.max(t, this.now), seq: this.seq++, run });
    for (let i = q.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!before(q[i]!, q[p]!)) break;
      [q[i], q[p]] = [q[p]!, q[i]!];
      i = p;
    }
  }

  runUntil(end: number): void {
    const q = this.queue;
    while (q.length > 0 && q[0]!.at <= end) {
      const next = q[0]!;
      const last = q.pop()!;
      if (q.length > 0) {
        q[0] = last;
        for (let i = 0; ;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < q.length && before(q[l]!, q[m]!)) m = l;
          if (r < q.length && before(q[r]!, q[m]!)) m = r;
          if (m === i) break;
          [q[i], q[m]] = [q[m]!, q[i]!];
          i = m;
        }
      }
      this.now = next.at;
      next.run();
    }
    this.now = end;
  }

  private makeClicks(): void {
    const r = this.rnd;
    const impressions: Array<{ id: string; ad: string; adv: string; created: number }> = [];
    const n = 20 + Math.floor(r() * 40);
    for (let i = 0; i < n; i++) {
      const created = Math.floor(r() * this.lastClick);
      const adv = String(1 + Math.floor(r() * 3));
      impressions.push({ id: `i${i}`, ad: `${adv}0${Math.floor(r() * 3)}`, adv, created });
    }
    const lastKafka = new Map<number, number>();
    for (const imp of impressions) {
      const clicks = 1 + Math.floor(r() * 3);
      for (let c = 0; c < clicks; c++) {
        const ts = imp.created + Math.floor(r() * (TTL + 40));
        if (ts >= this.lastClick) continue;
        const host = Math.floor(r() * this.hosts.length);
        const hs = this.hosts[host]!;
        const spooled = ts >= hs.cutFrom && ts < hs.backAt;
        const status =
          ts - imp.created >= TTL
            ? 'expired'
            : r() < 0.05
              ? 'bad_signature'
              : r() < 0.3
                ? 'duplicate'
                : 'valid';
        const partition = Math.floor(r() * PARTITIONS);
        this.events.push({
          eventId: imp.id,
          ts,
          adId: imp.ad,
          advertiserId: imp.adv,
          status,
          partition,
          host,
          kafkaAt: spooled ? hs.backAt : ts,
          uploadedAt: 0,
        });
      }
    }
    // The archiver: per partition in Kafka order, uploaded after a flush delay (never before the
    // previous upload of the partition: it commits in order).
    this.events.sort((a, b) => a.kafkaAt - b.kafkaAt || a.ts - b.ts);
    for (const e of this.events) {
      const up = Math.max(lastKafka.get(e.partition) ?? 0, e.kafkaAt + 1 + Math.floor(r() * 8));
      lastKafka.set(e.partition, up);
      e.uploadedAt = up;
    }
    // One raw file per (partition, hour, upload instant).
    const files = new Map<string, SimEvent[]>();
    for (const e of this.events) {
      const k = `${e.partition}|${Math.floor(e.ts / H) * H}|${e.uploadedAt}`;
      files.set(k, [...(files.get(k) ?? []), e]);
    }
    for (const [k, evs] of files) {
      const hour = Number(k.split('|')[1]);
      const uploadedAt = evs[0]!.uploadedAt;
      this.at(uploadedAt, () => this.upload(hour, uploadedAt, evs));
    }
  }

  private upload(hour: number, uploadedAt: number, evs: SimEvent[]): void {
    // Clicks reaching the archive after their hour passed the raw cutoff can never be counted.
    for (const e of evs) e.due = this.cutoff === undefined || hour >= this.cutoff;
    const key = `raw/${hour}/f${++this.fileSeq}`;
    this.raw.set(hour, [...(this.raw.get(hour) ?? []), { key, hour, uploadedAt, events: evs }]);
    const rows = this.rawFilesTable.get(hour) ?? new Map<string, number>();
    rows.set(key, uploadedAt);
    this.rawFilesTable.set(hour, rows);
  }

  // ---- completeness (batch-layer/completeness.ts) ----
  complete(hour: number): boolean {
    const hourEnd = hour + H;
    const inKafka = this.events.filter((e) => e.kafkaAt <= this.now);
    const watermarks = new Map<number, number>();
    for (let p = 0; p < PARTITIONS; p++) {
      const buffered = inKafka.filter((e) => e.partition === p && e.uploadedAt > this.now);
      watermarks.set(p, buffered.length ? Math.min(...buffered.map((e) => e.ts)) : this.now - 1);
    }
    const reports: ProcessReport[] = this.hosts.map((hs, i) => {
      const cut = this.now >= hs.cutFrom && this.now < hs.backAt;
      const spool = this.events.filter((e) => e.host === i && e.ts <= this.now && e.kafkaAt > this.now);
      return {
        processId: `host${i}`,
        silentMs: cut && hs.dies ? this.now - hs.cutFrom : 0,
        loggedBefore: spool.length ? Math.min(...spool.map((e) => e.ts)) : cut ? hs.cutFrom : this.now - 1,
        spoolDepth: spool.length,
      };
    });
    const judged = judgeHour({
      hourEnd,
      partitions: [...Array(PARTITIONS).keys()],
      watermarks,
      reports,
      silenceBoundMs: SILENCE_BOUND,
    });
    if (!judged.ready) return false;
    const count = (f: (e: SimEvent) => boolean): Record<string, string> =>
      Object.fromEntries(
        [...Array(PARTITIONS).keys()].map((p) => [
          String(p),
          String(inKafka.filter((e) => e.partition === p && f(e)).length),
        ]),
      );
    return archivedThrough(
      count((e) => e.uploadedAt <= this.now),
      count(() => true),
    );
  }

  // ---- one compaction (batch-layer/compaction.ts): list and index at t0, write at t1 ----
  /** Resolves (via `done`) with true when the hour was finalized, false when it failed or was refused. */
  compact(hour: number, done: (ok: boolean) => void): void {
    const r = this.rnd;
    const t0 = this.now;
    const listed = [...(this.raw.get(hour) ?? [])];
    const recordedAt = (t: number): string[] =>
      [...(this.rawFilesTable.get(hour) ?? new Map<string, number>())]
        .filter(([, u]) => u <= t)
        .map(([k]) => k);
    const refuse = (): string | undefined =>
      refusal({
        hourStart: hour,
        cutoff: this.cutoff,
        listed: listed.map((f) => f.key),
        recorded: recordedAt(t0),
        iso: String,
      });
    if (refuse()) return done(false);
    const seen: Array<Set<string>> = [];
    for (const e of lookbackHoursOf(hour, LOOKBACK, H)) {
      if (e < 0) continue;
      const files = this.raw.get(e) ?? [];
      const source = lookbackSource({
        hourStart: e,
        cutoff: this.cutoff,
        rawFiles: files.length,
        retainedIndex: this.indexes.has(e),
      });
      if (source === 'raw') seen.push(this.indexOf(e, files));
      else if (source === 'retained-index') seen.push(this.indexes.get(e)!.ids);
    }
    const first = firstClicks(
      listed.flatMap((f) => f.events),
      hour,
      H,
    );
    const counted = countedClicks(first, (id) => seen.some((s) => s.has(id)));
    if (listed.length > 0) this.indexOf(hour, listed); // the hour's own index, published beside the writes
    const events = new Set(
      listed.flatMap((f) => f.events.map((e) => `${e.partition}/${e.kafkaAt}/${e.eventId}/${e.ts}`)),
    ).size;
    const t1 = t0 + 1 + Math.floor(r() * 20);
    this.at(t1, () => {
      if (r() < 0.05) return done(false); // the activity crashed (its retry is a new compaction)
      // The write transaction checks again: retention may have run since the listing.
      if (refuse()) return done(false);
      const perAd = new Map<string, number>();
      for (const c of counted) perAd.set(c.adId, (perAd.get(c.adId) ?? 0) + 1);
      const was = this.finals.get(hour);
      const missing = this.events.filter(
        (e) =>
          e.due &&
          Math.floor(e.ts / H) * H === hour &&
          e.uploadedAt <= t0 &&
          !listed.some((f) => f.events.includes(e)),
      );
      if (was && missing.length > 0 && counted.length < was.validClicks)
        this.violations.push(
          `hour ${hour / H} lowered from ${was.validClicks} to ${counted.length} at t=${this.now} with ${missing.length} of its raw inputs gone`,
        );
      const { revision } = nextRevision(was, { validClicks: counted.length, events });
      this.finals.set(hour, { revision, validClicks: counted.length, events, listedAt: t0, perAd });
      this.failing.delete(hour);
      done(true);
    });
  }

  /** An hour's seen ids from its raw files, rebuilding and replacing its index when stale. */
  private indexOf(hour: number, files: readonly RawFile[]): Set<string> {
    const keys = files
      .map((f) => f.key)
      .sort()
      .join(',');
    const current = this.indexes.get(hour);
    if (current?.keys === keys) return current.ids;
    const ids = new Set(
      firstClicks(
        files.flatMap((f) => f.events),
        hour,
        H,
      ).keys(),
    );
    this.indexes.set(hour, { keys, ids });
    return ids;
  }

  /** compactHour: wait (bounded) until complete, then compact; a crash is retried a few times. */
  compactHourWorkflow(hour: number, waitBound: number, done: (ok: boolean) => void = () => undefined): void {
    const deadline = this.now + waitBound;
    let attempts = 0;
    const attempt = (): void => {
      if (!this.complete(hour)) {
        if (this.now >= deadline) {
          this.failing.add(hour);
          return done(false);
        }
        return this.at(this.now + 10, attempt);
      }
      this.compact(hour, (ok) => {
        if (ok) return done(true);
        if (++attempts < 3 && !pastCutoff())
          return this.at(this.now + 2 + Math.floor(this.rnd() * 10), attempt);
        this.failing.add(hour);
        done(false);
      });
    };
    const pastCutoff = (): boolean => this.cutoff !== undefined && hour < this.cutoff;
    attempt();
  }

  /** Runs hours one after the other. */
  sequence(
    hours: readonly number[],
    wait: number,
    each: (h: number, ok: boolean) => void,
    end: () => void,
  ): void {
    const next = (i: number): void => {
      if (i >= hours.length) return end();
      this.compactHourWorkflow(hours[i]!, wait, (ok) => {
        each(hours[i]!, ok);
        next(i + 1);
      });
    };
    next(0);
  }

  // ---- the schedules ----
  private latePathBusy = false;
  latePath(): void {
    if (this.latePathBusy) return; // BUFFER_ALL: the next window waits for this one
    this.latePathBusy = true;
    const done = new Set<number>();
    const round = (): void => {
      const newestUpload = new Map<number, number>();
      for (const [hour, rows] of this.rawFilesTable) newestUpload.set(hour, Math.max(...rows.values()));
      const queue = staleHours({
        finalized: [...this.finals].map(([hour, f]) => ({
          hour,
          listedAt: f.listedAt,
          failing: this.failing.has(hour),
        })),
        newestUpload,
        lookbackHours: LOOKBACK,
        hourMs: H,
        from: this.cutoff ?? 0,
        to: Infinity,
        limit: 48,
        exclude: done,
      });
      if (queue.length === 0) {
        this.latePathBusy = false;
        return;
      }
      for (const h of queue) done.add(h);
      this.sequence(queue, 60, () => undefined, round);
    };
    round();
  }

  sweep(): void {
    const from = Math.max(
      0,
      sweepFrom({ now: this.now, retentionHours: RAW_RETENTION, hourMs: H, cutoff: this.cutoff }),
    );
    const firstRaw = Math.min(...this.rawFilesTable.keys());
    const hours: number[] = [];
    for (let h = Math.max(from, firstRaw); h < Math.floor(this.now / H) * H - 2 * H; h += H)
      if (!this.finals.has(h) || this.failing.has(h)) hours.push(h);
    this.sequence(
      hours.slice(0, 48),
      30,
      () => undefined,
      () => undefined,
    );
  }

  retention(): void {
    const owed: number[] = [];
    const newestUpload = new Map<number, number>();
    for (const [hour, rows] of this.rawFilesTable) {
      newestUpload.set(hour, Math.max(...rows.values()));
      if (!this.finals.has(hour)) owed.push(hour);
    }
    owed.push(
      ...staleHours({
        finalized: [...this.finals].map(([hour, f]) => ({ hour, listedAt: f.listedAt, failing: false })),
        newestUpload,
        lookbackHours: LOOKBACK,
        hourMs: H,
        from: -Infinity,
        to: Infinity,
        limit: Infinity,
      }),
    );
    const cutoff = rawExpiryCutoff({
      now: this.now,
      retentionHours: RAW_RETENTION,
      lookbackHours: LOOKBACK,
      hourMs: H,
      owed,
      previous: this.cutoff,
      maxHoldHours: 1000, // never reached here: no hour fails for good
    });
    this.cutoff = cutoff; // recorded before anything is deleted
    for (const hour of [...this.raw.keys()]) if (hour < cutoff) this.raw.delete(hour);
    for (const hour of [...this.rawFilesTable.keys()]) if (hour < cutoff) this.rawFilesTable.delete(hour);
    for (const hour of [...this.indexes.keys()]) if (hour < cutoff - LOOKBACK * H) this.indexes.delete(hour);
  }

  schedule(): void {
    const r = this.rnd;
    for (let h = 0; h * H < this.end; h++) {
      const t = h * H;
      if (h >= 1) this.at(t + 5, () => this.compactHourWorkflow(t - H, 180));
      this.at(t + 35, () => this.sweep());
      this.at(t + 50, () => this.retention());
      if (t % DAY === 0 && t > 0)
        this.at(t + 30, () => {
          const day = t - DAY;
          const hours = Array.from({ length: DAY / H }, (_, i) => day + i * H);
          this.sequence(
            hours,
            180,
            () => undefined,
            () => undefined,
          );
        });
      for (let m = 0; m < H; m += 15) this.at(t + m + Math.floor(r() * 3), () => this.latePath());
    }
    // Operators' backfills: any window, even one reaching past the raw cutoff.
    const backfills = Math.floor(r() * 3);
    for (let b = 0; b < backfills; b++) {
      const at = Math.floor(r() * this.end * 0.8);
      this.at(at, () => {
        const from = Math.floor((r() * this.now) / H) * H;
        const hours = Array.from({ length: 1 + Math.floor(r() * 4) }, (_, i) => from + i * H).filter(
          (h) => h + H <= Math.floor(this.now / H) * H,
        );
        this.sequence(
          hours,
          5,
          () => undefined,
          () => undefined,
        );
      });
    }
  }

  /** The ground truth: each impression's first due signed, unexpired click, counted in its hour. */
  truth(): Map<number, Map<string, number>> {
    const first = new Map<string, SimEvent>();
    for (const e of this.events)
      if (e.due && (e.status === 'valid' || e.status === 'duplicate')) {
        const was = first.get(e.eventId);
        if (!was || e.ts < was.ts) first.set(e.eventId, e);
      }
    const byHour = new Map<number, Map<string, number>>();
    for (const e of first.values()) {
      const hour = Math.floor(e.ts / H) * H;
      const m = byHour.get(hour) ?? new Map<string, number>();
      m.set(e.adId, (m.get(e.adId) ?? 0) + 1);
      byHour.set(hour, m);
    }
    return byHour;
  }

  /** Runs the seed; returns the first invariant broken, or undefined. */
  run(): string | undefined {
    this.schedule();
    this.runUntil(this.end);
    if (this.violations.length) return this.violations[0];
    const truth = this.truth();
    for (let hour = 0; hour < this.lastClick; hour += H) {
      const want = truth.get(hour) ?? new Map<string, number>();
      const got = this.finals.get(hour);
      const total = [...want.values()].reduce((a, b) => a + b, 0);
      // Not finalized is acceptable only for an hour with nothing due that fell past the raw cutoff
      // while a live host held clicks of it (GET /v1/admin/hours shows it `waiting`).
      if (!got && (total > 0 || this.cutoff === undefined || hour >= this.cutoff))
        return `hour ${hour / H} never finalized (truth ${total})`;
      if (!got) continue;
      const ads = new Set([...want.keys(), ...got.perAd.keys()]);
      for (const ad of ads)
        if ((want.get(ad) ?? 0) !== (got.perAd.get(ad) ?? 0))
          return `hour ${hour / H} final ${got.validClicks} (revision ${got.revision}) but truth ${total}: ad ${ad} ${got.perAd.get(ad) ?? 0} vs ${want.get(ad) ?? 0}`;
    }
    return undefined;
  }
}

const SEEDS = Number(process.env.SIM_SEEDS ?? 2000);

describe('simulation of the batch layer decisions', () => {
  it(`keeps every final hour equal to the ground truth over ${SEEDS} seeded schedules`, () => {
    const only = process.env.SIM_SEED;
    const seeds = only ? [Number(only)] : Array.from({ length: SEEDS }, (_, i) => i + 1);
    const failures: string[] = [];
    for (const seed of seeds) {
      const broken = new Sim(seed).run();
      if (broken)
        failures.push(
          `seed ${seed}: ${broken} (replay: SIM_SEED=${seed} npx vitest run batch-layer/decisions.sim.test.ts)`,
        );
      if (failures.length >= 3) break;
    }
    for (const f of failures) console.error(f);
    expect(failures).toEqual([]);
  }, 60_000);
});

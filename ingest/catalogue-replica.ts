// The click process's replica of the catalogue (docs/catalogue-replica.md): ad id → advertiser,
// redirect URL and state, in an LMDB environment on the click process's own disk, so a click needs
// neither PostgreSQL nor the network to find its ad. One process per host writes it (the click
// primary's feed, ingest/catalogue-feed.ts); every click worker reads it (LMDB readers in several
// processes share the memory-mapped file; a read is a synchronous B-tree lookup, no I/O once hot).
// The offsets of the change topic applied so far are written in the same transaction as the ads
// they brought, so a restart resumes exactly where the replica is, never before or after.
import { open, type Database, type RootDatabase } from 'lmdb';
import { Gauge } from 'prom-client';
import { registry } from '../common/metrics.js';

export interface ReplicaAd {
  advertiserId: string;
  redirectUrl: string;
  /** active, paused, archived… (from the row: `status`, `archived_at`, `paused`); absent: active. */
  state?: string;
}

/** The replica's state as its feed last wrote it; readers judge readiness from it. */
export type FeedState = 'bootstrapping' | 'catching_up' | 'caught_up' | 'stale';

export interface ReplicaStatus {
  state: FeedState;
  /** When the feed last wrote this status (epoch ms): a status older than STATUS_FRESH_MS is 'down'. */
  at: number;
  /** Messages behind the topic's end offsets when last measured (undefined: unknown). */
  lag?: number;
  /** How the replica was built on an empty disk, and how long it took (ms). */
  bootstrap?: { source: 'snapshot' | 'topic'; ms: number; ads: number };
}

/** A feed writes its status every 2 s; older than this, the feed (the click primary) is gone. */
export const STATUS_FRESH_MS = 15_000;

/** An ad row as PostgreSQL's to_jsonb(ads) renders it (columns added later pass through). */
export interface AdRow {
  ad_id: string | number;
  advertiser_id: string | number;
  redirect_url: string;
  status?: string | null;
  paused?: boolean | null;
  archived_at?: string | null;
  [column: string]: unknown;
}

/** What the replica keeps of an ad row: only what a click needs. */
export function replicaAdOf(row: AdRow): ReplicaAd {
  const ad: ReplicaAd = { advertiserId: String(row.advertiser_id), redirectUrl: row.redirect_url };
  const state =
    typeof row.status === 'string'
      ? row.status
      : row.archived_at
        ? 'archived'
        : row.paused
          ? 'paused'
          : undefined;
  if (state && state !== 'active') ad.state = state;
  return ad;
}

/** Partition → next offset to read (Kafka's committed-offset convention). */
export type Offsets = Record<number, string>;

/** One change: the ad's new value, or null when it was deleted. */
export interface AdChange {
  adId: string;
  ad: ReplicaAd | null;
}

type Stored = [advertiserId: string, redirectUrl: string, state?: string];

/** Meta key of a number every write of ads raises (in the same transaction): see CatalogueReplica.get. */
const GENERATION = 'adsGeneration';
/**
 * Ads a reader keeps decoded per generation of the replica, in two halves (the newer is emptied into
 * the older when full), so the hottest ads stay: by Zipf(1) over 10M ads, the 50,000 hottest take
 * about two thirds of the clicks. About 10 MB per full half.
 */
const KEPT_ADS = 50_000;
/**
 * Generations whose written ad ids the replica keeps (the `written` database), so a reader whose
 * kept ads are at most this many generations old drops only the ads written since, not all of them.
 */
export const WRITTEN_GENERATIONS = 4096;
/** A write of more ads than this (a snapshot batch, a large fetch) is recorded as "every ad". */
const WRITTEN_IDS_MAX = 1000;

export class CatalogueReplica {
  private readonly root: RootDatabase;
  private readonly ads: Database<Stored, string>;
  private readonly meta: Database<unknown, string>;
  /** Generation → the ids of the ads it wrote, or null: every ad (a large write, a clear). */
  private readonly written: Database<string[] | null, number>;
  private kept = new Map<string, Readonly<ReplicaAd>>();
  private keptBefore = new Map<string, Readonly<ReplicaAd>>();
  private keptGeneration: unknown;
  /** B-tree reads of ads by `get` (a kept ad costs none): for tests and measurements. */
  diskReads = 0;

  private constructor(readonly path: string) {
    // Durable (synced commits): the replica is what serves clicks through an outage.
    this.root = open({ path, maxDbs: 4 });
    this.ads = this.root.openDB<Stored, string>({ name: 'ads', encoding: 'msgpack', cache: false });
    // Never lmdb's object cache here: `get` must read the generation of ads from the snapshot.
    this.meta = this.root.openDB<unknown, string>({ name: 'meta', encoding: 'msgpack', cache: false });
    this.written = this.root.openDB<string[] | null, number>({
      name: 'written',
      encoding: 'msgpack',
      cache: false,
    });
  }

  /** Opens (creating if needed) the replica in folder `path`; any number of processes may. */
  static open(path: string): CatalogueReplica {
    return new CatalogueReplica(path);
  }

  /**
   * The ad as the replica holds it now. Ads read before are kept decoded while the replica's
   * generation of ads is the one they were read under: the generation is read in the same LMDB
   * snapshot as an ad would be (lmdb keeps one read snapshot per turn of the event loop), and every
   * write of ads raises it in its own transaction, so a kept ad is returned only when a read of the
   * snapshot would return the same ad. In a click worker under load a B-tree read of a 10M-ad
   * replica costs several microseconds (its pages are not in the CPU's caches); reading the
   * generation, a one-page database, costs a fraction of that. Every writer of the replica goes
   * through this class, so every write of ads raises the generation.
   * When the generation moved, the reader drops only the kept ads written since (`follow`): with
   * ads that change all day, dropping every kept ad at each write made nearly every click a B-tree
   * read (README, "eighteenth round").
   */
  get(adId: string): Readonly<ReplicaAd> | undefined {
    const generation = this.meta.get(GENERATION);
    // A replica no write of this version has touched yet has no generation: nothing is kept.
    if (generation === undefined) return this.read(adId);
    if (generation !== this.keptGeneration) this.follow(generation);
    let ad = this.kept.get(adId);
    if (ad) return ad;
    ad = this.keptBefore.get(adId) ?? this.read(adId);
    if (ad) {
      if (this.kept.size >= KEPT_ADS) {
        this.keptBefore = this.kept;
        this.kept = new Map();
      }
      this.kept.set(adId, ad);
    }
    return ad;
  }

  /**
   * Moves the kept ads to `generation`: drops those written by every generation after the kept
   * one, read from the same LMDB snapshot as `generation` itself, so every ad still kept is the
   * ad that snapshot holds. Drops them all when any of those generations is not recorded (older
   * than WRITTEN_GENERATIONS, written by a version before the record, or a write of every ad).
   */
  private follow(generation: unknown): void {
    const from = this.keptGeneration;
    this.keptGeneration = generation;
    if (
      typeof from !== 'number' ||
      typeof generation !== 'number' ||
      generation <= from ||
      generation - from > WRITTEN_GENERATIONS
    ) {
      this.dropKept();
      return;
    }
    let next = from + 1;
    for (const { key, value } of this.written.getRange({ start: next, end: generation + 1 })) {
      if (key !== next || !Array.isArray(value)) break;
      for (const id of value) {
        this.kept.delete(id);
        this.keptBefore.delete(id);
      }
      next++;
    }
    if (next !== generation + 1) this.dropKept();
  }

  private dropKept(): void {
    this.kept = new Map();
    this.keptBefore = new Map();
  }

  private read(adId: string): Readonly<ReplicaAd> | undefined {
    this.diskReads++;
    const v = this.ads.get(adId);
    if (!v) return undefined;
    return Object.freeze(
      v[2]
        ? { advertiserId: v[0], redirectUrl: v[1], state: v[2] }
        : { advertiserId: v[0], redirectUrl: v[1] },
    );
  }

  /**
   * Raises the generation of ads and records the ids it writes (null: every ad), forgetting the
   * record of the generation WRITTEN_GENERATIONS before; called inside every transaction that
   * writes ads.
   */
  private nextGeneration(ids: string[] | null): void {
    const now = this.meta.get(GENERATION);
    const next = (typeof now === 'number' ? now : 0) + 1;
    this.meta.put(GENERATION, next);
    this.written.put(next, ids !== null && ids.length <= WRITTEN_IDS_MAX ? ids : null);
    this.written.remove(next - WRITTEN_GENERATIONS);
  }

  /** Applies changes and records `offsets` of `topic`, in one transaction. */
  apply(topic: string, changes: AdChange[], offsets: Offsets): Promise<unknown> {
    return this.root.transaction(() => {
      for (const c of changes) {
        if (c.ad) this.ads.put(c.adId, stored(c.ad));
        else this.ads.remove(c.adId);
      }
      if (changes.length > 0) this.nextGeneration(changes.map((c) => c.adId));
      this.meta.put(`offsets:${topic}`, { ...this.offsets(topic), ...offsets });
    });
  }

  /** Puts ads without offsets (a snapshot in progress; its offsets are written at its end). */
  putMany(ads: Array<[string, ReplicaAd]>): Promise<unknown> {
    return this.root.transaction(() => {
      for (const [id, ad] of ads) this.ads.put(id, stored(ad));
      this.nextGeneration(ads.map(([id]) => id));
    });
  }

  /** The offsets of `topic` applied so far; undefined on a replica never fed from it. */
  offsets(topic: string): Offsets | undefined {
    return this.meta.get(`offsets:${topic}`) as Offsets | undefined;
  }

  /** Sets the offsets of `topic` (the end of a bootstrap). */
  setOffsets(topic: string, offsets: Offsets): Promise<unknown> {
    return this.meta.put(`offsets:${topic}`, offsets);
  }

  /** Forgets every ad and offset (a bootstrap that did not finish starts again from nothing). */
  clear(): Promise<unknown> {
    return this.root.transaction(() => {
      this.ads.clearSync();
      // The generation is kept, and raised: a reader must not take an ad it kept from before.
      for (const key of this.meta.getKeys()) if (key !== GENERATION) this.meta.remove(key);
      this.written.clearSync();
      this.nextGeneration(null);
    });
  }

  status(): ReplicaStatus | undefined {
    return this.meta.get('status') as ReplicaStatus | undefined;
  }

  setStatus(status: ReplicaStatus): Promise<unknown> {
    return this.meta.put('status', status);
  }

  /** Every ad, in key order (the checksum tool). */
  *entries(): Iterable<[string, ReplicaAd]> {
    for (const { key, value } of this.ads.getRange())
      yield [
        key,
        value[2]
          ? { advertiserId: value[0], redirectUrl: value[1], state: value[2] }
          : { advertiserId: value[0], redirectUrl: value[1] },
      ];
  }

  /** Number of ads (LMDB keeps it; no scan). */
  get count(): number {
    return (this.ads.getStats() as { entryCount: number }).entryCount;
  }

  /** Writes one ad without any feed (the checksum test corrupts a replica with it). */
  putSync(adId: string, ad: ReplicaAd | null): void {
    this.root.transactionSync(() => {
      if (ad) this.ads.put(adId, stored(ad));
      else this.ads.remove(adId);
      this.nextGeneration([adId]);
    });
  }

  close(): Promise<void> {
    return this.root.close();
  }
}

function stored(ad: ReplicaAd): Stored {
  return ad.state ? [ad.advertiserId, ad.redirectUrl, ad.state] : [ad.advertiserId, ad.redirectUrl];
}

/** Whether every partition's applied offset reached its target (partitions with no target: yes). */
export function reached(applied: Offsets | undefined, targets: Offsets): boolean {
  for (const [p, end] of Object.entries(targets)) {
    if (BigInt(end) === 0n) continue;
    const at = applied?.[Number(p)];
    if (at === undefined || BigInt(at) < BigInt(end)) return false;
  }
  return true;
}

/** Messages between the applied offsets and the targets, summed over partitions. */
export function lagOf(applied: Offsets | undefined, targets: Offsets): number {
  let lag = 0n;
  for (const [p, end] of Object.entries(targets)) {
    const at = BigInt(applied?.[Number(p)] ?? '0');
    if (BigInt(end) > at) lag += BigInt(end) - at;
  }
  return Number(lag);
}

/**
 * Readiness of a click process from its replica's status: ready when the feed caught up, or when it
 * cannot reach Kafka but the replica holds a catalogue it caught up to before (it serves the last
 * known catalogue, as it would through any Kafka outage); not ready while it bootstraps or catches
 * up, or when no feed has written a status lately (the writer is gone).
 */
export function replicaReady(
  status: ReplicaStatus | undefined,
  now: number,
): { ready: boolean; state: string } {
  if (!status) return { ready: false, state: 'no_feed' };
  if (now - status.at > STATUS_FRESH_MS) return { ready: false, state: 'feed_silent' };
  return { ready: status.state === 'caught_up' || status.state === 'stale', state: status.state };
}

let gaugedReplica: CatalogueReplica | undefined;
/**
 * Gauges of the replica this process reads, from its feed's last status (the click worker's
 * /metrics; the cluster reports the highest value over the workers): adclick_catalogue_replica_lag
 * (messages behind the topic), _ads, _ready (1/0) and _status_age_seconds.
 */
export function registerReplicaGauges(replica: CatalogueReplica): void {
  const first = gaugedReplica === undefined;
  gaugedReplica = replica;
  if (!first) return;
  const gauge = (
    name: string,
    help: string,
    value: (r: CatalogueReplica, s: ReplicaStatus | undefined) => number,
  ) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      aggregator: 'max',
      collect() {
        const r = gaugedReplica;
        if (!r) return;
        try {
          this.set(value(r, r.status()));
        } catch {
          // a closed replica (a stopped service in a test): nothing to report
        }
      },
    });
  gauge(
    'adclick_catalogue_replica_lag',
    'Ad changes the catalogue replica is behind its topic (last measured)',
    (_, s) => s?.lag ?? -1,
  );
  gauge('adclick_catalogue_replica_ads', 'Ads in the catalogue replica', (r) => r.count);
  gauge(
    'adclick_catalogue_replica_ready',
    '1 when the catalogue replica is caught up (or stale with Kafka away)',
    (_, s) => (replicaReady(s, Date.now()).ready ? 1 : 0),
  );
  gauge(
    'adclick_catalogue_replica_status_age_seconds',
    'Seconds since the feed last wrote the replica status',
    (_, s) => (s ? (Date.now() - s.at) / 1000 : -1),
  );
}

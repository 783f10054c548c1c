// Feeds a catalogue replica (ingest/catalogue-replica.ts) from the compacted topic of ad changes
// (written by catalogue/relay.ts). Run by ONE process per host: the click primary.
//
// On an empty replica it bootstraps first: it notes the topic's end offsets, THEN copies the ads
// from PostgreSQL (COPY, streamed) and records those offsets; every change published before them is
// in the copy, and reading the topic from them replays any change the copy may have missed (a
// change re-applied is harmless: the topic holds whole rows, in order per ad). With PostgreSQL away
// it bootstraps from the topic alone, which holds every ad (migration 009 published the existing
// ones). Then it follows the topic, applying each fetched batch and its offsets in one LMDB
// transaction. The feed never needs PostgreSQL once bootstrapped, and never exits because Kafka or
// PostgreSQL went away: it retries, and reports where it is in the replica's status.
import { randomUUID } from 'node:crypto';
import type { Admin, Batch, Consumer, Kafka } from 'kafkajs';
import type pg from 'pg';
import {
  lagOf,
  reached,
  replicaAdOf,
  type AdChange,
  type AdRow,
  type CatalogueReplica,
  type FeedState,
  type Offsets,
  type ReplicaAd,
  type ReplicaStatus,
} from './catalogue-replica.js';
import { config } from '../common/config.js';
import { copyOut } from '../common/db.js';
import { adChangesTopicSpec, ensureTopics } from '../common/kafka.js';
import { sleep } from '../common/wait.js';

export interface CatalogueFeedOptions {
  replica: CatalogueReplica;
  kafka: Kafka;
  topic: string;
  /** For the bootstrap snapshot; undefined or unreachable: from the topic alone. */
  pool?: pg.Pool;
  /** Bootstrap from the topic even when PostgreSQL answers (to measure it; tests). */
  bootstrapFrom?: 'snapshot' | 'topic';
  /** How long the snapshot may wait for its next rows before it gives up (default SNAPSHOT_STALL_MS). */
  snapshotStallMs?: number;
  log?: (message: string) => void;
  now?: () => number;
}

export interface CatalogueFeed {
  /** Resolves once the replica has caught up with the topic (first time in this run). */
  caughtUp: Promise<void>;
  status(): ReplicaStatus;
  stop(): Promise<void>;
}

const STATUS_EVERY_MS = 2000;
const RETRY_MS = 2000;

/** A partition's offsets as Kafka's admin client lists them. */
interface PartitionEnds {
  partition: number;
  high: string;
}

/**
 * Why a replica's applied offsets cannot be of this topic, or undefined when they can be: a
 * partition the topic does not have, or an offset past the partition's end. Such offsets come from
 * another topic of the same name: one deleted and created again, or another Kafka cluster (a replica
 * folder shared by two stacks). Kafka would answer "offset out of range" and the consumer would start
 * over from the beginning, on top of ads of another catalogue.
 */
export function foreignOffsets(applied: Offsets, ends: PartitionEnds[]): string | undefined {
  const endOf = new Map(ends.map((e) => [e.partition, BigInt(e.high)]));
  for (const [p, at] of Object.entries(applied)) {
    const end = endOf.get(Number(p));
    if (end === undefined) return `partition ${p} is not in the topic`;
    if (BigInt(at) > end) return `partition ${p} read up to offset ${at}, past the topic's end ${end}`;
  }
  return undefined;
}

export function startCatalogueFeed(opts: CatalogueFeedOptions): CatalogueFeed {
  const feed = new Feed(opts);
  feed.writeStatus();
  void feed.run();
  return { caughtUp: feed.caughtUp, status: () => feed.status(), stop: () => feed.stop() };
}

/** One feed's state and steps; startCatalogueFeed is its public face. */
class Feed {
  readonly caughtUp: Promise<void>;
  private readonly replica: CatalogueReplica;
  private readonly kafka: Kafka;
  private readonly topic: string;
  private readonly log: (message: string) => void;
  private readonly now: () => number;
  private state: FeedState;
  private lag: number | undefined;
  private bootstrap: ReplicaStatus['bootstrap'];
  private targets: Offsets | undefined;
  private stopped = false;
  private consumer: Consumer | undefined;
  private admin: Admin | undefined;
  private markCaughtUp!: () => void;
  private stopTimer = (): void => undefined;

  constructor(private readonly opts: CatalogueFeedOptions) {
    this.replica = opts.replica;
    this.kafka = opts.kafka;
    this.topic = opts.topic;
    this.log = opts.log ?? ((m: string) => console.error(`[catalogue] ${m}`));
    this.now = opts.now ?? Date.now;
    this.state = this.replica.offsets(this.topic) ? 'catching_up' : 'bootstrapping';
    this.bootstrap = this.replica.status()?.bootstrap;
    this.caughtUp = new Promise<void>((resolve) => (this.markCaughtUp = resolve));
  }

  status(): ReplicaStatus {
    const { state, lag, bootstrap } = this;
    return { state, at: this.now(), lag, ...(bootstrap && { bootstrap }) };
  }

  /** After stop() the replica may be closed: nothing may touch it any more. */
  writeStatus(): void {
    if (!this.stopped) void this.replica.setStatus(this.status()).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopTimer();
    await this.consumer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }

  private checkCaughtUp(): void {
    if (!this.targets || this.stopped) return;
    const applied = this.replica.offsets(this.topic);
    this.lag = lagOf(applied, this.targets);
    if (this.state === 'caught_up' || !reached(applied, this.targets)) return;
    this.state = 'caught_up';
    this.writeStatus();
    this.markCaughtUp();
    this.log(`replica caught up with ${this.topic} (${this.replica.count} ads)`);
  }

  private async endOffsets(): Promise<Offsets> {
    const out: Offsets = {};
    for (const p of await this.admin!.fetchTopicOffsets(this.topic)) out[p.partition] = p.high;
    return out;
  }

  /** Connects, bootstraps if need be, and follows the topic; retries until it runs or is stopped. */
  async run(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        this.admin ??= this.kafka.admin();
        await this.admin.connect();
        await ensureTopics(this.admin, [adChangesTopicSpec(this.topic)]);
        if (this.stopped) return;
        await this.forgetForeignOffsets();
        if (!this.replica.offsets(this.topic)) await this.bootstrapReplica();
        if (this.stopped) return;
        this.targets = await this.endOffsets();
        if (this.stopped) return;
        await this.follow();
        this.checkCaughtUp();
        return;
      } catch (e) {
        if (this.stopped) return;
        // Kafka away: a replica that has a catalogue keeps serving it (stale, still ready).
        if (this.state === 'catching_up' && this.replica.offsets(this.topic)) this.state = 'stale';
        this.writeStatus();
        if (attempt % 15 === 0)
          this.log(`feed not running (${(e as Error).message}); retrying every ${RETRY_MS} ms`);
        await this.consumer?.disconnect().catch(() => undefined);
        this.consumer = undefined;
        await sleep(RETRY_MS);
      }
    }
  }

  /** Offsets that cannot be of this topic (foreignOffsets): the replica is built again. */
  private async forgetForeignOffsets(): Promise<void> {
    const applied = this.replica.offsets(this.topic);
    if (!applied) return;
    const why = foreignOffsets(applied, await this.admin!.fetchTopicOffsets(this.topic));
    if (why === undefined || this.stopped) return;
    this.log(`the replica's offsets are not of this topic ${this.topic} (${why}): building it again`);
    await this.replica.clear();
  }

  private async bootstrapReplica(): Promise<void> {
    const { replica, topic, opts } = this;
    this.state = 'bootstrapping';
    this.writeStatus();
    await replica.clear();
    const started = this.now();
    const ends = await this.endOffsets(); // BEFORE the snapshot: see the header
    let source: 'snapshot' | 'topic' = 'topic';
    let ads = 0;
    if (opts.pool && opts.bootstrapFrom !== 'topic') {
      try {
        ads = await snapshot(opts.pool, replica, opts.snapshotStallMs ?? SNAPSHOT_STALL_MS);
        source = 'snapshot';
      } catch (e) {
        this.log(
          `snapshot from PostgreSQL failed (${(e as Error).message}); bootstrapping from ${topic} alone`,
        );
        await replica.clear();
      }
    }
    if (source === 'snapshot') await replica.setOffsets(topic, ends);
    else {
      const starts: Offsets = {};
      for (const p of await this.admin!.fetchTopicOffsets(topic)) starts[p.partition] = p.low;
      await replica.setOffsets(topic, starts);
    }
    this.bootstrap = { source, ms: this.now() - started, ads };
    this.state = 'catching_up';
    this.writeStatus();
    if (source === 'snapshot')
      this.log(`bootstrapped ${ads} ads from a PostgreSQL snapshot in ${this.bootstrap.ms} ms`);
  }

  /** A consumer from the replica's offsets, applying each batch with its offsets. */
  private async follow(): Promise<void> {
    const { topic } = this;
    const c = this.kafka.consumer({
      groupId: `adclick-catalogue-replica-${randomUUID()}`, // offsets live in the replica, never committed
      maxBytes: 16 * 1024 * 1024,
      // A fetch waits at the broker until a change arrives (one byte is enough) or this long, so
      // the wait adds nothing to a change's way to the replica; it only sets how often an idle feed
      // asks: 10 times a second at 100 ms cost an idle click process about 1 s of CPU per 40 s.
      maxWaitTimeInMs: 1000,
    });
    this.consumer = c;
    let crashed: ((e: Error) => void) | undefined;
    const failed = new Promise<never>((_, reject) => (crashed = reject));
    c.on(c.events.CRASH, (e) => {
      if (!e.payload.restart) crashed?.(e.payload.error);
    });
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: ({ batch, resolveOffset, heartbeat }) => this.applyBatch(batch, resolveOffset, heartbeat),
    });
    for (const [p, offset] of Object.entries(this.replica.offsets(topic) ?? {}))
      c.seek({ topic, partition: Number(p), offset });
    this.startStatusTimer();
    this.checkCaughtUp();
    this.writeStatus();
    // A consumer that crashed for good is rebuilt from the offsets in the replica.
    failed.catch((e: Error) => {
      this.stopTimer();
      if (this.stopped) return;
      this.log(`consumer stopped (${e.message}); resuming from the replica's offsets`);
      void c.disconnect().catch(() => undefined);
      this.consumer = undefined;
      setTimeout(() => void this.run(), RETRY_MS);
    });
  }

  private async applyBatch(
    batch: Batch,
    resolveOffset: (offset: string) => void,
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    if (this.stopped) return;
    const changes: AdChange[] = [];
    for (const m of batch.messages) {
      const adId = m.key?.toString();
      if (!adId) continue;
      changes.push({ adId, ad: m.value ? replicaAdOf(JSON.parse(m.value.toString()) as AdRow) : null });
    }
    const last = batch.lastOffset();
    if (this.stopped) return;
    await this.replica.apply(this.topic, changes, { [batch.partition]: (BigInt(last) + 1n).toString() });
    resolveOffset(last);
    await heartbeat();
    this.checkCaughtUp();
  }

  /**
   * Every few seconds: the status for the readers, and the lag against the topic's ends. The status
   * is written whatever Kafka does: its time says that this feed is alive, and a broker that hangs
   * (no answer, no error, for as long as the client waits) must not make the replica look abandoned
   * (`feed_silent`) and take every click process out of the load balancer. One end-offsets request
   * at a time: a hung broker must not pile them up.
   */
  private startStatusTimer(): void {
    let asking = false;
    const timer = setInterval(() => {
      this.writeStatus();
      if (asking) return;
      asking = true;
      this.endOffsets()
        .then(
          (ends) => {
            if (this.stopped) return;
            this.targets = this.state === 'caught_up' ? ends : this.targets;
            this.lag = lagOf(this.replica.offsets(this.topic), ends);
            this.checkCaughtUp();
            this.writeStatus();
          },
          () => undefined,
        )
        .finally(() => (asking = false));
    }, STATUS_EVERY_MS);
    timer.unref();
    this.stopTimer = () => clearInterval(timer);
  }
}

/** How long the snapshot may wait for its next rows from PostgreSQL before it gives up. */
export const SNAPSHOT_STALL_MS = 30_000;

/**
 * Copies every ad from PostgreSQL into the replica (streamed, in transactions of 20,000). The copy of
 * a large catalogue outlasts the statement deadline of the pool it is given (a long-running
 * process's 10 s; 10M ads take about a minute), so it runs under the batch jobs' deadline
 * (DATABASE_BATCH_STATEMENT_TIMEOUT_MS) and is given up once PostgreSQL sends nothing for `stallMs`:
 * a hung server still ends it, a big catalogue does not.
 */
async function snapshot(pool: pg.Pool, replica: CatalogueReplica, stallMs: number): Promise<number> {
  const client = await pool.connect();
  let count = 0;
  let watchdog: NodeJS.Timeout | undefined;
  try {
    const deadlineMs = config.DATABASE_BATCH_STATEMENT_TIMEOUT_MS;
    await client.query(`set statement_timeout = ${deadlineMs}`);
    // One consistent view, and the whole row so columns added later reach the replica too.
    // pg's client-side deadline a second past the server's.
    const stream = copyOut(
      client,
      'copy (select a.ad_id, to_jsonb(a) from ads a) to stdout',
      deadlineMs + 1000,
    );
    // Only the waits for PostgreSQL count: the clock restarts after each chunk has been handled.
    let waitingSince = performance.now();
    watchdog = setInterval(
      () => {
        if (performance.now() - waitingSince > stallMs)
          stream.destroy(new Error(`PostgreSQL sent no rows for ${stallMs} ms`));
      },
      Math.min(1000, stallMs / 4),
    );
    let rest = '';
    let batch: Array<[string, ReplicaAd]> = [];
    let pending: Promise<unknown> | undefined;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        const row = parseCopyLine(line);
        if (!row) continue;
        batch.push(row);
        count++;
      }
      if (batch.length >= 20_000) {
        await pending;
        pending = replica.putMany(batch);
        batch = [];
      }
      waitingSince = performance.now();
    }
    clearInterval(watchdog);
    const last = parseCopyLine(rest);
    if (last) {
      batch.push(last);
      count++;
    }
    await pending;
    await replica.putMany(batch);
    await client.query('reset statement_timeout');
    client.release();
  } catch (e) {
    clearInterval(watchdog);
    client.release(e as Error);
    throw e;
  }
  return count;
}

/** One line of `copy (select ad_id, to_jsonb(ads)) to stdout` (text format) as [ad id, ad]. */
export function parseCopyLine(line: string): [string, ReplicaAd] | undefined {
  const tab = line.indexOf('\t');
  if (tab <= 0) return undefined;
  let json = line.slice(tab + 1);
  // Text COPY escapes backslashes (JSON's own escapes); jsonb's text has no raw control characters.
  if (json.includes('\\')) json = json.replace(/\\\\/g, '\\');
  return [line.slice(0, tab), replicaAdOf(JSON.parse(json) as AdRow)];
}

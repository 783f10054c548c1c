// The archiver: a Kafka consumer group on `clicks` that writes every event (all statuses) to Parquet
// in S3, one object per (event hour, partition, offset range), and commits offsets only after the
// upload. A crash between upload and commit re-reads the range; the next flush may cut it at other
// offsets, so files may overlap — harmless, because compaction counts distinct impression ids and
// distinct (partition, offset) messages, never rows. Per-partition watermarks go to PostgreSQL.
//
// A message that is no click event it can read (a newer encoding, a bug, a foreign producer) stops
// its partition: the archiver pauses it, says so (log every minute, `archiver_stopped_partitions`),
// and never commits past it, as skipping it would lose authoritative data. What comes before it is
// archived and committed as usual. After deploying a version that reads it (or deliberately moving
// the group past it with kafka-consumer-groups.sh --reset-offsets), restart the archiver.
//
// Memory stays bounded when S3 is down: a failed flush keeps its rows, a message already buffered is
// never buffered again (redelivered batches are skipped by offset), and at `maxBufferedEvents` the
// consumer stops fetching until a flush succeeds — the outage shows as consumer lag, Kafka keeps the
// events, and the timer retries the upload and resumes.
//
// Outages of Kafka, S3 or PostgreSQL never end the process (docs/dependencies.md): a failed flush
// keeps its rows, a crashed consumer is restarted in-process, and a stall watchdog compares each
// owned partition's committed offset with its end: one that stands still with lag for
// KAFKA_STALL_AFTER_MS (not because S3 or PostgreSQL refuse the flushes, nor at an undecodable
// message) is logged, its buffer dropped (re-read from the committed offset) and the consumer
// rejoins the group — what a restart of the process would do, without one.
import { mkdir } from 'node:fs/promises';
import type { Admin, Consumer, ConsumerRunConfig, EachBatchPayload } from 'kafkajs';
import { decodeClickEvent, type ClickEvent } from '../common/click-event.js';
import { config } from '../common/config.js';
import { ConsumerWatchdog, type PartitionProgress, type Stall } from '../common/consumer-watchdog.js';
import type { Probe } from '../common/health.js';
import { superviseConsumer } from '../common/startup.js';
import { isId } from '../common/ids.js';
import { bufferedGauge, consumerLag, lostCommits } from './archiver-metrics.js';
import {
  clampOffset,
  commitLost,
  groupOffsets,
  watermarkInputs,
  writeWatermark,
} from './archive-watermarks.js';
import { CommitNotSent, PartitionFlushes } from './archiver-flushes.js';
import { offsetAfter, type ArchiverOptions } from './partition-buffer.js';
import { StoppedPartitions } from './stopped-partitions.js';
import { partitionWatermark } from './watermark.js';

export type { ArchiverOptions } from './partition-buffer.js';

export class Archiver extends PartitionFlushes {
  private consumer: Consumer;
  private admin: Admin;
  private assigned = new Set<number>();
  private timer?: NodeJS.Timeout;
  private ticking = false;
  private tickStartedAt = 0;
  private lostCommitLoggedAt = 0;
  /** Offsets KafkaJS really sent in a commit, by partition (its COMMIT_OFFSETS event). */
  private readonly sentCommits = new Map<number, string>();
  /** Fetching is paused because the buffers are full and a flush failed. */
  private paused = false;
  /** Partitions stopped at an undecodable message (logged every minute). */
  private readonly stopped: StoppedPartitions;
  private readonly watchdog: ConsumerWatchdog;
  private supervision!: { probe: Probe; stop: () => void };
  private runConfig!: ConsumerRunConfig;
  private started = false;
  private stopping = false;
  private readonly log: (message: string) => void;

  constructor(opts: ArchiverOptions) {
    super(opts);
    this.log = opts.log ?? ((m: string) => console.error(m));
    this.admin = opts.kafka.admin();
    this.stopped = new StoppedPartitions(opts.topic, opts.log ?? console.error);
    this.consumer = this.makeConsumer();
    const stallAfterMs = opts.stallAfterMs ?? config.KAFKA_STALL_AFTER_MS;
    this.watchdog = new ConsumerWatchdog({
      group: opts.groupId,
      topic: opts.topic,
      stallAfterMs,
      progress: () => this.progress(),
      // Not stalls: partitions stopped at an undecodable message, a partition whose upload is under
      // way (it has the S3 client's deadlines; replacing the consumer under it would throw its commit
      // away and start again, a livelock when uploads are slower than stallAfterMs), and every
      // partition while S3 or PostgreSQL refuse the flushes (the lag is the outage's, and Kafka
      // keeps the events).
      held: () =>
        this.paused || Date.now() - this.lastFlushFailureAt < stallAfterMs
          ? new Set(this.assigned)
          : new Set([
              ...this.stopped.partitions(),
              ...[...this.buffers].filter(([, b]) => b.uploading > 0).map(([p]) => p),
            ]),
      onStall: (stalls) => this.rejoin(stalls),
      log: this.log,
    });
  }

  /**
   * A KafkaJS consumer of the group, with its batch handler and supervision. Replaced as a whole on a
   * stall (`rejoin`): a retired one is never restarted by KafkaJS, and batches it still delivers are
   * not taken (see `rejoin` for why).
   */
  private makeConsumer(): Consumer {
    const consumer: Consumer = this.opts.kafka.consumer({
      groupId: this.opts.groupId,
      sessionTimeout: 30_000,
      ...this.opts.fetch,
      retry: {
        retries: 5,
        initialRetryTime: 200,
        restartOnFailure: async () => consumer === this.consumer && !this.stopping,
      },
    });
    const runConfig: ConsumerRunConfig = {
      autoCommit: false,
      // Resolved message by message: when onBatch stops early (buffers full), the rest of the batch
      // is fetched again after the resume instead of being skipped.
      eachBatchAutoResolve: false,
      eachBatch: async (payload) => {
        if (consumer === this.consumer) await this.onBatch(payload);
      },
    };
    this.runConfig = runConfig;
    consumer.on(consumer.events.COMMIT_OFFSETS, ({ payload }) => {
      if (consumer !== this.consumer) return;
      for (const t of payload.topics)
        if (t.topic === this.opts.topic)
          for (const p of t.partitions) this.sentCommits.set(Number(p.partition), String(p.offset));
    });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      if (consumer !== this.consumer) return;
      const mine = new Set(payload.memberAssignment[this.opts.topic] ?? []);
      // Buffers of partitions moved elsewhere are dropped uncommitted: the new owner re-reads them.
      for (const p of this.buffers.keys()) if (!mine.has(p)) this.buffers.delete(p);
      this.assigned = mine;
    });
    this.supervision?.stop();
    this.supervision = superviseConsumer(consumer, {
      name: `archiver ${this.opts.groupId}`,
      run: () => consumer.run(runConfig),
      log: this.log,
    });
    return consumer;
  }

  /** For /readyz: the consumer is a member of its group (not crashed, not stopped). */
  get consumerProbe(): Probe {
    return () => this.supervision.probe();
  }

  /** Connects and joins the group; may be called again after it failed (Kafka away at start). */
  async start(): Promise<void> {
    await mkdir(this.opts.workDir, { recursive: true });
    await this.admin.connect();
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.opts.topic, fromBeginning: this.opts.fromBeginning ?? true });
    await this.consumer.run(this.runConfig);
    this.started = true;
    const every = Math.min(this.opts.flushMs, 5000);
    this.timer = setInterval(() => void this.tick(), every);
    this.watchdog.start();
  }

  /** Committed (Kafka) and end offsets of the partitions this member owns. */
  private async progress(): Promise<PartitionProgress[]> {
    if (this.assigned.size === 0) return [];
    const { end, committed } = await groupOffsets(this.admin, this.opts.topic, this.opts.groupId);
    return [...this.assigned].map((partition) => {
      const b = this.buffers.get(partition);
      return {
        partition,
        committed: Number(committed.get(partition) ?? -1n),
        end: Number(end.get(partition) ?? 0n),
        // Reading the lag is work on it: the stall clock starts again (see PartitionProgress).
        activity: b ? `read ${b.lastOffset ?? 'none'}` : undefined,
      };
    });
  }

  /**
   * What a restart of the process would do for stalled partitions, in-process: their buffers are
   * dropped (re-read from the committed offset, whatever this process believed it had read or
   * committed), and the KafkaJS consumer is replaced by a new one that joins the group and fetches
   * every owned partition from its committed offset.
   *
   * Why a new consumer and not stop/run: the stall of issue 23, reproduced on a private stack (clicks
   * grown 4 -> 6 partitions under traffic, then Kafka killed under load and restarted; the consumer
   * crash-restarted by KafkaJS, twice while the group coordinator was loading), comes from KafkaJS
   * answering a commit with success without sending it whenever its runner is not running (runner.js
   * `commitOffsets`: "consumer not running, exiting"; errors are swallowed the same way). The archiver
   * uploaded, believed each commit done, and the group's offsets stood still; in one run for over a
   * minute while batches were still delivered. A partition that gets nothing new after such a commit
   * never commits again (its buffer says "committed"): issue 23's partition 4. `commit` now checks that
   * KafkaJS sent it, `recordWatermarks` re-commits when the group is behind, and should a consumer stay
   * in that state, this replaces it: a fresh one has one runner, and the retired one is never
   * restarted (`restartOnFailure`) and delivers nothing more to `onBatch`.
   */
  async rejoin(stalls: Array<Pick<Stall, 'partition'>>): Promise<void> {
    if (this.stopping) return;
    this.stats.stalls += stalls.length;
    for (const { partition } of stalls) {
      // What this process believed of the partition: the log line a stall's diagnosis starts from.
      const b = this.buffers.get(partition);
      this.log(
        `stalled partition ${partition}: ${b ? `${b.rows.length} rows buffered, ${b.uploading} uploading, last read offset ${b.lastOffset ?? 'none'}, last committed here ${b.committedOffset ?? 'none'}` : 'no buffer'}` +
          `; assigned here: ${this.assigned.has(partition)}, fetching paused: ${this.paused}; ` +
          'dropping its buffer and rejoining with a new consumer',
      );
    }
    const old = this.consumer;
    this.consumer = this.makeConsumer();
    this.assigned = new Set();
    for (const { partition } of stalls) this.buffers.delete(partition);
    await withDeadline(old.disconnect(), 30_000, 'leaving the group').catch((e: Error) =>
      this.log(`rejoin: the old consumer did not leave cleanly (${e.message})`),
    );
    this.paused = false;
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.opts.topic, fromBeginning: this.opts.fromBeginning ?? true });
    await this.consumer.run(this.runConfig);
    this.pauseStopped();
  }

  /** Flushes what is buffered, then leaves the group. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.watchdog.stop();
    this.supervision.stop();
    if (this.timer) clearInterval(this.timer);
    if (!this.started) {
      await this.consumer.disconnect().catch(() => undefined);
      await this.admin.disconnect().catch(() => undefined);
      return;
    }
    // Offsets can only be committed while the consumer runs: pause fetching, flush and commit what
    // is buffered, then leave the group.
    try {
      this.consumer.pause([{ topic: this.opts.topic }]);
    } catch {
      // not running (crashed and not restarted yet): nothing is fetched anyway
    }
    for (const p of [...this.buffers.keys()]) {
      // What cannot be uploaded now stays uncommitted: the next owner reads it again from Kafka.
      await this.flush(p).catch((e: Error) =>
        this.opts.log?.(`final flush of partition ${p} failed: ${e.message}`),
      );
    }
    await this.consumer.disconnect();
    await this.admin.disconnect();
  }

  private async onBatch({
    batch,
    heartbeat,
    resolveOffset,
    isRunning,
    isStale,
  }: EachBatchPayload): Promise<void> {
    const b = this.buffer(batch.partition);
    const lag = (): void =>
      consumerLag.set(
        { partition: String(batch.partition) },
        Math.max(0, Number(batch.highWatermark) - Number(b.lastOffset ?? -1) - 1),
      );
    // Per message only what a message needs: KafkaJS learns the last offset handled, and the gauge
    // its value, once before every await and at the end (each message's own calls were ~6 % of the
    // archiver's CPU). Between awaits nothing else runs, so no seek, stop or rejoin can come between
    // a message and its resolution, and running and staleness need checking only after an await.
    let handled: string | undefined;
    const settle = (): void => {
      if (handled !== undefined) resolveOffset(handled);
      handled = undefined;
      bufferedGauge.set(this.bufferedEvents);
    };
    let awaited = true;
    for (const m of batch.messages) {
      if (awaited) {
        if (!isRunning() || isStale()) return;
        awaited = false;
      }
      if (b.lastOffset !== undefined && !offsetAfter(m.offset, b.lastOffset)) {
        // Fetched again (a rejoin that kept this partition, a retried batch): already buffered.
        handled = m.offset;
        continue;
      }
      if (this.bufferedEvents >= this.maxBuffered) {
        settle();
        awaited = true;
        if (!(await this.makeRoom())) {
          this.pauseFetching();
          lag();
          return; // unresolved: this message and the rest are fetched again after the resume
        }
      }
      let event: ClickEvent;
      try {
        event = decodeClickEvent(m.value ?? Buffer.alloc(0));
        if (!isId(event.adId) || !isId(event.advertiserId)) throw new Error('malformed ad or advertiser id');
      } catch (e) {
        settle();
        this.stopPartition(batch.partition, m.offset, (e as Error).message);
        lag();
        return; // unresolved: never consumed, never committed
      }
      b.lastMessageTime = Number(m.timestamp);
      b.lastOffset = m.offset;
      if (b.rows.length === 0) b.openedAt = Date.now();
      b.rows.push({ event, partition: batch.partition, offset: m.offset });
      b.minTs = b.minTs === undefined ? event.ts : Math.min(b.minTs, event.ts);
      handled = m.offset;
      if (b.rows.length >= this.opts.flushEvents && Date.now() >= this.flushRetryAt) {
        settle();
        awaited = true;
        // A failed flush keeps its rows; the bound above decides when to stop fetching.
        await this.flush(batch.partition).catch((e: Error) => this.noteFlushFailure(batch.partition, e));
        await heartbeat();
      }
    }
    settle();
    lag();
  }

  /** Stops a partition at a message it cannot read; what was read before it is still archived. */
  private stopPartition(partition: number, offset: string, reason: string): void {
    this.stopped.stop(partition, offset, reason);
    this.consumer.pause([{ topic: this.opts.topic, partitions: [partition] }]);
  }

  /** Partitions stopped at a message they cannot read stay paused (after a resume or a rejoin). */
  private pauseStopped(): void {
    const partitions = this.stopped.partitions();
    if (partitions.length > 0) this.consumer.pause([{ topic: this.opts.topic, partitions }]);
  }

  private pauseFetching(): void {
    if (this.paused) return;
    this.paused = true;
    this.stats.pauses++;
    this.consumer.pause([{ topic: this.opts.topic }]);
    this.opts.log?.(
      `${this.bufferedEvents} events buffered (bound ${this.maxBuffered}) and S3 does not take them: fetching paused until a flush succeeds`,
    );
  }

  protected async commit(partition: number, lastOffset: string): Promise<void> {
    const offset = (BigInt(lastOffset) + 1n).toString();
    this.sentCommits.delete(partition);
    await this.consumer.commitOffsets([{ topic: this.opts.topic, partition, offset }]);
    // KafkaJS resolves a commit it did not send when its runner is not running (see `rejoin`); one
    // it sent emitted COMMIT_OFFSETS before resolving. Not sent is a failed flush: rows kept, retried.
    if (this.sentCommits.get(partition) !== offset) {
      lostCommits.inc();
      throw new CommitNotSent(
        `KafkaJS did not send the commit of ${this.opts.topic} partition ${partition} at ${offset} (its consumer is not running)`,
      );
    }
    this.stats.commits++;
  }

  /** Time-based flushes and watermark updates, also for partitions that receive nothing. */
  async tick(): Promise<void> {
    // One tick at a time; but a tick stuck on a call that never answers must not end every later
    // time-based flush (each partition's flushes stay serialized by its own lock).
    const stuckAfterMs = Math.max(120_000, 4 * this.opts.flushMs);
    if (this.ticking && Date.now() - this.tickStartedAt < stuckAfterMs) return;
    if (this.ticking)
      (this.opts.log ?? console.error)(
        `the previous tick has run for ${Math.round((Date.now() - this.tickStartedAt) / 1000)} s: starting another`,
      );
    this.ticking = true;
    this.tickStartedAt = Date.now();
    try {
      const now = Date.now();
      for (const [p, b] of this.buffers) {
        const pending =
          b.rows.length > 0 || (b.lastOffset !== undefined && b.lastOffset !== b.committedOffset);
        // While paused every buffer is retried at once: the sooner they are empty, the sooner it resumes.
        if (pending && (this.paused || now - b.openedAt >= this.opts.flushMs)) {
          try {
            await this.flush(p);
          } catch (e) {
            this.noteFlushFailure(p, e as Error);
          }
        }
      }
      bufferedGauge.set(this.bufferedEvents);
      this.stopped.logAgain(now);
      if (this.paused && this.bufferedEvents < this.maxBuffered) {
        this.paused = false;
        // Partitions stopped at a message they cannot read stay paused.
        this.consumer.resume([{ topic: this.opts.topic }]);
        this.pauseStopped();
        this.opts.log?.(`flushes succeed again: fetching resumed (${this.bufferedEvents} events buffered)`);
      }
      await this.recordWatermarks();
    } catch (e) {
      this.opts.log?.(`archiver tick failed (retried next tick): ${(e as Error).message}`);
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Each owned partition's watermark to PostgreSQL; a commit this process made that the group does
   * not have (KafkaJS answered it without sending it, see `rejoin`) is made again by the next flush,
   * or a partition that gets nothing new never moves (issue 23's partition 4).
   */
  private async recordWatermarks(): Promise<void> {
    if (this.assigned.size === 0) return;
    const { end, committed } = await groupOffsets(this.admin, this.opts.topic, this.opts.groupId);
    const now = Date.now();
    for (const p of this.assigned) {
      const b = this.buffers.get(p);
      const inKafka = clampOffset(committed.get(p));
      if (b && commitLost(b, inKafka)) {
        if (now - this.lostCommitLoggedAt >= 60_000) {
          this.lostCommitLoggedAt = now;
          this.log(
            `${this.opts.topic} partition ${p}: the group's committed offset ${inKafka} is behind the commit this process made ` +
              `(${BigInt(b.committedOffset!) + 1n}): the commit was lost, committing again`,
          );
        }
        lostCommits.inc();
        b.committedOffset = undefined;
      }
      const wm = partitionWatermark(watermarkInputs(b, inKafka, end.get(p) ?? 0n), now, this.opts.graceMs);
      if (wm !== undefined) await writeWatermark(this.opts.pool, this.opts.topic, p, wm);
    }
  }
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>(
      (_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)),
    ),
  ]).finally(() => clearTimeout(timer));
}

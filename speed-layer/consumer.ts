// A speed-layer consumer: one member of a Kafka consumer group on `clicks`. It keeps a MinuteWindow
// per owned partition and, at least every flush interval, commits each partition's changed counts
// and its checkpoint atomically through a PartitionSink (PostgreSQL transaction or Kafka
// transaction). On every (re)assignment it claims each partition from the sink (fencing the
// previous owner), and seeks to the checkpoint's replayFrom to rebuild the open window's impression
// ids before counting again from nextOffset — so crashes and rebalances neither lose nor
// double-count (see minute-window.ts for why the rebuild is exact). A message that is no click
// event it can read stops its partition there (paused, logged every minute, counted in
// adclick_speed_stopped_partitions): the counts before it are committed, nothing after it is
// counted, and the checkpoint never passes it, so a version that reads it resumes exactly there.
//
// Kafka or the store away never ends the process (docs/dependencies.md): a failed flush is redone
// from the last commit, a crashed consumer is restarted in-process, and a stall watchdog rejoins the
// group when an owned partition's checkpoint stands still with lag for KAFKA_STALL_AFTER_MS (not
// while the store refuses flushes, nor at an undecodable message).
import { config } from '../common/config.js';
import type { Admin, Consumer, ConsumerRunConfig, EachBatchPayload, Kafka } from 'kafkajs';
import { ConsumerWatchdog, type PartitionProgress } from '../common/consumer-watchdog.js';
import type { Probe } from '../common/health.js';
import { superviseConsumer } from '../common/startup.js';
import { decodeClickEvent, type ClickEvent } from '../common/click-event.js';
import {
  consumerLag,
  duplicatesDropped,
  eventsCounted,
  eventsSkipped,
  flushDuration,
  flushFailures,
  lateEvents,
  stoppedPartitions,
} from './metrics.js';
import { MinuteWindow, type AddOutcome, type Checkpoint } from './minute-window.js';
import { FencedError, type PartitionSink } from './sink.js';
import { isId } from '../common/ids.js';
import { withDeadline } from '../common/wait.js';

const CLAIM_DEADLINE_MS = 90_000;

export interface SpeedConsumerOptions {
  kafka: Kafka;
  topic: string;
  groupId: string;
  sink: PartitionSink;
  /** Label for metrics: 'postgres' | 'pinot'. */
  storeName: string;
  openMinutes: number;
  flushIntervalMs: number;
  /** Kafka group session timeout: how soon a dead member's partitions move (ms). */
  sessionTimeoutMs?: number;
  /** Fetch sizing (KAFKA_CONSUMER_MIN_BYTES / KAFKA_CONSUMER_MAX_WAIT_MS); kafkajs' defaults if unset. */
  fetch?: { minBytes: number; maxWaitTimeInMs: number };
  /** A partition whose checkpoint stands still this long with lag is stalled (default 120 s). */
  stallAfterMs?: number;
  log?: (message: string) => void;
}

interface PartitionState {
  window: MinuteWindow;
  generation: number;
  committed: Checkpoint;
  lastFlushAt: number;
}

export class SpeedConsumer {
  private readonly consumer: Consumer;
  private readonly admin: Admin;
  private readonly states = new Map<number, PartitionState>();
  private generation = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Partitions stopped at a message they cannot read: partition → offset and why. */
  private readonly undecodable = new Map<number, { offset: number; reason: string; loggedAt: number }>();
  private readonly log: (message: string) => void;
  private owned = new Set<number>();
  private lastFlushFailureAt = 0;
  private readonly runConfig: ConsumerRunConfig;
  private readonly supervision: { probe: Probe; stop: () => void };
  private readonly watchdog: ConsumerWatchdog;
  private started = false;
  stalls = 0;

  constructor(private readonly opts: SpeedConsumerOptions) {
    this.log = opts.log ?? (() => undefined);
    this.consumer = opts.kafka.consumer({
      groupId: opts.groupId,
      readUncommitted: false,
      sessionTimeout: opts.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: Math.min(3000, Math.floor((opts.sessionTimeoutMs ?? 10_000) / 4)),
      ...opts.fetch,
    });
    this.admin = opts.kafka.admin();
    this.runConfig = {
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: (payload) => this.serial(() => this.onBatch(payload)),
    };
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      // Eager rebalancing: every join revokes everything, so every owned partition is claimed anew.
      this.generation += 1;
      const owned = payload.memberAssignment[opts.topic] ?? [];
      this.owned = new Set(owned);
      this.log(`joined ${opts.groupId} (generation ${this.generation}), partitions [${owned.join(', ')}]`);
    });
    this.supervision = superviseConsumer(this.consumer, {
      name: `speed layer ${opts.groupId}`,
      run: () => this.consumer.run(this.runConfig),
      log: this.log,
    });
    const stallAfterMs = opts.stallAfterMs ?? config.KAFKA_STALL_AFTER_MS;
    this.watchdog = new ConsumerWatchdog({
      group: opts.groupId,
      topic: opts.topic,
      stallAfterMs,
      progress: () => this.progress(),
      held: () =>
        Date.now() - this.lastFlushFailureAt < stallAfterMs
          ? new Set(this.owned)
          : new Set(this.undecodable.keys()),
      onStall: async (stalls) => {
        this.stalls += stalls.length;
        await this.rejoin();
      },
      log: this.log,
    });
  }

  /** For /readyz: the consumer is a member of its group (not crashed, not stopped). */
  get consumerProbe(): Probe {
    return this.supervision.probe;
  }

  /** Connects and joins the group; may be called again after it failed (Kafka away at start). */
  async start(): Promise<void> {
    const { topic } = this.opts;
    await this.admin.connect();
    await this.consumer.connect();
    await this.consumer.subscribe({ topic, fromBeginning: true });
    await this.consumer.run(this.runConfig);
    this.started = true;
    this.timer = setInterval(
      () => void this.serial(() => this.flushDue(false)).catch((e: Error) => this.log(`flush: ${e.message}`)),
      Math.max(20, Math.floor(this.opts.flushIntervalMs / 4)),
    );
    this.watchdog.start();
  }

  /** Checkpointed next offset and end offset of each owned partition. */
  private async progress(): Promise<PartitionProgress[]> {
    if (this.owned.size === 0) return [];
    const ends = await this.admin.fetchTopicOffsets(this.opts.topic);
    const endOf = new Map(ends.map((e) => [e.partition, Number(e.high)]));
    return [...this.owned].map((partition) => {
      const state = this.states.get(partition);
      return {
        partition,
        committed: state && state.generation === this.generation ? state.committed.nextOffset : -1,
        end: endOf.get(partition) ?? 0,
      };
    });
  }

  /**
   * Leaves and rejoins the group (what a process restart would do): every owned partition is
   * claimed again from the sink's checkpoint, whatever KafkaJS's fetch state was.
   */
  async rejoin(): Promise<void> {
    if (this.stopped) return;
    // Not inside `serial`: stopping waits for the batch in flight, which may wait in `serial` itself.
    await this.consumer.stop();
    await this.serial(async () => this.states.clear());
    if (!this.stopped) await this.consumer.run(this.runConfig);
  }

  /** Commits what is pending, then leaves the group. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.watchdog.stop();
    this.supervision.stop();
    if (!this.started) {
      await this.consumer.disconnect().catch(() => undefined);
      await this.admin.disconnect().catch(() => undefined);
      return;
    }
    if (this.timer) clearInterval(this.timer);
    await this.serial(() => this.flushDue(true)).catch((e: Error) => this.log(`final flush: ${e.message}`));
    await this.consumer.disconnect();
    await this.admin.disconnect();
  }

  // Batches, flushes and claims run one at a time: a flush never sees half a batch.
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async onBatch({
    batch,
    heartbeat,
    isRunning,
    isStale,
    resolveOffset,
  }: EachBatchPayload): Promise<void> {
    const { partition } = batch;
    if (this.stopped) return;
    let state = this.states.get(partition);
    if (!state || state.generation !== this.generation) {
      // First batch of a new assignment: claim, then re-read from the checkpoint's replay start.
      state = await this.claim(partition);
      this.consumer.seek({ topic: batch.topic, partition, offset: String(state.window.nextToRead) });
      return;
    }
    const { window } = state;
    let lastFed: string | undefined;
    // Nothing is awaited in this loop, so no stop, seek or rejoin can come between its messages:
    // running and staleness are checked once, and the outcomes counted once per batch.
    const tally = new OutcomeTally();
    const messages = isRunning() && !isStale() ? batch.messages : [];
    for (const message of messages) {
      const offset = Number(message.offset);
      let event: ClickEvent;
      try {
        event = decodeClickEvent(message.value ?? Buffer.alloc(0));
        if (!isId(event.adId)) throw new Error(`malformed ad id ${event.adId}`);
      } catch (e) {
        if (offset < window.nextToRead) continue; // redelivered after a seek: already behind us
        if (window.replaying) {
          // Before the committed checkpoint (an older version passed it): nothing to count there.
          window.pass(offset);
          continue;
        }
        // Not passed: the window's position, hence every checkpoint, stays at this message.
        this.stopPartition(batch.topic, partition, offset, (e as Error).message);
        break;
      }
      lastFed = message.offset;
      tally.add(window.add(event, offset), event.status);
    }
    tally.record();
    // Moves KafkaJS's fetch position past what was fed (autoCommit is off: nothing is committed
    // here). Without it every fetch starts again at the last seek, and once more than one fetch's
    // worth of messages (maxBytesPerPartition) lies behind that point the partition stops advancing.
    if (lastFed !== undefined) resolveOffset(lastFed);
    const lag = Number(batch.highWatermark) - window.nextToRead;
    consumerLag.set({ topic: batch.topic, partition: String(partition) }, Math.max(0, lag));
    // A busy partition flushes from here, on time, without waiting for the timer's turn.
    if (Date.now() - state.lastFlushAt >= this.opts.flushIntervalMs)
      await this.flushPartition(partition, state);
    await heartbeat();
  }

  private stopPartition(topic: string, partition: number, offset: number, reason: string): void {
    this.undecodable.set(partition, { offset, reason, loggedAt: 0 });
    stoppedPartitions.set(this.undecodable.size);
    this.consumer.pause([{ topic, partitions: [partition] }]);
    this.logStopped();
  }

  /** Says which partitions are stopped at a message they cannot read (at once, then every minute). */
  private logStopped(): void {
    const now = Date.now();
    for (const [partition, s] of this.undecodable) {
      if (now - s.loggedAt < 60_000) continue;
      s.loggedAt = now;
      (this.opts.log ?? console.error)(
        `ERROR ${this.opts.topic} partition ${partition} offset ${s.offset}: cannot decode the message (${s.reason}). ` +
          'Counting of this partition is stopped there, not skipped: deploy a version that reads it, or move ' +
          'the group past it deliberately (kafka-consumer-groups.sh --reset-offsets), then restart the speed layer',
      );
    }
  }

  private async claim(partition: number): Promise<PartitionState> {
    const { topic } = this.opts;
    // Under a deadline: claims run one at a time (`serial`), so one that never answers (seen after a
    // Kafka restart: the sink's fencing transaction hung for minutes) would stop every partition. Past
    // it the batch fails, KafkaJS restarts the consumer, and the claim is made again. The deadline
    // is above the longest legitimate wait, the previous owner's transaction timeout (30 s).
    let checkpoint = await withDeadline(
      this.opts.sink.claim(partition),
      CLAIM_DEADLINE_MS,
      `claiming ${topic}[${partition}] from the ${this.opts.storeName} sink took over ${CLAIM_DEADLINE_MS} ms`,
    );
    if (!checkpoint) {
      const offsets = await this.admin.fetchTopicOffsets(topic);
      const low = Number(offsets.find((o) => o.partition === partition)?.low ?? 0);
      checkpoint = { nextOffset: low, replayFrom: low, watermark: null };
    }
    const window = new MinuteWindow(checkpoint, { openMinutes: this.opts.openMinutes });
    const state = { window, generation: this.generation, committed: checkpoint, lastFlushAt: Date.now() };
    this.states.set(partition, state);
    this.log(
      `claimed ${topic}[${partition}]: next ${checkpoint.nextOffset}, rebuilding from ${checkpoint.replayFrom}`,
    );
    return state;
  }

  private async flushDue(all: boolean): Promise<void> {
    if (this.undecodable.size > 0) this.logStopped();
    for (const [partition, state] of this.states) {
      if (state.generation !== this.generation) {
        this.states.delete(partition); // revoked: its uncommitted work is the next owner's
        continue;
      }
      if (all || Date.now() - state.lastFlushAt >= this.opts.flushIntervalMs) {
        await this.flushPartition(partition, state);
      }
    }
  }

  private async flushPartition(partition: number, state: PartitionState): Promise<void> {
    const { window } = state;
    state.lastFlushAt = Date.now();
    if (window.replaying) return;
    if (window.pendingChanges === 0 && window.nextToRead <= state.committed.nextOffset) return;
    const flush = window.flush();
    const stopTimer = flushDuration.startTimer({ store: this.opts.storeName });
    try {
      await this.opts.sink.commit(partition, flush, state.committed);
      state.committed = flush.checkpoint;
      stopTimer();
    } catch (e) {
      // The window already handed out this flush: it cannot be retried, only rebuilt.
      this.states.delete(partition);
      const fenced = e instanceof FencedError;
      if (!fenced) this.lastFlushFailureAt = Date.now();
      flushFailures.inc({ store: this.opts.storeName, reason: fenced ? 'fenced' : 'error' });
      this.log(`flush of ${this.opts.topic}[${partition}] failed: ${(e as Error).message}`);
      if (!fenced && !this.stopped) {
        // Still ours: re-read from the last commit so the lost flush is redone.
        try {
          this.consumer.seek({
            topic: this.opts.topic,
            partition,
            offset: String(state.committed.nextOffset),
          });
        } catch {
          // not running any more
        }
      }
    }
  }
}

/** A batch's outcomes, counted locally and added to the metrics once (labelled incs hash their labels). */
class OutcomeTally {
  private counted = 0;
  private late = 0;
  private duplicates = 0;
  private replayed = 0;
  private readonly ignored = new Map<string, number>();

  add(outcome: AddOutcome, status: string): void {
    if (outcome === 'counted') this.counted++;
    else if (outcome === 'late') this.late++;
    else if (outcome === 'duplicate') this.duplicates++;
    else if (outcome === 'ignored') this.ignored.set(status, (this.ignored.get(status) ?? 0) + 1);
    else if (outcome === 'replayed') this.replayed++;
  }

  record(): void {
    if (this.counted + this.late > 0) eventsCounted.inc(this.counted + this.late);
    if (this.late > 0) lateEvents.inc(this.late);
    if (this.duplicates > 0) duplicatesDropped.inc(this.duplicates);
    for (const [reason, n] of this.ignored) eventsSkipped.inc({ reason }, n);
    if (this.replayed > 0) eventsSkipped.inc({ reason: 'rebuild' }, this.replayed);
  }
}

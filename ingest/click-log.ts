// The click log: hands each click event to Kafka (idempotent producers, acks=all) in batches, and
// falls back to the local spool when Kafka does not ack within the deadline. A click's promise
// resolves once its event is acked by Kafka or fsynced to the spool; only then does the 302 go out.
//
// Its states (direct, spooling, emptying, stalled; open, closing, closed) and the transitions allowed
// between them are in click-log-state.ts. In `spooling` every new event is appended to the spool too,
// so events reach Kafka in the order they were spooled, while the replayer (click-log-replayer.ts,
// on the loop the drain shares: spool-replay.ts) sends the spool. Batches form while earlier sends or the fsync run (group
// commit); in `direct` they go out on parallel producer lanes (kafka-lanes.ts): clicks in flight at
// the same time have no order among them, a click answered before another was sent is logged before it.
//
// A send that missed its deadline may still be acked later (the producer retries). Its events are
// in the spool by then, so the late ack records their spool offsets as delivered and the replayer
// skips them; the replayer reads on only once every such send has settled. No event is sent twice,
// except in the corner documented in spool.ts (crash between an ack and the progress write).
import { CompressionTypes } from 'kafkajs';
import { encodeClickEvent, type ClickEvent } from '../common/click-event.js';
import {
  accepting,
  batchRoute,
  DirectReturnGate,
  INITIAL_STATE,
  nextState,
  reportedMode,
  type ClickLogEvent,
  type ClickLogState,
} from './click-log-state.js';
import { ClickLogReplayer, type ReplayerHost } from './click-log-replayer.js';
import { KafkaLanes } from './kafka-lanes.js';
import { kafkajsLanes } from './lane-producers.js';
import type { ClickLogOptions } from './click-log-options.js';
import { spoolSources } from './metrics.js';
import { Spool } from './spool.js';
import { clickMessage } from './spool-replay.js';
import { deadlineTimer, sleep } from '../common/wait.js';

export type Destination = 'kafka' | 'spool';
export type LogMode = 'direct' | 'spooling';
export type { ClickLogOptions, SpoolSendOptions } from './click-log-options.js';

interface Waiting {
  event: ClickEvent;
  value: Buffer;
  since: number;
  resolve: (d: Destination) => void;
  reject: (e: Error) => void;
}

const LATE_ACK_WAIT_MS = 2000;
/** Hysteresis of the return to direct sends (DirectReturnGate): calm for 1 s, doubling on each flap. */
const BASE_CALM_MS = 1000;
const MAX_CALM_MS = 30_000;
const FLAP_WINDOW_MS = 60_000;

export class ClickLog {
  private current: ClickLogState = INITIAL_STATE;
  private buffer: Waiting[] = [];
  /** Batches taken from the buffer and not settled yet (sending, or being spooled). */
  private readonly inFlight = new Set<Waiting[]>();
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly lanes: KafkaLanes;
  private readonly replayer: ClickLogReplayer;
  private readonly gate: DirectReturnGate;
  /** Late sends whose outcome is still unknown; the replayer waits for them. */
  private readonly unsettled = new Set<Promise<unknown>>();
  private drainedWaiters: Array<() => void> = [];
  /**
   * A lower bound of the ts of every event in the spool that is not in Kafka yet; undefined when the
   * spool holds none. Records left by an earlier run are of unknown age: 0 until the spool is empty.
   */
  private spooledOldestTs: number | undefined;
  private readonly log: (message: string) => void;
  private readonly compression: CompressionTypes;
  /** Clicks announced and not yet arrived (see announce); `announcing` once any was. */
  private announced = 0;
  private announcing = false;
  private readonly depthSource = (): { depth: number; bytes: number } => ({
    depth: this.spool.depth,
    bytes: this.spool.size - this.spool.committed,
  });

  private constructor(
    private readonly opts: ClickLogOptions,
    private readonly spool: Spool,
  ) {
    this.log = opts.log ?? ((m) => console.error(`[click-log] ${m}`));
    this.compression = opts.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    this.lanes = new KafkaLanes(
      opts.laneProducers ?? kafkajsLanes(opts.kafka, this.log),
      opts.lanes ?? 1,
      this.log,
    );
    this.gate = new DirectReturnGate({
      slowMs: opts.deadlineMs / 2,
      baseCalmMs: opts.directReturnCalmMs ?? BASE_CALM_MS,
      maxCalmMs: Math.max(opts.directReturnCalmMs ?? BASE_CALM_MS, MAX_CALM_MS),
      flapWindowMs: FLAP_WINDOW_MS,
    });
    this.replayer = new ClickLogReplayer(this.replayerHost(), spool, this.lanes, {
      topic: opts.topic,
      compression: this.compression,
      spoolPath: opts.spoolPath,
      metrics: opts.metrics,
      log: this.log,
    });
    spoolSources.add(this.depthSource);
    if (spool.pending) {
      this.spooledOldestTs = 0;
      this.enterSpooling('records left in the spool by an earlier run');
    }
  }

  /** Opens the spool (replaying what an earlier run left in it) and connects the producer. */
  static async open(opts: ClickLogOptions): Promise<ClickLog> {
    const log = opts.log ?? ((m: string) => console.error(`[click-log] ${m}`));
    const spool = await Spool.open(opts.spoolPath, {
      lockWaitMs: opts.spoolLockWaitMs,
      lockStaleMs: opts.spoolLockStaleMs,
      onTornTail: (dropped) => log(`spool ${opts.spoolPath}: cut off a torn tail of ${dropped} bytes`),
      onCorrupt: (offset, bytes) => {
        opts.metrics?.spoolCorruptBytes.inc(bytes);
        log(
          `spool ${opts.spoolPath}: skipped ${bytes} damaged bytes at offset ${offset} (failed CRC or ` +
            `framing; the click events in them are lost), replay goes on with the next valid record`,
        );
      },
      onLockLost: (e) => log(e.message),
    });
    return new ClickLog(opts, spool);
  }

  /** direct, or spooling (every phase but direct: see click-log-state.ts). */
  get state(): LogMode {
    return reportedMode(this.current);
  }
  get phase(): ClickLogState['phase'] {
    return this.current.phase;
  }
  get spoolDepth(): number {
    return this.spool.depth;
  }

  /**
   * The ts of the oldest event handed to this log that Kafka has not acknowledged yet (buffered, in
   * flight, or in the spool), or a lower bound of it; undefined when every event is in Kafka. What a
   * click process reports so that an hour is finalized only once its clicks are in (docs/completeness.md).
   */
  oldestUnlogged(): number | undefined {
    let oldest = this.spooledOldestTs;
    const consider = (w: Waiting): void => {
      if (oldest === undefined || w.event.ts < oldest) oldest = w.event.ts;
    };
    for (const w of this.buffer) consider(w);
    for (const batch of this.inFlight) for (const w of batch) consider(w);
    return oldest;
  }

  /** Logs one click event; resolves with where it is durably kept once it is. */
  append(event: ClickEvent): Promise<Destination> {
    if (!accepting(this.current)) return Promise.reject(new Error('click log is closed'));
    return new Promise<Destination>((resolve, reject) => {
      this.buffer.push({
        event,
        value: encodeClickEvent(event, this.opts.encoding),
        since: performance.now(),
        resolve,
        reject,
      });
      // Lingering pays only while more clicks are on their way: with none announced, waiting adds
      // latency and gathers nothing (a few busy connections, each waiting for its own answer).
      const more = this.announced > 0 || !this.announcing;
      if (this.buffer.length >= this.opts.batchMax || !more) this.flushSoon(0);
      else this.flushSoon(this.opts.lingerMs);
    });
  }

  /**
   * Announces a click that will be appended soon (its Redis check is out): until `arrived` is
   * called for it, a batch waits for it up to `lingerMs`. A log that is never told of clicks to come
   * lingers for every batch.
   */
  announce(): void {
    this.announcing = true;
    this.announced++;
  }

  /** An announced click is here (or will not come): call once per `announce`, before its append. */
  arrived(): void {
    this.announced--;
  }

  /** Resolves when nothing is spooled and the log sends directly to Kafka again (for tests, shutdown). */
  whenDrained(): Promise<void> {
    if (this.current.phase === 'direct' && !this.spool.pending) return Promise.resolve();
    return new Promise((resolve) => this.drainedWaiters.push(resolve));
  }

  /**
   * Stops taking events, logs the buffered ones (Kafka or spool), waits up to `graceMs` for the
   * replayer and late sends, then disconnects. What is still spooled is replayed by the next run.
   */
  async close(graceMs = 2000): Promise<void> {
    if (!this.move('close')) return;
    clearTimeout(this.lingerTimer);
    while (this.buffer.length > 0 || this.inFlight.size > 0) {
      if (this.inFlight.size === 0 && this.canFlush()) await this.flush();
      else await sleep(1);
    }
    this.replayer.wake();
    const settle = Promise.all([...this.unsettled, this.replayer.done]);
    await Promise.race([settle, sleep(graceMs)]);
    await this.lanes.disconnect(graceMs);
    spoolSources.delete(this.depthSource);
    await this.spool.close();
    this.move('closed');
  }

  /** What the replayer sees of this log. */
  private replayerHost(): ReplayerHost {
    return {
      state: () => this.current,
      move: (event) => this.move(event),
      batchesInFlight: () => this.inFlight.size,
      unsettled: this.unsettled,
      flushNow: () => this.flushSoon(0),
      gate: this.gate,
      drained: () => {
        this.spooledOldestTs = undefined;
        for (const w of this.drainedWaiters.splice(0)) w();
      },
    };
  }

  /** Applies `event` to the state (click-log-state.ts); true if the state changed. */
  private move(event: ClickLogEvent): boolean {
    const from = this.current;
    const to = nextState(from, event);
    if (to === from) return false;
    this.current = to;
    this.opts.onTransition?.(from, to, event);
    return true;
  }

  /** May another batch start now? Direct: one per idle lane. Spooling: one append at a time. */
  private canFlush(): boolean {
    if (this.buffer.length === 0) return false;
    const route = batchRoute(this.current);
    if (route === 'held') return false;
    return route === 'kafka' ? this.lanes.idle : this.inFlight.size === 0;
  }

  private flushSoon(delayMs: number): void {
    if (!this.canFlush()) return; // a running flush starts the next batch when it ends
    if (delayMs === 0 || this.inFlight.size > 0) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
      void this.flush();
    } else if (!this.lingerTimer) {
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = undefined;
        void this.flush();
      }, delayMs);
    }
  }

  private async flush(): Promise<void> {
    if (!this.canFlush()) return;
    const batch = this.buffer.splice(0, this.opts.batchMax);
    this.inFlight.add(batch);
    try {
      if (batchRoute(this.current) === 'kafka') await this.sendDirect(batch);
      else await this.toSpool(batch, undefined);
    } catch (e) {
      // The spool itself failed (disk full, I/O error): these clicks are not durably logged.
      for (const w of batch) w.reject(e as Error);
      this.log(`cannot write the spool: ${(e as Error).message}`);
    } finally {
      this.inFlight.delete(batch);
      // Events that arrived during this batch's send or fsync leave at once (group commit).
      if (this.buffer.length > 0) this.flushSoon(0);
    }
  }

  /** Sends a batch to Kafka; if it is not acked in time (or fails), spools it instead. */
  private async sendDirect(batch: Waiting[]): Promise<void> {
    const deadline = this.opts.deadlineMs - (performance.now() - batch[0]!.since);
    const send = this.lanes.send({
      topic: this.opts.topic,
      acks: -1,
      compression: this.compression,
      messages: batch.map((w) => clickMessage(w.event, w.value)),
    });
    const outcome = await settledWithin(send, Math.max(deadline, 1));
    if (outcome === 'acked') this.settle(batch, 'kafka');
    else if (outcome === 'pending') {
      this.gate.missed(performance.now());
      this.enterSpooling(`Kafka did not ack within ${this.opts.deadlineMs} ms`);
      await this.toSpool(batch, send);
    } else {
      this.gate.missed(performance.now());
      this.enterSpooling(`Kafka send failed: ${outcome.message}`);
      await this.toSpool(batch, undefined);
    }
  }

  /** Spools a batch; `lateSend` is a send of the same events that may still be acked. */
  private async toSpool(batch: Waiting[], lateSend: Promise<unknown> | undefined): Promise<void> {
    this.enterSpooling('spooling');
    for (const w of batch)
      if (this.spooledOldestTs === undefined || w.event.ts < this.spooledOldestTs)
        this.spooledOldestTs = w.event.ts;
    const appended = this.spool.append(batch.map((w) => w.value));
    if (lateSend) {
      // Registered before the append can complete, so the replayer (which checks `unsettled`
      // right before each read) never reads these records while their late ack may still come.
      const tracked = Promise.all([lateSend, appended]).then(
        ([, offsets]) => this.spool.markDelivered(offsets),
        () => undefined,
      );
      this.unsettled.add(tracked);
      void tracked.finally(() => this.unsettled.delete(tracked));
    }
    try {
      await appended;
    } catch (e) {
      if (!lateSend) throw e;
      return this.lateSendOrFail(batch, lateSend, e as Error);
    }
    this.settle(batch, 'spool');
    this.replayer.wake();
  }

  /**
   * The spool could not keep these events (disk full, I/O error), but the send that missed its
   * deadline may still be acked: then they are in Kafka and counted, so the clicks must get their
   * 302, not an error. Its outcome is awaited for a bounded time (the click path's deadline).
   */
  private async lateSendOrFail(batch: Waiting[], lateSend: Promise<unknown>, e: Error): Promise<void> {
    const waitMs = this.opts.lateAckWaitMs ?? LATE_ACK_WAIT_MS;
    const outcome = await settledWithin(lateSend, waitMs);
    if (outcome === 'acked') return this.settle(batch, 'kafka');
    if (outcome === 'pending') {
      void lateSend.then(
        () =>
          this.log(
            `${batch.length} click event(s) answered with an error (the spool failed) were acked by ` +
              `Kafka more than ${waitMs} ms after their deadline: counted without a redirect`,
          ),
        () => undefined,
      );
    }
    throw e;
  }

  private settle(batch: Waiting[], destination: Destination): void {
    const now = performance.now();
    const histogram = this.opts.metrics?.produceSeconds.labels(destination);
    for (const w of batch) {
      histogram?.observe((now - w.since) / 1000);
      w.resolve(destination);
    }
  }

  /** direct → spooling (nothing in any other state), and the replayer starts. */
  private enterSpooling(reason: string): void {
    if (!this.move('kafka-missed')) return;
    this.log(`spooling click events: ${reason}`);
    this.replayer.start();
  }
}

/**
 * Whether `p` fulfilled, failed (its error) or is still pending after `ms`. An ack already in when
 * `ms` passes counts (deadlineTimer): a busy click process must not spool a batch Kafka has acked.
 */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<'acked' | 'pending' | Error> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    p.then(
      () => 'acked' as const,
      (e: Error) => e,
    ),
    new Promise<'pending'>((r) => (timer = deadlineTimer(ms, () => r('pending')))),
  ]);
  clearTimeout(timer);
  return outcome;
}

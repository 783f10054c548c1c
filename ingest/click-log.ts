// The click log: hands each click event to Kafka (idempotent producer, acks=all) in batches, and
// falls back to the local spool when Kafka does not ack within the deadline. A click's promise
// resolves once its event is acked by Kafka or fsynced to the spool; only then does the 302 go out.
//
// State machine (one per spool file):
//   direct   ── a batch not acked by its deadline, or a send error ──►  spooling
//   spooling ── replayer has sent every spooled record and the file is emptied ──► direct
// In `spooling` every new event is appended to the spool too, so events reach Kafka in the order
// they were spooled. Batches form while earlier sends or the fsync run (group commit). kafkajs lets
// an idempotent producer have one request in flight per broker, so `lanes` producers (each with
// its own producer id) carry batches in parallel; clicks in flight at the same time have no order
// among them, a click answered before another was sent is logged before it.
//
// A send that missed its deadline may still be acked later (the producer retries). Its events are
// in the spool by then, so the late ack records their spool offsets as delivered and the replayer
// skips them; the replayer starts only once every such send has settled. No event is sent twice,
// except in the corner documented in spool.ts (crash between an ack and the progress write).
//
// Replay never stops on a bad record: damaged bytes are skipped by the spool (it resynchronises to
// the next valid record), and a record that passes its CRC but is no click event (poison: a schema
// change, a bug) is moved to `<spool>.poison` once the records around it are acked, with a metric and
// a log line. Otherwise one such record would keep the log spooling forever, every later click with it.
import kafkajs, {
  CompressionTypes,
  type Kafka,
  type Message,
  type Producer,
  type RecordMetadata,
} from 'kafkajs';
import {
  clickKey,
  decodeClickEvent,
  encodeClickEvent,
  type ClickEvent,
  type ClickEventEncoding,
} from '../common/click-event.js';
import { spoolSources, type ClickMetrics } from './metrics.js';
import { Spool, SpoolLockLostError, type SpoolBatch } from './spool.js';
import type { SpoolRecord } from './spool-format.js';

export type Destination = 'kafka' | 'spool';
export type LogMode = 'direct' | 'spooling';

export interface ClickLogOptions {
  kafka: Kafka;
  topic: string;
  spoolPath: string;
  /** How long a click may wait for Kafka before its event is spooled instead. */
  deadlineMs: number;
  /** How long an idle log waits for more events before sending a batch. */
  lingerMs: number;
  batchMax: number;
  /** How events are written to Kafka and the spool (default binary); the spool replays either form. */
  encoding?: ClickEventEncoding;
  /** Producers sending batches in parallel (default 1). */
  lanes?: number;
  /** Compression of the batches sent to Kafka (default none; the spool is never compressed). */
  compression?: 'none' | 'gzip';
  metrics?: ClickMetrics;
  log?: (message: string) => void;
  /**
   * How long to wait for the spool's lock if another process holds it (then ClickLog.open rejects
   * with SpoolLockedError). Default: long enough for a crashed owner's lock to go stale. Give 0 for
   * a spool that is only worth taking if nobody owns it (draining another worker's spool).
   */
  spoolLockWaitMs?: number;
  /**
   * After how long without a refresh a spool lock counts as a dead owner's (default LOCK_STALE_MS,
   * 10 s: how long a worker restarted after a SIGKILL waits). Every process sharing a spool folder
   * must use the same value.
   */
  spoolLockStaleMs?: number;
  /**
   * When a batch missed its deadline and its spool append failed too, how long its clicks wait for
   * the late send's outcome (default 2000 ms): acked → 302 (the events are in Kafka), else an error.
   */
  lateAckWaitMs?: number;
}

interface Waiting {
  event: ClickEvent;
  value: Buffer;
  since: number;
  resolve: (d: Destination) => void;
  reject: (e: Error) => void;
}

interface Lane {
  producer: Producer;
  connecting: Promise<void>;
  busy: boolean;
}

// A default import: Node's ESM loader does not see Partitioners among kafkajs' CommonJS exports.
const { Partitioners } = kafkajs;

const REPLAY_BATCH = 500;
/** Rounds of sending again the messages a send resolved without (see sendAll) before it counts as failed. */
const RESEND_ROUNDS = 10;
/** How long a click whose spool append failed waits for the late ack of its missed send. */
const LATE_ACK_WAIT_MS = 2000;
const RETRY_MS = 500;

export class ClickLog {
  private mode: LogMode = 'direct';
  private buffer: Waiting[] = [];
  /** Batches being sent or spooled right now. */
  private flushing = 0;
  /** Set by the replayer while it empties the spool file. */
  private holdFlush = false;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly lanes: Lane[];
  /** Late sends whose outcome is still unknown; the replayer waits for them. */
  private unsettled = new Set<Promise<unknown>>();
  private replaying: Promise<void> | undefined;
  private closing = false;
  private wake: (() => void) | undefined;
  private drainedWaiters: Array<() => void> = [];
  /** Batches taken from the buffer and not settled yet (sending, or being spooled). */
  private readonly inFlight = new Set<Waiting[]>();
  /** The partition kafkajs' partitioner gave each message of a send (see sendAll). */
  private readonly placed = new WeakMap<Message, number>();
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
    this.lanes = Array.from({ length: Math.max(1, opts.lanes ?? 1) }, () => this.newLane());
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

  get state(): LogMode {
    return this.mode;
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
    if (this.closing) return Promise.reject(new Error('click log is closed'));
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
    if (this.mode === 'direct' && !this.spool.pending) return Promise.resolve();
    return new Promise((resolve) => this.drainedWaiters.push(resolve));
  }

  /**
   * Stops taking events, logs the buffered ones (Kafka or spool), waits up to `graceMs` for the
   * replayer and late sends, then disconnects. What is still spooled is replayed by the next run.
   */
  async close(graceMs = 2000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.lingerTimer);
    while (this.buffer.length > 0 || this.flushing > 0) {
      if (this.flushing === 0 && !this.holdFlush) await this.flush();
      else await sleep(1);
    }
    this.wake?.();
    const settle = Promise.all([...this.unsettled, this.replaying ?? Promise.resolve()]);
    await Promise.race([settle, sleep(graceMs)]);
    await Promise.race([
      Promise.all(this.lanes.map((l) => l.producer.disconnect().catch(() => undefined))),
      sleep(graceMs),
    ]);
    spoolSources.delete(this.depthSource);
    await this.spool.close();
  }

  private newLane(): Lane {
    const producer = this.opts.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // The idempotent producer retries until it knows the outcome, so a late ack is certain to be
      // seen (and recorded as delivered) instead of leaving the event's fate unknown.
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 1000 },
      // kafkajs' own partitioner (murmur2 of the key), which also notes where each message went.
      createPartitioner: () => {
        const partition = Partitioners.DefaultPartitioner();
        return (args) => {
          const p = partition(args);
          this.placed.set(args.message, p);
          return p;
        };
      },
    });
    const lane: Lane = { producer, connecting: Promise.resolve(), busy: false };
    this.connectLane(lane);
    return lane;
  }

  private connectLane(lane: Lane): void {
    lane.connecting = lane.producer.connect().catch((e: Error) => {
      this.log(`Kafka producer cannot connect (${e.message}); clicks go to the spool until it can`);
      throw e;
    });
    lane.connecting.catch(() => undefined); // handled where it is awaited
  }

  /** May another batch start now? Direct: one per idle lane. Spooling: one append at a time. */
  private canFlush(): boolean {
    if (this.holdFlush || this.buffer.length === 0) return false;
    return this.mode === 'direct' ? this.lanes.some((l) => !l.busy) : this.flushing === 0;
  }

  private flushSoon(delayMs: number): void {
    if (!this.canFlush()) return; // a running flush starts the next batch when it ends
    if (delayMs === 0 || this.flushing > 0) {
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
    this.flushing++;
    const batch = this.buffer.splice(0, this.opts.batchMax);
    this.inFlight.add(batch);
    try {
      if (this.mode === 'direct') await this.sendDirect(batch);
      else await this.toSpool(batch, undefined);
    } catch (e) {
      // The spool itself failed (disk full, I/O error): these clicks are not durably logged.
      for (const w of batch) w.reject(e as Error);
      this.log(`cannot write the spool: ${(e as Error).message}`);
    } finally {
      this.inFlight.delete(batch);
      this.flushing--;
      // Events that arrived during this batch's send or fsync leave at once (group commit).
      if (this.buffer.length > 0) this.flushSoon(0);
    }
  }

  /** Sends a batch to Kafka; if it is not acked in time (or fails), spools it instead. */
  private async sendDirect(batch: Waiting[]): Promise<void> {
    const deadline = this.opts.deadlineMs - (performance.now() - batch[0]!.since);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>(
      (r) => (timer = setTimeout(() => r('timeout'), Math.max(deadline, 1))),
    );
    const lane = this.lanes.find((l) => !l.busy)!;
    lane.busy = true;
    const send = lane.connecting.then(() => this.sendAll(lane.producer, batch.map(toMessage)));
    // The lane is free again once this send settles, even if that is after its deadline.
    void send.then(
      () => (lane.busy = false),
      () => (lane.busy = false),
    );
    const outcome = await Promise.race([
      send.then(
        () => 'acked' as const,
        (e: Error) => e,
      ),
      timedOut,
    ]);
    clearTimeout(timer);
    if (outcome === 'acked') this.settle(batch, 'kafka');
    else if (outcome === 'timeout') {
      this.enterSpooling(`Kafka did not ack within ${this.opts.deadlineMs} ms`);
      await this.toSpool(batch, send);
    } else {
      this.enterSpooling(`Kafka send failed: ${outcome.message}`);
      await this.toSpool(batch, undefined);
    }
  }

  /** Spools a batch; `lateSend` is a send of the same events that may still be acked. */
  private async toSpool(batch: Waiting[], lateSend: Promise<unknown> | undefined): Promise<void> {
    if (this.mode === 'direct') this.enterSpooling('spooling');
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
      // The spool could not keep these events (disk full, I/O error), but the send that missed its
      // deadline may still be acked: then they are in Kafka and counted, so the clicks must get
      // their 302, not an error. Its outcome is awaited for a bounded time (the click path's deadline).
      const outcome = await settledWithin(lateSend, this.opts.lateAckWaitMs ?? LATE_ACK_WAIT_MS);
      if (outcome === 'acked') return this.settle(batch, 'kafka');
      if (outcome === 'pending') {
        void lateSend.then(
          () =>
            this.log(
              `${batch.length} click event(s) answered with an error (the spool failed) were acked by ` +
                `Kafka more than ${this.opts.lateAckWaitMs ?? LATE_ACK_WAIT_MS} ms after their deadline: counted without a redirect`,
            ),
          () => undefined,
        );
      }
      throw e;
    }
    this.settle(batch, 'spool');
    this.wake?.();
  }

  private settle(batch: Waiting[], destination: Destination): void {
    const now = performance.now();
    const histogram = this.opts.metrics?.produceSeconds.labels(destination);
    for (const w of batch) {
      histogram?.observe((now - w.since) / 1000);
      w.resolve(destination);
    }
  }

  private enterSpooling(reason: string): void {
    if (this.mode === 'spooling') return;
    this.mode = 'spooling';
    this.log(`spooling click events: ${reason}`);
    // replay() handles its own errors; this catch only keeps a bug there from killing the process.
    this.replaying ??= this.replay()
      .catch((e: Error) => this.log(`spool replay stopped: ${e.message}`))
      .finally(() => (this.replaying = undefined));
  }

  /** Sends the spool into Kafka in order, then switches back to direct sends. */
  private async replay(): Promise<void> {
    while (!this.closing) {
      if (this.unsettled.size > 0) {
        await Promise.all([...this.unsettled]);
        continue;
      }
      if (!(await this.ensureConnected())) {
        await this.pause(RETRY_MS);
        continue;
      }
      if (this.unsettled.size > 0) continue; // a late send appeared while connecting
      if (!this.spool.pending) {
        // Caught up: hold new batches (they wait in the buffer) while the file is emptied, so no
        // event can slip into a spool that nobody replays; then send directly again.
        this.holdFlush = true;
        while (this.flushing > 0) await sleep(1);
        let emptied: boolean | Error;
        try {
          emptied = !this.spool.pending && (await this.spool.resetIfDrained());
        } catch (e) {
          emptied = e as Error;
        }
        this.holdFlush = false;
        if (emptied instanceof Error) {
          if (emptied instanceof SpoolLockLostError) throw emptied;
          this.log(`cannot empty the replayed spool, retrying: ${emptied.message}`);
          this.flushSoon(0);
          await this.pause(RETRY_MS);
          continue;
        }
        if (emptied) {
          this.spooledOldestTs = undefined;
          this.mode = 'direct';
          this.log('spool replayed; sending click events directly to Kafka again');
          for (const w of this.drainedWaiters.splice(0)) w();
        }
        this.flushSoon(0);
        if (emptied) return;
        continue;
      }
      let batch: SpoolBatch;
      try {
        batch = await this.spool.read(REPLAY_BATCH);
      } catch (e) {
        if (e instanceof SpoolLockLostError) return this.log(`spool replay stopped: ${e.message}`);
        this.log(`cannot read the spool, retrying: ${(e as Error).message}`);
        await this.pause(RETRY_MS);
        continue;
      }
      const { messages, poison } = spooledMessages(batch.records);
      try {
        if (messages.length > 0) await this.sendAll(this.lanes[0]!.producer, messages);
      } catch (e) {
        this.log(`spool replay failed, retrying: ${(e as Error).message}`);
        await this.resetProducer();
        await this.pause(RETRY_MS);
        continue;
      }
      try {
        // After the send, so that a send retried during an outage does not quarantine them again.
        if (poison.length > 0) await this.quarantine(poison);
        await this.spool.commit(batch.next, batch.frames);
      } catch (e) {
        if (e instanceof SpoolLockLostError) return this.log(`spool replay stopped: ${e.message}`);
        // The batch is read and sent again: the at-least-once corner of spool.ts.
        this.log(`cannot record spool replay progress, retrying: ${(e as Error).message}`);
        await this.pause(RETRY_MS);
      }
    }
  }

  /**
   * producer.send, sure of every message: resolves once each message's partition is acked.
   * kafkajs 2.2.4 can resolve a send without ever sending the messages of one partition: when the
   * leader of that partition fails during the send (kill -9, or it answers NOT_LEADER) and the new
   * leader is a broker that had already answered for other partitions of the same send, the retry
   * skips that broker (sendMessages.js keeps each broker's answer across retries, keyed by broker;
   * tulios/kafkajs#1303, #1798). The result then lacks that partition: its messages are sent again,
   * by a new send, which goes to the new leader. If the first attempt did reach the old leader and
   * was replicated, the idempotent producer's sequence numbers make the copy a duplicate the broker
   * acks without writing it again. Rejects (a failed send, to its caller) after RESEND_ROUNDS.
   */
  private async sendAll(producer: Producer, messages: Message[]): Promise<void> {
    let left = messages;
    for (let round = 0; ; round++) {
      const acked = await producer.send({
        topic: this.opts.topic,
        acks: -1,
        compression: this.compression,
        messages: left,
      });
      left = unacked(left, acked, this.opts.topic, this.placed);
      if (left.length === 0) return;
      const partitions = [...new Set(left.map((m) => this.placed.get(m)))].join(', ');
      if (round + 1 >= RESEND_ROUNDS)
        throw new Error(`Kafka acked no write of partition(s) ${partitions} in ${RESEND_ROUNDS} sends`);
      this.log(
        `Kafka's answer to a send lacks partition(s) ${partitions} (a leader changed during the ` +
          `send): sending their ${left.length} click event(s) again`,
      );
    }
  }

  private async quarantine(poison: PoisonRecord[]): Promise<void> {
    await this.spool.quarantine(poison.map((p) => p.record));
    this.opts.metrics?.spoolPoison.inc(poison.length);
    this.log(
      `spool ${this.opts.spoolPath}: moved ${poison.length} record(s) that are no click event to ` +
        `${this.opts.spoolPath}.poison (first at offset ${poison[0]!.record.offset}: ${poison[0]!.reason}); ` +
        `replay goes on`,
    );
  }

  /** Waits for every lane's connection; lanes that failed start connecting again. */
  private async ensureConnected(): Promise<boolean> {
    let all = true;
    for (const lane of this.lanes) {
      try {
        await lane.connecting;
      } catch {
        this.connectLane(lane);
        all = false;
      }
    }
    return all;
  }

  /** A producer whose send failed for good may hold stale sequence numbers: start a fresh one. */
  private async resetProducer(): Promise<void> {
    const old = this.lanes[0]!.producer;
    this.lanes[0] = this.newLane();
    await Promise.race([old.disconnect().catch(() => undefined), sleep(2000)]);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }
}

export interface PoisonRecord {
  record: SpoolRecord;
  /** Why it is no click event. */
  reason: string;
}

/** Spooled records as Kafka messages, and the ones that are no (longer a) click event: poison. */
export function spooledMessages(records: SpoolRecord[]): { messages: Message[]; poison: PoisonRecord[] } {
  const messages: Message[] = [];
  const poison: PoisonRecord[] = [];
  for (const r of records) {
    let event: ClickEvent;
    try {
      event = decodeClickEvent(r.payload);
    } catch (e) {
      poison.push({ record: r, reason: (e as Error).message });
      continue;
    }
    messages.push(toMessage({ event, value: r.payload }));
  }
  return { messages, poison };
}

/** The messages of a send whose partition is not among the partitions its answer acked. */
export function unacked(
  messages: Message[],
  acked: RecordMetadata[],
  topic: string,
  placed: WeakMap<Message, number>,
): Message[] {
  const ok = new Set(acked.filter((r) => r.topicName === topic && r.errorCode === 0).map((r) => r.partition));
  return messages.filter((m) => {
    const p = placed.get(m);
    return p === undefined || !ok.has(p);
  });
}

function toMessage(w: Pick<Waiting, 'event' | 'value'>): Message {
  return { key: clickKey(w.event.adId, w.event.salt), value: w.value, timestamp: String(w.event.ts) };
}

/** Whether `p` fulfilled, rejected or is still pending after `ms`. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<'acked' | 'failed' | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    p.then(
      () => 'acked' as const,
      () => 'failed' as const,
    ),
    new Promise<'pending'>((r) => (timer = setTimeout(() => r('pending'), ms))),
  ]);
  clearTimeout(timer);
  return outcome;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

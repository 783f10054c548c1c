// The click log's replayer: while the log is spooling, it sends the spool into Kafka in file order
// through the loop the drain shares (spool-replay.ts). Before each batch it waits for every late send
// of a missed deadline to settle (a late ack marks its records delivered, so they are skipped) and for
// the producers' connections. Once caught up, it has the log hold new batches while the file is
// emptied, so no event can slip into a spool that nobody replays; then the log sends directly again.
// It stops when the log closes, or for good when the spool's lock is lost (the log is then stalled).
import { CompressionTypes } from 'kafkajs';
import type { ClickLogEvent, ClickLogState, DirectReturnGate } from './click-log-state.js';
import { accepting } from './click-log-state.js';
import type { KafkaLanes } from './kafka-lanes.js';
import type { ClickMetrics } from './metrics.js';
import { SpoolLockLostError, type Spool } from './spool.js';
import { poisonLine, replaySpool, type ReplayStep } from './spool-replay.js';
import { sleep } from '../common/wait.js';

const RETRY_MS = 500;

/** What the replayer needs of its click log. */
export interface ReplayerHost {
  state(): ClickLogState;
  /** Applies an event to the log's state (click-log-state.ts); true if it changed. */
  move(event: ClickLogEvent): boolean;
  /** Batches being sent or spooled right now. */
  batchesInFlight(): number;
  /** Late sends whose outcome is still unknown. */
  readonly unsettled: ReadonlySet<Promise<unknown>>;
  /** Starts the batches waiting in the buffer, if the state lets them go. */
  flushNow(): void;
  /** When the log may send directly again: told of each replay send, asked once caught up. */
  readonly gate: DirectReturnGate;
  /** The spool was emptied: nothing of this log waits outside Kafka any more but its buffer. */
  drained(): void;
}

export interface ReplayerOptions {
  topic: string;
  compression: CompressionTypes;
  spoolPath: string;
  metrics?: Pick<ClickMetrics, 'spoolPoison'>;
  log: (message: string) => void;
}

export class ClickLogReplayer {
  private running: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  /** Whether this spooling episode has said why it stays on the spool once caught up. */
  private saidSlow = false;
  /** When the batch being replayed started, and the spool's depth then (for the pacing). */
  private batchStarted: { at: number; depth: number } | undefined;

  constructor(
    private readonly host: ReplayerHost,
    private readonly spool: Spool,
    private readonly lanes: KafkaLanes,
    private readonly opts: ReplayerOptions,
  ) {}

  /** Starts replaying, unless it runs already. */
  start(): void {
    // run() handles its own errors; this catch keeps a bug there (or a lost lock) from killing the process.
    this.running ??= this.run()
      .catch((e: Error) => {
        this.opts.log(`spool replay stopped: ${e.message}`);
        this.host.move('replay-stopped');
        this.host.flushNow(); // batches held while the file was being emptied get the spool's answer
      })
      .finally(() => (this.running = undefined));
  }

  /** Settles when the replay in progress (if any) has ended. */
  get done(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Ends the current pause early (a batch was spooled; the log closes). */
  wake(): void {
    this.wakeUp?.();
  }

  private async run(): Promise<void> {
    const { topic, compression, spoolPath: path, log } = this.opts;
    await replaySpool(
      this.spool,
      {
        ready: () => this.ready(),
        send: async (messages) => {
          const t0 = performance.now();
          await this.lanes.sendOnFirst({ topic, acks: -1, compression, messages });
          const now = performance.now();
          this.host.gate.sent(now, now - t0);
        },
        caughtUp: () => this.emptySpool(),
        failed: (step, e) => this.failed(step, e),
        poisoned: (poison) => log(`spool ${path}: ${poisonLine(path, poison)}; replay goes on`),
      },
      { metrics: this.opts.metrics },
    );
  }

  /** Waits until no late send is unsettled and every lane is connected; false once the log closes. */
  private async ready(): Promise<boolean> {
    if (this.batchStarted !== undefined && this.host.state().phase === 'spooling') {
      // Pacing: while the backlog shrinks, the replay takes at most half of the click worker's time
      // (a pause as long as the batch took), so that catching up after an outage does not starve the
      // clicks answered meanwhile (measured: the second after Kafka's return had a p99 of 130-640 ms
      // unpaced, 45-70 ms paced). A backlog that does not shrink is replayed at full speed.
      const { at, depth } = this.batchStarted;
      this.batchStarted = undefined;
      const took = performance.now() - at;
      if (this.spool.depth < depth && took >= 1) await sleep(Math.min(took, 100));
    }
    while (accepting(this.host.state())) {
      if (this.host.unsettled.size > 0) {
        await Promise.all([...this.host.unsettled]);
        continue;
      }
      if (!(await this.lanes.ensureConnected())) {
        await this.pause(RETRY_MS);
        continue;
      }
      if (this.host.unsettled.size === 0) {
        this.batchStarted = { at: performance.now(), depth: this.spool.depth };
        return true;
      } // else a late send appeared while connecting
    }
    return false;
  }

  /** Caught up: hold new batches while the file is emptied, then send directly. True once emptied. */
  private async emptySpool(): Promise<boolean> {
    const gate = this.host.gate;
    if (!gate.mayReturn(performance.now())) {
      // Kafka was slow or missed a deadline a moment ago: new clicks keep going to the spool (a
      // fsync, not a deadline) and this replays them, until Kafka has been calm for long enough.
      if (!this.saidSlow)
        this.opts.log(
          `spool replayed, but Kafka was slow a moment ago: staying on the spool until it has answered ` +
            `promptly for ${Math.round(gate.calmMs / 100) / 10} s`,
        );
      this.saidSlow = true;
      await this.pause(Math.max(10, Math.min(250, gate.waitMs(performance.now()))));
      return false;
    }
    this.host.move('caught-up');
    while (this.host.batchesInFlight() > 0) await sleep(1);
    let emptied: boolean;
    try {
      emptied = !this.spool.pending && (await this.spool.resetIfDrained());
    } catch (e) {
      if (e instanceof SpoolLockLostError) throw e;
      this.host.move('not-emptied');
      this.opts.log(`cannot empty the replayed spool, retrying: ${(e as Error).message}`);
      this.host.flushNow();
      await this.pause(RETRY_MS);
      return false;
    }
    if (emptied) {
      this.host.move('emptied');
      gate.returned(performance.now());
      this.saidSlow = false;
      this.opts.log('spool replayed; sending click events directly to Kafka again');
      this.host.drained();
    } else this.host.move('not-emptied');
    this.host.flushNow();
    return emptied;
  }

  private async failed(step: ReplayStep, e: Error): Promise<boolean> {
    if (e instanceof SpoolLockLostError) {
      this.opts.log(`spool replay stopped: ${e.message}`);
      this.host.move('replay-stopped');
      return false;
    }
    const what = {
      read: 'cannot read the spool',
      send: 'spool replay failed',
      commit: 'cannot record spool replay progress',
    }[step];
    this.opts.log(`${what}, retrying: ${e.message}`);
    if (step === 'send') {
      this.host.gate.sent(performance.now(), Number.POSITIVE_INFINITY); // a failed send: not calm
      await this.lanes.resetFirst();
    }
    await this.pause(RETRY_MS);
    return true;
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wakeUp = done;
    });
  }
}

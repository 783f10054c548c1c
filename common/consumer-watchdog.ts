// The per-partition stall watchdog of a consumer group member (archiver, speed layer): each
// partition's committed and end offsets as metrics, and a partition whose committed offset has not
// moved for `stallAfterMs` while it has lag is a stall — logged with its topic, partition and
// offsets, counted, and handed to the consumer to rejoin or resume it. A consumer that stops a
// partition on purpose (an undecodable message, a store that does not take writes) says so through
// `held`, so the watchdog does not fight it. `StallDetector` is the pure part, unit-tested.
import { Counter, Gauge } from 'prom-client';
import { registry } from './metrics.js';

export interface PartitionProgress {
  partition: number;
  /** Next offset the group will read after a restart (its committed position); -1 if none. */
  committed: number;
  /** The partition's end (high watermark). */
  end: number;
  /**
   * What this member is doing with the partition (say its read offset and the upload under way):
   * when it changes the member is working on the lag, so the clock starts again. Without it, a
   * watchdog whose stallAfterMs is shorter than a read-upload-commit round (a loaded machine) would
   * replace the consumer in the middle of every round it had just started: a livelock (issue 23, CI).
   */
  activity?: string;
}

export interface Stall extends PartitionProgress {
  /** How long the committed offset has not moved while there was lag (ms). */
  stalledForMs: number;
}

/**
 * Remembers, per partition, since when its committed offset (and the member's activity on it) has
 * stood still with lag behind it.
 * `observe` answers the partitions that have been so for `stallAfterMs` (each once per stall: after
 * a report the clock starts again, so a partition still stuck is reported again later).
 */
export class StallDetector {
  private readonly since = new Map<number, { committed: number; activity?: string; at: number }>();

  constructor(private readonly stallAfterMs: number) {}

  observe(now: number, progress: PartitionProgress[], held: ReadonlySet<number> = new Set()): Stall[] {
    const stalls: Stall[] = [];
    const seen = new Set<number>();
    for (const p of progress) {
      seen.add(p.partition);
      const last = this.since.get(p.partition);
      const lag = p.end > Math.max(p.committed, 0);
      if (!lag || held.has(p.partition)) {
        this.since.delete(p.partition); // the clock starts when lag (or the hold's end) appears
        continue;
      }
      if (!last || last.committed !== p.committed || last.activity !== p.activity) {
        this.since.set(p.partition, { committed: p.committed, activity: p.activity, at: now });
        continue;
      }
      if (now - last.at >= this.stallAfterMs) {
        stalls.push({ ...p, stalledForMs: now - last.at });
        last.at = now;
      }
    }
    for (const partition of [...this.since.keys()]) if (!seen.has(partition)) this.since.delete(partition);
    return stalls;
  }
}

const labels = ['group', 'topic', 'partition'] as const;
const committedOffset = new Gauge({
  name: 'adclick_consumer_committed_offset',
  help: 'Committed offset (next to read after a restart) of each partition this process consumes',
  labelNames: labels,
  registers: [registry],
});
const endOffset = new Gauge({
  name: 'adclick_consumer_end_offset',
  help: 'End offset (high watermark) of each partition this process consumes',
  labelNames: labels,
  registers: [registry],
});
const stallsTotal = new Counter({
  name: 'adclick_consumer_stalls_total',
  help: 'Partitions found stalled (committed offset still while it had lag) and rejoined',
  labelNames: labels,
  registers: [registry],
});

export interface WatchdogOptions {
  group: string;
  topic: string;
  stallAfterMs: number;
  /** How often to look (default: a quarter of stallAfterMs, at most 15 s). */
  everyMs?: number;
  /** Committed and end offsets of the partitions this member owns now. */
  progress: () => Promise<PartitionProgress[]>;
  /** Partitions stopped on purpose (not stalls). */
  held?: () => ReadonlySet<number>;
  /** What the consumer does about stalled partitions (rejoin, seek, resume). */
  onStall: (stalls: Stall[]) => Promise<void>;
  log: (message: string) => void;
}

/** Runs a StallDetector over a consumer: metrics every look, a log line and `onStall` per stall. */
export class ConsumerWatchdog {
  private readonly detector: StallDetector;
  private timer?: NodeJS.Timeout;
  private running = false;
  private reported = new Set<number>();

  constructor(private readonly opts: WatchdogOptions) {
    this.detector = new StallDetector(opts.stallAfterMs);
  }

  start(): void {
    const every =
      this.opts.everyMs ?? Math.min(15_000, Math.max(250, Math.floor(this.opts.stallAfterMs / 4)));
    this.timer = setInterval(() => void this.look(), every);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One look (also called by tests); errors (Kafka away) are skipped: the next look tries again. */
  async look(now = Date.now()): Promise<Stall[]> {
    if (this.running) return [];
    this.running = true;
    try {
      const { group, topic } = this.opts;
      const progress = await this.opts.progress();
      const current = new Set(progress.map((p) => p.partition));
      for (const p of this.reported)
        if (!current.has(p)) {
          committedOffset.remove({ group, topic, partition: String(p) });
          endOffset.remove({ group, topic, partition: String(p) });
        }
      this.reported = current;
      for (const p of progress) {
        const l = { group, topic, partition: String(p.partition) };
        committedOffset.set(l, p.committed);
        endOffset.set(l, p.end);
      }
      const stalls = this.detector.observe(now, progress, this.opts.held?.() ?? new Set());
      if (stalls.length === 0) return [];
      for (const s of stalls) {
        stallsTotal.inc({ group, topic, partition: String(s.partition) });
        this.opts.log(
          `STALL ${topic} partition ${s.partition} (group ${group}): committed offset ${s.committed} has not moved ` +
            `for ${Math.round(s.stalledForMs / 1000)} s while the end offset is ${s.end} (lag ${s.end - Math.max(0, s.committed)}); rejoining`,
        );
      }
      await this.opts.onStall(stalls);
      return stalls;
    } catch (e) {
      this.opts.log(`stall watchdog: offsets not read (${(e as Error).message}); next look later`);
      return [];
    } finally {
      this.running = false;
    }
  }
}

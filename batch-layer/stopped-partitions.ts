// Partitions the archiver stopped at a message it cannot read: never skipped (skipping would lose
// authoritative data), said loudly — logged when stopped and every minute after, counted in
// archiver_rejected_total and archiver_stopped_partitions.
import { eventsRejected, stoppedPartitions } from './archiver-metrics.js';

export class StoppedPartitions {
  /** partition → the offset it stopped at, why, and when that was last logged. */
  private readonly stopped = new Map<number, { offset: string; reason: string; loggedAt: number }>();

  constructor(
    private readonly topic: string,
    private readonly log: (message: string) => void,
  ) {}

  partitions(): number[] {
    return [...this.stopped.keys()];
  }

  stop(partition: number, offset: string, reason: string): void {
    if (!this.stopped.has(partition)) eventsRejected.inc();
    this.stopped.set(partition, { offset, reason, loggedAt: Date.now() });
    stoppedPartitions.set(this.stopped.size);
    this.logStopped(partition);
  }

  /** Logs again each stopped partition last logged a minute or more before `now`. */
  logAgain(now: number): void {
    for (const [p, s] of this.stopped) if (now - s.loggedAt >= 60_000) this.logStopped(p);
  }

  private logStopped(partition: number): void {
    const s = this.stopped.get(partition)!;
    s.loggedAt = Date.now();
    this.log(
      `ERROR ${this.topic} partition ${partition} offset ${s.offset}: cannot decode the message (${s.reason}). ` +
        'Archiving of this partition is stopped there, not skipped (skipping would lose authoritative data): ' +
        'deploy a version that reads it, or move the group past it deliberately ' +
        '(kafka-consumer-groups.sh --reset-offsets), then restart the archiver',
    );
  }
}

// The click log's options (click-log.ts), and the part of them the drain shares (spool-drain.ts):
// apps/click-options.ts builds both from the configuration, once.
import type { Kafka } from 'kafkajs';
import type { ClickEventEncoding } from '../common/click-event.js';
import type { ClickLogEvent, ClickLogState } from './click-log-state.js';
import type { LaneProducerFactory } from './lane-producers.js';
import type { ClickMetrics } from './metrics.js';

/** How spooled click events reach Kafka: what the click log and the drain share (apps/ builds it). */
export interface SpoolSendOptions {
  kafka: Kafka;
  topic: string;
  /** Compression of the batches sent to Kafka (default none; the spool is never compressed). */
  compression?: 'none' | 'gzip';
  /**
   * After how long without a refresh a spool lock counts as a dead owner's (default LOCK_STALE_MS,
   * 10 s: how long a worker restarted after a SIGKILL waits). Every process sharing a spool folder
   * must use the same value.
   */
  spoolLockStaleMs?: number;
  metrics?: ClickMetrics;
  log?: (message: string) => void;
}

export interface ClickLogOptions extends SpoolSendOptions {
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
  /** Makes each lane's producer (default: kafkajs' over `kafka`; lane-producers.ts). */
  laneProducers?: LaneProducerFactory;
  /**
   * How long to wait for the spool's lock if another process holds it (then ClickLog.open rejects
   * with SpoolLockedError). Default: long enough for a crashed owner's lock to go stale. Give 0 for
   * a spool that is only worth taking if nobody owns it (draining another worker's spool).
   */
  spoolLockWaitMs?: number;
  /**
   * When a batch missed its deadline and its spool append failed too, how long its clicks wait for
   * the late send's outcome (default 2000 ms): acked → 302 (the events are in Kafka), else an error.
   */
  lateAckWaitMs?: number;
  /**
   * After a missed deadline, how long Kafka must answer the replay within half the deadline before
   * the log sends directly again (default 1000 ms; doubles on each flap, up to 30 s; DirectReturnGate).
   */
  directReturnCalmMs?: number;
  /** Told of every change of state (tests check each against the allowed transitions). */
  onTransition?: (from: ClickLogState, to: ClickLogState, event: ClickLogEvent) => void;
}

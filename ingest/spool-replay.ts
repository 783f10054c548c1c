// The one spool replay loop, shared by the click log (which replays its own spool while it serves,
// click-log.ts) and the drain (spool files no click process will replay, spool-drain.ts). Each batch
// is read from the committed offset (records a late ack delivered are left out, damaged bytes
// skipped), its click events are sent to Kafka in file order, the records that pass their CRC but are
// no click event (poison: a schema change, a bug) are moved to `<spool>.poison` — after the send, so
// that a send retried during an outage does not quarantine them again — and the spool commits past
// the batch. Replay never stops on a bad record: otherwise one such record would keep a log spooling
// forever, every later click with it. Each caller says when a batch may start, how it is sent, what
// a failed step means (retry or stop) and what to do once nothing is left.
import type { Message } from 'kafkajs';
import { clickKey, decodeClickEvent, type ClickEvent } from '../common/click-event.js';
import type { ClickMetrics } from './metrics.js';
import type { Spool, SpoolBatch } from './spool.js';
import type { SpoolRecord } from './spool-format.js';

/** Records per Kafka request of a replay. */
export const REPLAY_BATCH = 500;

export interface PoisonRecord {
  record: SpoolRecord;
  /** Why it is no click event. */
  reason: string;
}

export type ReplayStep = 'read' | 'send' | 'commit';

export interface ReplayedBatch {
  /** Click events sent and acked. */
  sent: number;
  /** Records skipped because a late ack had delivered them already. */
  alreadyDelivered: number;
  /** Records moved to `<spool>.poison`. */
  poison: number;
}

export interface ReplayHooks {
  /** Resolves true when the next batch may be read (it may wait for that), false to stop. */
  ready(): Promise<boolean>;
  /** Sends click events to Kafka (acks=all); rejects when Kafka did not take them. */
  send(messages: Message[]): Promise<void>;
  /** Nothing is left to replay: resolves true to end the replay, false to go on. */
  caughtUp(): Promise<boolean>;
  /** A step failed: resolves true to go on (the batch is read and sent again), false to stop; or rejects. */
  failed(step: ReplayStep, e: Error): Promise<boolean>;
  /** Records that are no click event were moved to `<spool>.poison` (and counted in the metric). */
  poisoned(poison: PoisonRecord[]): void;
  /** A batch is acked and committed. */
  replayed?(batch: ReplayedBatch): void;
}

export interface ReplayOptions {
  batchRecords?: number;
  metrics?: Pick<ClickMetrics, 'spoolPoison'>;
}

/** Replays `spool` into Kafka (see the top comment): ends once caught up, or when a hook says stop. */
export async function replaySpool(
  spool: Spool,
  hooks: ReplayHooks,
  opts: ReplayOptions = {},
): Promise<'caught-up' | 'stopped'> {
  for (;;) {
    if (!(await hooks.ready())) return 'stopped';
    if (!spool.pending) {
      if (await hooks.caughtUp()) return 'caught-up';
      continue;
    }
    if (!(await replayBatch(spool, hooks, opts))) return 'stopped';
  }
}

/** One batch: read, send, quarantine, commit. False: stop (a hook said so after a failed step). */
async function replayBatch(spool: Spool, hooks: ReplayHooks, opts: ReplayOptions): Promise<boolean> {
  let batch: SpoolBatch;
  try {
    batch = await spool.read(opts.batchRecords ?? REPLAY_BATCH);
  } catch (e) {
    return hooks.failed('read', e as Error);
  }
  const { messages, poison } = spooledMessages(batch.records);
  try {
    if (messages.length > 0) await hooks.send(messages);
  } catch (e) {
    return hooks.failed('send', e as Error);
  }
  try {
    if (poison.length > 0) {
      await spool.quarantine(poison.map((p) => p.record));
      opts.metrics?.spoolPoison.inc(poison.length);
      hooks.poisoned(poison);
    }
    await spool.commit(batch.next, batch.frames);
  } catch (e) {
    // The batch is read and sent again if the caller goes on: the at-least-once corner of spool.ts.
    return hooks.failed('commit', e as Error);
  }
  hooks.replayed?.({
    sent: messages.length,
    alreadyDelivered: batch.frames - batch.records.length,
    poison: poison.length,
  });
  return true;
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
    messages.push(clickMessage(event, r.payload));
  }
  return { messages, poison };
}

/** The Kafka message of a click event: keyed by ad and salt, stamped with the click's time. */
export function clickMessage(event: ClickEvent, value: Buffer): Message {
  return { key: clickKey(event.adId, event.salt), value, timestamp: String(event.ts) };
}

/** One line about moved poison records, for a log. */
export function poisonLine(path: string, poison: PoisonRecord[]): string {
  return (
    `moved ${poison.length} record(s) that are no click event to ${path}.poison ` +
    `(first at offset ${poison[0]!.record.offset}: ${poison[0]!.reason})`
  );
}

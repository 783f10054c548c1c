// SPEED_STORE=pinot: each partition flush is one Kafka transaction that writes the flush's count
// rows to the count topic (KAFKA_MINUTE_COUNTS_TOPIC) and commits the consumed `clicks` offset (with
// the checkpoint's replayFrom and watermark as offset metadata) via sendOffsets. Pinot reads the
// topic read_committed, so an aborted flush is never seen.
//
// What a row says (`counts`, SPEED_PINOT_COUNTS):
// - `deltas` (the default): the clicks the flush added to a part. Pinot sums every row, with no
//   upsert. Exactly once, because a flush's rows and its offset commit are one transaction: a flush
//   whose commit failed is never re-sent as it was; the partition is claimed again, which reads the
//   committed offset (whichever way the commit went) and counts only what follows it (consumer.ts).
// - `cumulative` (the form before): a part's running count, under a FULL upsert on
//   (adId, salt, minute, part), so a re-emitted part only replaces itself. Pinot 0.11 keeps the
//   upsert's primary-key map in its heap for every key of the retention (speed-layer/pinot-tables.ts).
//
// Fencing: one transactional producer per clicks partition, transactional.id
// `<group>-<topic>-<partition>` (the pre-KIP-447 pattern; KafkaJS sends no group metadata). A new
// owner's initProducerId bumps the epoch, aborts the old owner's open transaction and makes every
// later commit of the old owner fail. A count part is written to the same-numbered partition of
// `minute_counts` as its clicks partition, and its part name carries that partition, so all records
// of one primary key share a partition, as Pinot's upsert requires — also after `clicks` grows and a
// key (adId:salt) starts landing in another partition, whose window counts it from its own epoch.
//
// Rows per message: one row per message (keyed by its primary key) unless the table unnests several
// (speed-layer/pinot-tables.ts `tableFormat`); then a message is `{"rows":[…]}` of up to
// `rowsPerMessage` rows, which kafkajs encodes as one record instead of one per row (measured: a
// third of the producer's CPU per row). Its key is unique to the message (partition, the flush's
// next offset, time, index), so compaction never drops a message for another's sake; the topic's
// time retention bounds it.
//
// `clicks` can grow while the system runs: claiming a partition that `minute_counts` does not have
// yet grows `minute_counts` to the clicks partition count first (and tells the caller, so that Pinot
// starts consuming the new partitions), instead of failing every flush of that partition.
import type { Admin, Kafka, Message, Producer } from 'kafkajs';
import { config } from '../common/config.js';
import { growPartitions, partitionCount } from '../common/kafka.js';
import type { Checkpoint, CountChange, Flush, MinuteCountPart } from './minute-window.js';
import type { CountsForm } from './pinot-tables.js';
import { FencedError, type PartitionSink } from './sink.js';

/**
 * One row of the minute_counts topic and of the Pinot table: a count part as the window hands it
 * out, and when it was written. Advertiser-wide reads filter on `advertiserId` (rows written before it
 * existed have none: docs/operations.md).
 */
export type MinuteCountRecord = MinuteCountPart & { updatedAt: number };

interface OffsetMetadata {
  replayFrom: number;
  watermark: number | null;
}

const FENCED = new Set([
  'INVALID_PRODUCER_EPOCH',
  'PRODUCER_FENCED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
]);

export class KafkaTransactionSink implements PartitionSink {
  private readonly producers = new Map<number, Producer>();
  private readonly admin: Admin;
  private adminConnected = false;
  /** Partitions minute_counts is known to have (read again when a claim needs more). */
  private countsPartitions = 0;
  /** Count rows per message (setRowsPerMessage). */
  private rowsPerMessage: number;
  private readonly counts: CountsForm;
  private refused: string | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly opts: {
      groupId: string;
      clicksTopic: string;
      countsTopic: string;
      /**
       * Called when minute_counts has more partitions than this sink last saw (also on its first
       * claim), with the count: e.g. to make Pinot consume the new partitions now.
       */
      onCountsTopicGrown?: (partitions: number) => Promise<void>;
      log?: (message: string) => void;
      /** Count rows per message (1: one row per message, the default); see setRowsPerMessage. */
      rowsPerMessage?: number;
      /** What a row says (default SPEED_PINOT_COUNTS): must be the form of the table reading the topic. */
      counts?: CountsForm;
    },
  ) {
    this.admin = kafka.admin();
    this.rowsPerMessage = opts.rowsPerMessage ?? 1;
    this.counts = opts.counts ?? config.SPEED_PINOT_COUNTS;
  }

  /**
   * Refuses every flush from now on, with `reason` (undefined: accepts again): the table reading
   * the topic is of the other form (pinot-tables.ts CountsMismatchError), so nothing may be
   * committed, and the clicks wait in `clicks` until the configuration is put right.
   */
  refuse(reason: string | undefined): void {
    this.refused = reason;
  }

  /**
   * From the next flush on, up to `n` count rows per message: only once the table is known to
   * unnest them (a table that does not would lose them). 1 goes back to one row per message.
   */
  setRowsPerMessage(n: number): void {
    if (!Number.isInteger(n) || n < 1)
      throw new Error(`rows per message must be a positive integer, not ${n}`);
    this.rowsPerMessage = n;
  }

  async claim(partition: number): Promise<Checkpoint | null> {
    const old = this.producers.get(partition);
    this.producers.delete(partition);
    if (old) await old.disconnect().catch(() => undefined);
    if (!this.adminConnected) {
      await this.admin.connect();
      this.adminConnected = true;
    }
    await this.ensureCountsPartition(partition);
    const producer = this.kafka.producer({
      transactionalId: `${this.opts.groupId}-${this.opts.clicksTopic}-${partition}`,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: 30_000,
    });
    await producer.connect();
    // The first transaction inits the producer id: that fences the previous owner and waits until its
    // open transaction is aborted, so the committed offset read below is final.
    const fence = await producer.transaction();
    await fence.abort();
    this.producers.set(partition, producer);

    const [topicOffsets] = await this.admin.fetchOffsets({
      groupId: this.opts.groupId,
      topics: [this.opts.clicksTopic],
    });
    const committed = topicOffsets?.partitions.find((p) => p.partition === partition);
    if (!committed || Number(committed.offset) < 0) return null;
    const nextOffset = Number(committed.offset);
    const meta = parseMetadata(committed.metadata);
    return {
      nextOffset,
      replayFrom: meta ? Math.min(meta.replayFrom, nextOffset) : nextOffset,
      watermark: meta ? meta.watermark : null,
    };
  }

  async commit(partition: number, flush: Flush, _previous: Checkpoint): Promise<void> {
    const producer = this.producers.get(partition);
    if (!producer) throw new FencedError(`${this.opts.clicksTopic}[${partition}] is not claimed here`);
    if (this.refused !== undefined) throw new Error(this.refused);
    // kafkajs silently drops records for a partition its metadata does not know, and the offsets
    // would commit without them: never send to a minute_counts partition claim() did not see.
    if (partition >= this.countsPartitions)
      throw new Error(`${this.opts.countsTopic} has no partition ${partition}; claim the partition again`);
    const now = Date.now();
    const tx = await producer.transaction();
    try {
      // In sends of at most SEND_BYTES each: one record batch may not exceed the broker's
      // message.max.bytes (1 MB by default), and a flush after a backlog holds far more (a flush
      // that can never be sent would be redone forever). The sends are one transaction all the same.
      const { nextOffset, replayFrom, watermark } = flush.checkpoint;
      const records = countMessages(
        partition,
        flush.changes,
        now,
        this.rowsPerMessage,
        nextOffset,
        this.counts,
      );
      for (const messages of chunks(records, (m) => m))
        await tx.send({ topic: this.opts.countsTopic, acks: -1, messages });
      const metadata: OffsetMetadata = { replayFrom, watermark };
      // The offset commit carries the checkpoint's rebuild point as its metadata string (KafkaJS
      // passes it through to TxnOffsetCommit; its types just do not declare it).
      const partitions = [{ partition, offset: String(nextOffset), metadata: JSON.stringify(metadata) }];
      await tx.sendOffsets({
        consumerGroupId: this.opts.groupId,
        topics: [{ topic: this.opts.clicksTopic, partitions }],
      });
      await tx.commit();
    } catch (e) {
      await tx.abort().catch(() => undefined);
      const type = (e as { type?: string }).type ?? '';
      if (FENCED.has(type) || /fenced|epoch/i.test((e as Error).message)) {
        this.producers.delete(partition);
        await producer.disconnect().catch(() => undefined);
        throw new FencedError(`${this.opts.clicksTopic}[${partition}]: ${(e as Error).message}`);
      }
      throw e;
    }
  }

  /**
   * Makes sure minute_counts has `partition`: grows it to the clicks topic's partition count when
   * `clicks` grew (several members may race; growPartitions tolerates that). Whenever minute_counts
   * has more partitions than this sink last saw — grown here, or by another process (a click service
   * started with a larger KAFKA_CLICKS_PARTITIONS grows both topics) — the caller hears of it.
   */
  private async ensureCountsPartition(partition: number): Promise<void> {
    if (partition < this.countsPartitions) return;
    const known = this.countsPartitions;
    let count = (await partitionCount(this.admin, this.opts.countsTopic)) ?? 0;
    if (partition >= count) {
      const clicks = (await partitionCount(this.admin, this.opts.clicksTopic)) ?? 0;
      const wanted = Math.max(clicks, partition + 1);
      const before = await growPartitions(this.admin, this.opts.countsTopic, wanted);
      if (before < wanted) {
        this.opts.log?.(
          `grew ${this.opts.countsTopic} from ${before} to ${wanted} partitions to follow ${this.opts.clicksTopic}`,
        );
      }
      count = Math.max(before, wanted);
    }
    this.countsPartitions = count;
    if (count > known) {
      // Pinot's own periodic check is the backstop: a failure here must not stop the counting.
      await this.opts
        .onCountsTopicGrown?.(count)
        .catch((e: Error) => this.opts.log?.(`after ${this.opts.countsTopic} grew: ${e.message}`));
    }
  }

  async close(): Promise<void> {
    for (const producer of this.producers.values()) await producer.disconnect().catch(() => undefined);
    this.producers.clear();
    if (this.adminConnected) await this.admin.disconnect();
  }
}

/** Records of one send, at most this many bytes of keys and values (well under message.max.bytes). */
const SEND_BYTES = 512 * 1024;

function countRecord(partition: number, c: CountChange, now: number, counts: CountsForm): MinuteCountRecord {
  return {
    adId: c.adId,
    advertiserId: c.advertiserId,
    salt: c.salt,
    minute: c.minute,
    part: countPart(partition, c.part),
    clicks: counts === 'deltas' ? c.delta : c.clicks,
    updatedAt: now,
  };
}

/** The primary key of a count row (Pinot's upsert key): the key of a one-row message. */
export function countRowKey(r: MinuteCountRecord): string {
  return `${r.adId}:${r.salt}:${r.minute}:${r.part}`;
}

/**
 * A flush's changes as count-topic messages: one per row (`rowsPerMessage` 1), else `{"rows":[…]}`
 * of up to `rowsPerMessage` rows each, keyed uniquely (`nextOffset`: the flush's checkpoint). A
 * one-row message of a cumulative part is keyed by its primary key (compaction keeps its latest); a
 * delta's key is unique too, as every delta counts.
 */
export function countMessages(
  partition: number,
  changes: readonly CountChange[],
  now: number,
  rowsPerMessage: number,
  nextOffset: number,
  counts: CountsForm,
): Message[] {
  if (rowsPerMessage <= 1) {
    return changes.map((c, i) => {
      const record = countRecord(partition, c, now, counts);
      const key =
        counts === 'deltas' ? `delta:p${partition}:o${nextOffset}:t${now}:${i}` : countRowKey(record);
      return { key, value: JSON.stringify(record), partition };
    });
  }
  const messages: Message[] = [];
  for (let i = 0; i < changes.length; i += rowsPerMessage) {
    const rows = changes.slice(i, i + rowsPerMessage).map((c) => countRecord(partition, c, now, counts));
    const key = `rows:p${partition}:o${nextOffset}:t${now}:${i / rowsPerMessage}`;
    messages.push({ key, value: JSON.stringify({ rows }), partition });
  }
  return messages;
}

/** The count rows of one minute_counts message, in either form (tests and tools read the topic so). */
export function countRecordsOf(value: Buffer | string): MinuteCountRecord[] {
  const parsed = JSON.parse(value.toString()) as MinuteCountRecord | { rows: MinuteCountRecord[] };
  return 'rows' in parsed && Array.isArray(parsed.rows) ? parsed.rows : [parsed as MinuteCountRecord];
}

/**
 * Sums per (ad, minute) of count rows as a table of their form does: every delta, or the latest row
 * per primary key (the upsert) for cumulative parts. Tests and tools that read the count topic.
 */
export function sumCountRecords(
  records: Iterable<MinuteCountRecord>,
  counts: CountsForm,
): Record<string, number> {
  const kept = new Map<string, MinuteCountRecord>();
  let n = 0;
  for (const r of records) kept.set(counts === 'deltas' ? String(n++) : countRowKey(r), r);
  const sums: Record<string, number> = {};
  for (const r of kept.values())
    sums[`${r.adId}@${r.minute}`] = (sums[`${r.adId}@${r.minute}`] ?? 0) + r.clicks;
  return sums;
}

/** The changes as messages, in groups of at most SEND_BYTES (at least one message each). */
export function* chunks<T>(items: readonly T[], toMessage: (item: T) => Message): Generator<Message[]> {
  let group: Message[] = [];
  let bytes = 0;
  for (const item of items) {
    const m = toMessage(item);
    const size = String(m.key).length + String(m.value).length + 64;
    if (group.length > 0 && bytes + size > SEND_BYTES) {
      yield group;
      group = [];
      bytes = 0;
    }
    group.push(m);
    bytes += size;
  }
  if (group.length > 0) yield group;
}

function parseMetadata(text: string | null): OffsetMetadata | null {
  if (!text) return null;
  try {
    const m = JSON.parse(text) as Partial<OffsetMetadata>;
    if (typeof m.replayFrom !== 'number') return null;
    return { replayFrom: m.replayFrom, watermark: typeof m.watermark === 'number' ? m.watermark : null };
  } catch {
    return null;
  }
}

/**
 * The part name in minute_counts: the window's part (`e<offset>` / `l<offset>`, unique within one
 * clicks partition) prefixed with that partition, because after `clicks` grows the same
 * (adId, salt, minute) can be counted in two partitions whose windows may share an offset.
 */
export function countPart(clicksPartition: number, part: string): string {
  return `p${clicksPartition}-${part}`;
}

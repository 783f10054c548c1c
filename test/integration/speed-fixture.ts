// Shared pieces of the speed-layer integration suites: unique topics and groups, a kafkajs producer
// of click events, in-process consumers and spawned `apps/speed-layer.ts` processes for one store
// (PostgreSQL or Pinot), and the read side through the store's SpeedStore.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Admin, Kafka, Producer } from 'kafkajs';
import type pg from 'pg';
import { clickKey, encodeClickEvent, type ClickEvent } from '../../common/click-event.js';
import { createPool, migrate } from '../../common/db.js';
import { clicksTopicSpec, createKafka, ensureTopics, minuteCountsTopicSpec } from '../../common/kafka.js';
import type { SpeedStore } from '../../common/speed-store.js';
import { SpeedConsumer } from '../../speed-layer/consumer.js';
import {
  countRecordsOf,
  KafkaTransactionSink,
  sumCountRecords,
  type MinuteCountRecord,
} from '../../speed-layer/kafka-sink.js';
import { PinotSpeedStore } from '../../speed-layer/pinot-speed-store.js';
import { config } from '../../common/config.js';
import { dropPinotTable, ensurePinotTables, type CountsForm } from '../../speed-layer/pinot-tables.js';
import { PostgresSink } from '../../speed-layer/postgres-sink.js';
import { PostgresSpeedStore } from '../../speed-layer/postgres-speed-store.js';
import type { PartitionSink } from '../../speed-layer/sink.js';
import { sleep, waitFor } from '../../common/wait.js';

export { sleep, waitFor };

export type StoreKind = 'postgres' | 'pinot';
export const PARTITIONS = 4;

/** Ad ids unlikely to collide with other tests: a random 15-digit base. */
export function uniqueAdIds(n: number): string[] {
  const base = 100_000_000_000_000 + Math.floor(Math.random() * 800_000_000_000_000);
  return Array.from({ length: n }, (_, i) => String(base + i));
}

export function click(
  adId: string,
  ts: number,
  salt: number,
  status: ClickEvent['status'] = 'valid',
  advertiserId = '1',
): ClickEvent {
  return { v: 1, eventId: randomUUID(), adId, advertiserId, ts, status, salt };
}

/** One speed-layer pipeline under test: its own clicks topic, group, counts topic and table. */
export class SpeedRig {
  readonly id = randomUUID().slice(0, 8);
  readonly clicksTopic = `speed-clicks-${this.id}`;
  readonly countsTopic = `speed-counts-${this.id}`;
  readonly groupId = `speed-${this.id}`;
  readonly table = `speed_${this.id}`;
  readonly kafka: Kafka = createKafka(`speed-test-${this.id}`);
  private admin!: Admin;
  private producer!: Producer;
  pool!: pg.Pool;
  store!: SpeedStore;
  private readonly consumers: SpeedConsumer[] = [];
  private readonly claims = new Map<SpeedConsumer, number[]>();
  private readonly children: ChildProcess[] = [];

  constructor(readonly kind: StoreKind) {}

  /** Count rows per minute_counts message the Kafka-transaction sink sends (as the app: by the table). */
  rowsPerMessage = 1;
  /** What the count rows say (SPEED_PINOT_COUNTS by default): the topic, table and sink agree. */
  countsForm: CountsForm = config.SPEED_PINOT_COUNTS;

  /**
   * `withPinot: false` runs the Kafka-transaction path without a Pinot table (read the topic
   * instead), with `rowsPerMessage` rows per message (default 1); with Pinot, the table decides.
   */
  async setUp(
    opts: { withPinot?: boolean; rowsPerMessage?: number; counts?: CountsForm } = {},
  ): Promise<void> {
    this.countsForm = opts.counts ?? this.countsForm;
    this.admin = this.kafka.admin();
    await this.admin.connect();
    await ensureTopics(this.admin, [
      clicksTopicSpec({ topic: this.clicksTopic, partitions: PARTITIONS }),
      minuteCountsTopicSpec({
        topic: this.countsTopic,
        clicksTopic: this.clicksTopic,
        partitions: PARTITIONS,
        counts: this.countsForm,
      }),
    ]);
    this.producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await this.producer.connect();
    this.pool = createPool(4);
    await migrate(this.pool);
    if (this.kind === 'pinot' && opts.withPinot !== false) {
      const format = await ensurePinotTables({
        table: this.table,
        topic: this.countsTopic,
        counts: this.countsForm,
      });
      this.rowsPerMessage = format.manyRowsPerMessage ? config.SPEED_COUNT_ROWS_PER_MESSAGE : 1;
      this.store = new PinotSpeedStore(undefined, this.table);
    } else {
      this.rowsPerMessage = opts.rowsPerMessage ?? 1;
      this.store = new PostgresSpeedStore(this.pool);
    }
  }

  async tearDown(): Promise<void> {
    for (const child of this.children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const c of this.consumers) await c.stop().catch(() => undefined);
    await this.producer?.disconnect();
    if (this.kind === 'pinot' && this.store) await dropPinotTable(this.table).catch(() => undefined);
    await this.pool?.query('delete from speed_offsets where group_id = $1', [this.groupId]);
    await this.admin?.deleteTopics({ topics: [this.clicksTopic, this.countsTopic] }).catch(() => undefined);
    await this.admin?.disconnect();
    await this.store?.close();
    await this.pool?.end();
  }

  /** Messages as given (e.g. one that is no click event), in one produce request. */
  async produceRaw(messages: Array<{ key: string; value: Buffer }>): Promise<void> {
    await this.producer.send({ topic: this.clicksTopic, acks: -1, messages });
  }

  async produce(events: ClickEvent[]): Promise<void> {
    for (let i = 0; i < events.length; i += 500) {
      await this.producer.send({
        topic: this.clicksTopic,
        acks: -1,
        messages: events
          .slice(i, i + 500)
          .map((e) => ({ key: clickKey(e.adId, e.salt), value: encodeClickEvent(e) })),
      });
    }
  }

  /** A consumer in this process (several can share the group). */
  async startConsumer(): Promise<SpeedConsumer> {
    const inner: PartitionSink =
      this.kind === 'pinot'
        ? new KafkaTransactionSink(this.kafka, {
            groupId: this.groupId,
            clicksTopic: this.clicksTopic,
            countsTopic: this.countsTopic,
            rowsPerMessage: this.rowsPerMessage,
            counts: this.countsForm,
          })
        : new PostgresSink(this.pool, this.groupId, this.clicksTopic);
    // Records which partitions this consumer claimed, so a test can see a rebalance really moved some.
    const claimed: number[] = [];
    const sink: PartitionSink = {
      claim: (partition) => {
        claimed.push(partition);
        return inner.claim(partition);
      },
      commit: (partition, flush, previous) => inner.commit(partition, flush, previous),
      close: () => inner.close(),
    };
    const consumer = new SpeedConsumer({
      kafka: this.kafka,
      topic: this.clicksTopic,
      groupId: this.groupId,
      sink,
      storeName: this.kind,
      openMinutes: 5,
      flushIntervalMs: 200,
      sessionTimeoutMs: 6000,
    });
    await consumer.start();
    this.consumers.push(consumer);
    this.claims.set(consumer, claimed);
    return consumer;
  }

  /** Partitions a consumer started by `startConsumer` has claimed so far, in claim order. */
  claimsOf(consumer: SpeedConsumer): number[] {
    return [...(this.claims.get(consumer) ?? [])];
  }

  async stopConsumer(consumer: SpeedConsumer): Promise<void> {
    await consumer.stop();
  }

  /** `npm run speed-layer` as a child process, configured for this rig through the environment. */
  spawnProcess(): ChildProcess {
    // node itself (not an npx wrapper), so a SIGKILL hits the consumer and nothing else.
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/speed-layer.ts'], {
      cwd: new URL('../..', import.meta.url).pathname,
      env: {
        ...process.env,
        SPEED_STORE: this.kind,
        KAFKA_CLICKS_TOPIC: this.clicksTopic,
        KAFKA_CLICKS_PARTITIONS: String(PARTITIONS),
        KAFKA_MINUTE_COUNTS_TOPIC: this.countsTopic,
        SPEED_CONSUMER_GROUP: this.groupId,
        SPEED_PINOT_TABLE: this.table,
        SPEED_PINOT_COUNTS: this.countsForm,
        SPEED_FLUSH_INTERVAL_MS: '200',
        // Below the ephemeral range (32768+), where outgoing connections would collide with it.
        SPEED_LAYER_METRICS_PORT: String(20_000 + Math.floor(Math.random() * 12_000)),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: false,
    });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code, signal) => {
      if (code !== 0 && signal === null) console.error(`speed-layer child exited ${code}:\n${output}`);
    });
    this.children.push(child);
    return child;
  }

  /** Total committed events: the consumers' next offsets summed over partitions (PostgreSQL or Kafka). */
  async committedOffsets(): Promise<number> {
    if (this.kind === 'postgres') {
      const { rows } = await this.pool.query<{ n: string | null }>(
        'select sum(next_offset) as n from speed_offsets where group_id = $1 and topic = $2',
        [this.groupId, this.clicksTopic],
      );
      return Number(rows[0]?.n ?? 0);
    }
    const [t] = await this.admin.fetchOffsets({ groupId: this.groupId, topics: [this.clicksTopic] });
    return (t?.partitions ?? []).reduce((s, p) => s + Math.max(0, Number(p.offset)), 0);
  }

  async endOffsets(): Promise<number> {
    const offsets = await this.admin.fetchTopicOffsets(this.clicksTopic);
    return offsets.reduce((s, o) => s + Number(o.high), 0);
  }

  /** Per-(ad, minute) counts through the read interface, as `adId@minute → clicks`. */
  async counts(adIds: string[], from: number, to: number): Promise<Record<string, number>> {
    const rows = await this.store.minuteCounts(adIds, from, to);
    return Object.fromEntries(rows.map((r) => [`${r.adId}@${r.minute}`, r.clicks]));
  }

  /**
   * Waits until the read interface shows `expected`, then checks it stays so for `settleMs` (a
   * double count would show up as more). Returns the last counts seen.
   */
  async waitForCounts(
    adIds: string[],
    from: number,
    to: number,
    expected: Record<string, number>,
    timeoutMs = 60_000,
    settleMs = 1500,
  ): Promise<Record<string, number>> {
    const deadline = Date.now() + timeoutMs;
    let last: Record<string, number> = {};
    while (Date.now() < deadline) {
      last = await this.counts(adIds, from, to).catch(() => ({}));
      if (sameCounts(last, expected)) {
        await sleep(settleMs);
        return this.counts(adIds, from, to);
      }
      await sleep(200);
    }
    return last;
  }
}

/**
 * A count topic read read_committed to its end (nothing new for 1.5 s) and summed per (ad, minute)
 * as a table of its form does (every delta, or the latest row per key under the upsert).
 */
export async function readCountsTopic(
  kafka: Kafka,
  topic: string,
  counts: CountsForm,
): Promise<Record<string, number>> {
  const reader = kafka.consumer({ groupId: `speed-read-${randomUUID()}`, readUncommitted: false });
  await reader.connect();
  await reader.subscribe({ topic, fromBeginning: true });
  const records: MinuteCountRecord[] = [];
  let last = Date.now();
  await reader.run({
    eachMessage: async ({ message }) => {
      records.push(...countRecordsOf(message.value!));
      last = Date.now();
    },
  });
  await waitFor('the count topic to be read', async () => Date.now() - last > 1500, 30_000);
  await reader.disconnect();
  return sumCountRecords(records, counts);
}

export function expectedCounts(events: ClickEvent[], countedIds?: Set<string>): Record<string, number> {
  const out: Record<string, number> = {};
  const seen = new Set<string>();
  for (const e of events) {
    if (e.status !== 'valid' || seen.has(e.eventId)) continue;
    if (countedIds && !countedIds.has(e.eventId)) continue;
    seen.add(e.eventId);
    const key = `${e.adId}@${Math.floor(e.ts / 60_000) * 60_000}`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

function sameCounts(a: Record<string, number>, b: Record<string, number>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

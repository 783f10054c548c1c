// The catalogue's change relay (docs/catalogue-replica.md), run by the API process: for each row of ad_changes_outbox
// (migration 009: one per ad written, API or bulk COPY, in the writer's own transaction) it
// publishes the ad's CURRENT row to the compacted topic of ad changes, key = ad id, value = the whole
// row as JSON (null: the ad is gone), with the idempotent producer, and deletes the outbox rows once
// Kafka acked them. Rows are consumed by presence, not by a sequence watermark: a transaction that
// commits after a later-numbered one is still published (reading "seq > last seen" would skip it
// for good). The row is read in the same snapshot as the outbox row that names it, so what is
// published is never older than that change, and a later change queues a row of its own that is
// read later: the last value published for an ad is its committed state (one relay at a time, one
// partition per key, one request in flight).
//
// An idle relay waits for PostgreSQL's notification that the outbox has rows (migration 012: a
// statement trigger's pg_notify, delivered at the writer's commit, on the relay's own connection),
// and looks anyway every `pollMs` (1 s), so a notification missed while it reconnected delays a
// change by at most that, never loses it.
//
// Exactly one relay is active at a time, whatever the number of API processes: each holds a
// PostgreSQL advisory lock while it relays; the others wait to take it over. A relay that dies
// between Kafka's ack and the delete publishes those rows again, which is harmless (whole rows).
//
// Every send is checked against Kafka's answer (common/checked-sends.ts): kafkajs 2.2.4 can resolve
// a send without the partitions whose leader changed during it (tulios/kafkajs#1303), and the outbox
// rows of those changes would be deleted with the changes never published.
import type { Kafka, Producer } from 'kafkajs';
import type pg from 'pg';
import { checkedSends, type CheckedSends } from '../common/checked-sends.js';
import { adChangesTopicSpec, ensureTopics } from '../common/kafka.js';
import { sleep as sleepFor } from '../common/wait.js';

/** Advisory lock key of the relay (db.ts's migration lock is 7_262_024). */
export const RELAY_LOCK_ID = 7_262_009;
/** The channel migration 012's trigger notifies when rows are queued in the outbox. */
const NOTIFY_CHANNEL = 'ad_changes_outbox';

export interface CatalogueRelayOptions {
  pool: pg.Pool;
  kafka: Kafka;
  topic: string;
  /** Rows per read (and per produce request). */
  batch?: number;
  /** How often an idle relay looks at the outbox without being notified of rows (ms). */
  pollMs?: number;
  log?: (message: string) => void;
}

export interface CatalogueRelay {
  /** Whether this process holds the lock and relays now. */
  active(): boolean;
  /** Rows published by this process. */
  published(): number;
  stop(): Promise<void>;
}

export function startCatalogueRelay(opts: CatalogueRelayOptions): CatalogueRelay {
  const log = opts.log ?? ((m: string) => console.error(`[catalogue-relay] ${m}`));
  const batch = opts.batch ?? 10_000;
  const pollMs = opts.pollMs ?? 1000;
  let stopped = false;
  let active = false;
  let published = 0;
  let producer: Producer | undefined;
  let client: pg.PoolClient | undefined;
  const stopping = new AbortController();
  const sleep = (ms: number) => sleepFor(ms, stopping.signal); // stop() ends a wait at once
  const waker = outboxWaker(pollMs, stopping.signal);
  const checked = checkedSends(log, 'ad change');
  const send = (rows: AdRows): Promise<void> => sendAds(checked, producer!, opts.topic, rows);
  const count = (n: number): number => (published += n);

  const run = async (): Promise<void> => {
    let failures = 0;
    while (!stopped) {
      try {
        if (!client) {
          client = await opts.pool.connect();
          // A connection that dies between queries must not be an unhandled 'error' event.
          client.on('error', (e) => log(`connection lost (${e.message})`));
        }
        const got = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1) as locked', [
          RELAY_LOCK_ID,
        ]);
        if (!got.rows[0]!.locked) {
          await sleep(2000); // another process relays; take over if it goes
          continue;
        }
        producer ??= await connectProducer(opts.kafka, opts.topic, checked);
        await waker.listenOn(client);
        if (!active) log(`relaying ad changes to ${opts.topic}`);
        active = true;
        while (!stopped) {
          waker.looking();
          const n = await relayOnce(client, { send, count, batch });
          failures = 0;
          if (n === 0) await waker.idle();
        }
      } catch (e) {
        if (stopped) break;
        if (failures++ % 30 === 0) log(`not relaying (${(e as Error).message}); retrying`);
        active = false;
        // The session (and its lock) may be gone: start over on a fresh connection.
        client?.release(e as Error);
        client = undefined;
        await producer?.disconnect().catch(() => undefined);
        producer = undefined;
        await sleep(1000);
      }
    }
  };

  const done = run();
  return {
    active: () => active,
    published: () => published,
    stop: async () => {
      stopped = true;
      stopping.abort();
      await done;
      if (client) {
        await waker.unlisten(client);
        await client.query('select pg_advisory_unlock_all()').catch(() => undefined);
        client.release();
      }
      await producer?.disconnect().catch(() => undefined);
    },
  };
}

/** The relay's idempotent producer, once the topic exists. */
async function connectProducer(kafka: Kafka, topic: string, checked: CheckedSends): Promise<Producer> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await ensureTopics(admin, [adChangesTopicSpec(topic)]);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: checked.createPartitioner, // kafkajs' default, noting each message's partition
  });
  try {
    await producer.connect();
  } catch (e) {
    await producer.disconnect().catch(() => undefined);
    throw e;
  }
  return producer;
}

/**
 * Sleeps an idle relay until PostgreSQL notifies it of outbox rows, or `pollMs`. A notification sets
 * a flag that each look clears first (`looking`), so one that arrives during a look is not slept through.
 */
function outboxWaker(pollMs: number, stopping: AbortSignal) {
  let notified = false;
  let napping: AbortController | undefined;
  let listening: pg.PoolClient | undefined;
  const onNotification = (): void => {
    notified = true;
    napping?.abort();
  };
  return {
    /** LISTENs on `client` unless it already does (a new connection after a failure). */
    async listenOn(client: pg.PoolClient): Promise<void> {
      if (listening === client) return;
      client.on('notification', onNotification);
      await client.query(`listen ${NOTIFY_CHANNEL}`);
      listening = client;
    },
    async unlisten(client: pg.PoolClient): Promise<void> {
      client.off('notification', onNotification);
      await client.query(`unlisten ${NOTIFY_CHANNEL}`).catch(() => undefined);
    },
    looking(): void {
      notified = false;
    },
    async idle(): Promise<void> {
      if (notified) return;
      napping = new AbortController();
      await sleepFor(pollMs, AbortSignal.any([stopping, napping.signal]));
      napping = undefined;
    },
  };
}

type AdRows = Array<{ ad_id: string; ad: string | null }>;

/** Sends in requests of at most ~512 KB (a broker refuses a record batch over message.max.bytes, 1 MB). */
async function sendAds(
  checked: CheckedSends,
  producer: Producer,
  topic: string,
  rows: AdRows,
): Promise<void> {
  let chunk: Array<{ key: string; value: string | null }> = [];
  let bytes = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    await checked.send(producer, { topic, acks: -1, messages: chunk });
    chunk = [];
    bytes = 0;
  };
  for (const row of rows) {
    chunk.push({ key: row.ad_id, value: row.ad });
    bytes += row.ad_id.length + (row.ad?.length ?? 0) + 32;
    if (bytes >= 512 * 1024) await flush();
  }
  await flush();
}

/**
 * Publishes up to `batch` single-ad rows, then one chunk of the oldest range row; `count` hears of
 * the ads published as they are. Returns the work done (0: the outbox is empty).
 */
async function relayOnce(
  c: pg.PoolClient,
  {
    send,
    count,
    batch,
  }: { send: (rows: AdRows) => Promise<void>; count: (n: number) => unknown; batch: number },
): Promise<number> {
  const singles = await c.query<{ seq: string; ad_id: string; ad: string | null }>(
    `select o.seq, o.ad_id::text, to_jsonb(a)::text as ad
       from ad_changes_outbox o left join ads a on a.ad_id = o.ad_id
      where o.last_ad_id is null order by o.seq limit $1`,
    [batch],
  );
  if (singles.rows.length > 0) {
    await send(singles.rows);
    await c.query('delete from ad_changes_outbox where seq = any($1::bigint[])', [
      singles.rows.map((row) => row.seq),
    ]);
    count(singles.rows.length);
    if (singles.rows.length === batch) return batch;
  }
  // A range (a bulk load): the ads that exist in its next `batch` ids; gaps are ids never used.
  const range = await c.query<{ seq: string; ad_id: string; last_ad_id: string }>(
    `select seq, ad_id::text, last_ad_id::text from ad_changes_outbox
      where last_ad_id is not null order by seq limit 1`,
  );
  const r = range.rows[0];
  if (!r) return singles.rows.length;
  const to =
    BigInt(r.ad_id) + BigInt(batch) - 1n < BigInt(r.last_ad_id)
      ? BigInt(r.ad_id) + BigInt(batch) - 1n
      : BigInt(r.last_ad_id);
  const ads = await c.query<{ ad_id: string; ad: string }>(
    'select a.ad_id::text, to_jsonb(a)::text as ad from ads a where a.ad_id between $1 and $2 order by a.ad_id',
    [r.ad_id, to.toString()],
  );
  if (ads.rows.length > 0) await send(ads.rows);
  if (to === BigInt(r.last_ad_id)) await c.query('delete from ad_changes_outbox where seq = $1', [r.seq]);
  else await c.query('update ad_changes_outbox set ad_id = $2 where seq = $1', [r.seq, (to + 1n).toString()]);
  count(ads.rows.length);
  return singles.rows.length + Math.max(ads.rows.length, 1);
}

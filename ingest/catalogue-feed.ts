// Feeds a catalogue replica (ingest/catalogue-replica.ts) from the compacted topic of ad changes
// (written by catalogue/relay.ts). Run by ONE process per host: the click primary.
//
// On an empty replica it bootstraps first: it notes the topic's end offsets, THEN copies the ads
// from PostgreSQL (COPY, streamed) and records those offsets; every change published before them is
// in the copy, and reading the topic from them replays any change the copy may have missed (a
// change re-applied is harmless: the topic holds whole rows, in order per ad). With PostgreSQL away
// it bootstraps from the topic alone, which holds every ad (migration 009 published the existing
// ones). Then it follows the topic, applying each fetched batch and its offsets in one LMDB
// transaction. The feed never needs PostgreSQL once bootstrapped, and never exits because Kafka or
// PostgreSQL went away: it retries, and reports where it is in the replica's status.
import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import {
  lagOf,
  reached,
  replicaAdOf,
  type AdChange,
  type AdRow,
  type CatalogueReplica,
  type FeedState,
  type Offsets,
  type ReplicaAd,
  type ReplicaStatus,
} from './catalogue-replica.js';
import { adChangesTopicSpec, ensureTopics } from '../common/kafka.js';
import { sleep } from '../common/wait.js';

export interface CatalogueFeedOptions {
  replica: CatalogueReplica;
  kafka: Kafka;
  topic: string;
  /** For the bootstrap snapshot; undefined or unreachable: from the topic alone. */
  pool?: pg.Pool;
  /** Bootstrap from the topic even when PostgreSQL answers (to measure it; tests). */
  bootstrapFrom?: 'snapshot' | 'topic';
  log?: (message: string) => void;
  now?: () => number;
}

export interface CatalogueFeed {
  /** Resolves once the replica has caught up with the topic (first time in this run). */
  caughtUp: Promise<void>;
  status(): ReplicaStatus;
  stop(): Promise<void>;
}

const STATUS_EVERY_MS = 2000;
const RETRY_MS = 2000;

export function startCatalogueFeed(opts: CatalogueFeedOptions): CatalogueFeed {
  const { replica, kafka, topic } = opts;
  const log = opts.log ?? ((m: string) => console.error(`[catalogue] ${m}`));
  const now = opts.now ?? Date.now;
  let state: FeedState = replica.offsets(topic) ? 'catching_up' : 'bootstrapping';
  let lag: number | undefined;
  let bootstrap: ReplicaStatus['bootstrap'] = replica.status()?.bootstrap;
  let targets: Offsets | undefined;
  let stopped = false;
  let consumer: Consumer | undefined;
  let admin: Admin | undefined;
  let markCaughtUp!: () => void;
  const caughtUp = new Promise<void>((resolve) => (markCaughtUp = resolve));

  const status = (): ReplicaStatus => ({ state, at: now(), lag, ...(bootstrap && { bootstrap }) });
  // After stop() the replica may be closed: nothing may touch it any more.
  const writeStatus = (): void => {
    if (!stopped) void replica.setStatus(status()).catch(() => undefined);
  };
  const checkCaughtUp = (): void => {
    if (!targets || stopped) return;
    const applied = replica.offsets(topic);
    lag = lagOf(applied, targets);
    if (state === 'caught_up' || !reached(applied, targets)) return;
    state = 'caught_up';
    writeStatus();
    markCaughtUp();
    log(`replica caught up with ${topic} (${replica.count} ads)`);
  };

  const endOffsets = async (): Promise<Offsets> => {
    const out: Offsets = {};
    for (const p of await admin!.fetchTopicOffsets(topic)) out[p.partition] = p.high;
    return out;
  };

  const run = async (): Promise<void> => {
    for (let attempt = 0; !stopped; attempt++) {
      try {
        admin ??= kafka.admin();
        await admin.connect();
        await ensureTopics(admin, [adChangesTopicSpec(topic)]);
        if (stopped) return;
        if (!replica.offsets(topic)) await bootstrapReplica();
        if (stopped) return;
        targets = await endOffsets();
        if (stopped) return;
        await follow();
        checkCaughtUp();
        return;
      } catch (e) {
        if (stopped) return;
        // Kafka away: a replica that has a catalogue keeps serving it (stale, still ready).
        if (state === 'catching_up' && replica.offsets(topic)) state = 'stale';
        writeStatus();
        if (attempt % 15 === 0)
          log(`feed not running (${(e as Error).message}); retrying every ${RETRY_MS} ms`);
        await consumer?.disconnect().catch(() => undefined);
        consumer = undefined;
        await sleep(RETRY_MS);
      }
    }
  };

  const bootstrapReplica = async (): Promise<void> => {
    state = 'bootstrapping';
    writeStatus();
    await replica.clear();
    const started = now();
    const ends = await endOffsets(); // BEFORE the snapshot: see the header
    let source: 'snapshot' | 'topic' = 'topic';
    let ads = 0;
    if (opts.pool && opts.bootstrapFrom !== 'topic') {
      try {
        ads = await snapshot(opts.pool, replica);
        source = 'snapshot';
      } catch (e) {
        log(`snapshot from PostgreSQL failed (${(e as Error).message}); bootstrapping from ${topic} alone`);
        await replica.clear();
      }
    }
    if (source === 'snapshot') await replica.setOffsets(topic, ends);
    else {
      const starts: Offsets = {};
      for (const p of await admin!.fetchTopicOffsets(topic)) starts[p.partition] = p.low;
      await replica.setOffsets(topic, starts);
    }
    bootstrap = { source, ms: now() - started, ads };
    state = 'catching_up';
    writeStatus();
    if (source === 'snapshot')
      log(`bootstrapped ${ads} ads from a PostgreSQL snapshot in ${bootstrap.ms} ms`);
  };

  const follow = async (): Promise<void> => {
    const c = kafka.consumer({
      groupId: `adclick-catalogue-replica-${randomUUID()}`, // offsets live in the replica, never committed
      maxBytes: 16 * 1024 * 1024,
      maxWaitTimeInMs: 100,
    });
    consumer = c;
    let crashed: ((e: Error) => void) | undefined;
    const failed = new Promise<never>((_, reject) => (crashed = reject));
    c.on(c.events.CRASH, (e) => {
      if (!e.payload.restart) crashed?.(e.payload.error);
    });
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
        if (stopped) return;
        const changes: AdChange[] = [];
        for (const m of batch.messages) {
          const adId = m.key?.toString();
          if (!adId) continue;
          changes.push({ adId, ad: m.value ? replicaAdOf(JSON.parse(m.value.toString()) as AdRow) : null });
        }
        const last = batch.lastOffset();
        if (stopped) return;
        await replica.apply(topic, changes, { [batch.partition]: (BigInt(last) + 1n).toString() });
        resolveOffset(last);
        await heartbeat();
        checkCaughtUp();
      },
    });
    for (const [p, offset] of Object.entries(replica.offsets(topic) ?? {}))
      c.seek({ topic, partition: Number(p), offset });
    // Every few seconds: the status for the readers, and the lag against the topic's ends. The
    // status is written whatever Kafka does: its time says that this feed is alive, and a broker that
    // hangs (no answer, no error, for as long as the client waits) must not make the replica look
    // abandoned (`feed_silent`) and take every click process out of the load balancer. One
    // end-offsets request at a time: a hung broker must not pile them up.
    let asking = false;
    const timer = setInterval(() => {
      writeStatus();
      if (asking) return;
      asking = true;
      endOffsets()
        .then(
          (ends) => {
            if (stopped) return;
            targets = state === 'caught_up' ? ends : targets;
            lag = lagOf(replica.offsets(topic), ends);
            checkCaughtUp();
            writeStatus();
          },
          () => undefined,
        )
        .finally(() => (asking = false));
    }, STATUS_EVERY_MS);
    timer.unref();
    stopTimer = () => clearInterval(timer);
    checkCaughtUp();
    writeStatus();
    // A consumer that crashed for good is rebuilt from the offsets in the replica.
    failed.catch((e: Error) => {
      stopTimer();
      if (stopped) return;
      log(`consumer stopped (${e.message}); resuming from the replica's offsets`);
      void c.disconnect().catch(() => undefined);
      consumer = undefined;
      setTimeout(() => void run(), RETRY_MS);
    });
  };
  let stopTimer = (): void => undefined;

  writeStatus();
  void run();
  return {
    caughtUp,
    status,
    stop: async () => {
      stopped = true;
      stopTimer();
      await consumer?.disconnect().catch(() => undefined);
      await admin?.disconnect().catch(() => undefined);
    },
  };
}

/** Copies every ad from PostgreSQL into the replica (streamed, in transactions of 20,000). */
async function snapshot(pool: pg.Pool, replica: CatalogueReplica): Promise<number> {
  const client = await pool.connect();
  let count = 0;
  try {
    // One consistent view, and the whole row so columns added later reach the replica too.
    const stream = client.query(copyTo('copy (select a.ad_id, to_jsonb(a) from ads a) to stdout'));
    let rest = '';
    let batch: Array<[string, ReplicaAd]> = [];
    let pending: Promise<unknown> | undefined;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        const row = parseCopyLine(line);
        if (!row) continue;
        batch.push(row);
        count++;
      }
      if (batch.length >= 20_000) {
        await pending;
        pending = replica.putMany(batch);
        batch = [];
      }
    }
    const last = parseCopyLine(rest);
    if (last) {
      batch.push(last);
      count++;
    }
    await pending;
    await replica.putMany(batch);
    client.release();
  } catch (e) {
    client.release(e as Error);
    throw e;
  }
  return count;
}

/** One line of `copy (select ad_id, to_jsonb(ads)) to stdout` (text format) as [ad id, ad]. */
export function parseCopyLine(line: string): [string, ReplicaAd] | undefined {
  const tab = line.indexOf('\t');
  if (tab <= 0) return undefined;
  let json = line.slice(tab + 1);
  // Text COPY escapes backslashes (JSON's own escapes); jsonb's text has no raw control characters.
  if (json.includes('\\')) json = json.replace(/\\\\/g, '\\');
  return [line.slice(0, tab), replicaAdOf(JSON.parse(json) as AdRow)];
}

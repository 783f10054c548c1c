// Helpers for the click path's integration tests (test/integration/click-*.test.ts): a Kafka client
// whose network can be cut and restored (Kafka "down" for this client only, without disturbing the
// shared broker), reading back exactly what reached a topic, and a catalogue fixture.
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { Kafka, logLevel, type ISocketFactory } from 'kafkajs';
import type pg from 'pg';
import { decodeClickEvent, saltOf, type ClickEvent } from '../../common/click-event.js';
import { kafkaBrokers } from '../../common/config.js';
import { clicksTopicSpec, ensureTopics } from '../../common/kafka.js';
import { createApiApp, listen, type ApiDeps } from '../../apps/api.js';
import { startClickWorker } from '../../apps/click.js';
import { generateApiKey, hashApiKey } from '../../common/auth.js';
import type { ClickService, ClickServiceOptions } from '../../apps/click-service.js';
import { PostgresSpeedStore } from '../../speed-layer/postgres-speed-store.js';
import { sleep } from '../../common/wait.js';

export interface GatedKafka {
  kafka: Kafka;
  /** Drops every open connection and refuses new ones, as if the broker were unreachable. */
  cut(): void;
  restore(): void;
}

/**
 * A kafkajs client whose sockets go through a gate. Kafka's metadata names the real broker
 * address, so a TCP proxy in front of it would be bypassed after the first request; the socket
 * factory sees every connection instead, whatever address it is for.
 */
export function gatedKafka(clientId: string): GatedKafka {
  let open = true;
  const live = new Set<net.Socket>();
  const socketFactory: ISocketFactory = ({ host, port, onConnect }) => {
    if (!open) {
      const refused = new net.Socket();
      process.nextTick(() =>
        refused.destroy(
          Object.assign(new Error(`connect ECONNREFUSED ${host}:${port} (test gate)`), {
            code: 'ECONNREFUSED',
          }),
        ),
      );
      return refused;
    }
    const socket = net.connect({ host, port }, onConnect);
    socket.setKeepAlive(true, 60_000);
    live.add(socket);
    socket.on('close', () => live.delete(socket));
    return socket;
  };
  const kafka = new Kafka({
    clientId,
    brokers: kafkaBrokers(),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
    socketFactory,
  });
  return {
    kafka,
    cut() {
      open = false;
      for (const s of live) s.destroy(new Error('connection cut by the test gate'));
    },
    restore() {
      open = true;
    },
  };
}

export interface LoggedClick {
  key: string;
  partition: number;
  offset: string;
  event: ClickEvent;
}

/** Creates `topic` and returns a function that reads back every message in it, in offset order. */
export async function clickTopic(kafka: Kafka, topic: string, partitions = 4) {
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, [clicksTopicSpec({ topic, partitions })]);

  /** Waits until the topic holds at least `atLeast` messages (and for `settleMs` more), then reads all. */
  async function readAll(
    atLeast: number,
    opts: { timeoutMs?: number; settleMs?: number } = {},
  ): Promise<LoggedClick[]> {
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    let offsets = await admin.fetchTopicOffsets(topic);
    const total = () => offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
    while (total() < atLeast && Date.now() < deadline) {
      await sleep(200);
      offsets = await admin.fetchTopicOffsets(topic);
    }
    // Anything extra (a duplicate) would arrive now too: wait a little, then take the final count.
    await sleep(opts.settleMs ?? 1000);
    offsets = await admin.fetchTopicOffsets(topic);
    const want = total();
    const out: LoggedClick[] = [];
    if (want === 0) return out;
    const consumer = kafka.consumer({ groupId: `read-${randomUUID()}` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`read ${out.length} of ${want} messages of ${topic}`)),
        30_000,
      );
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            out.push({
              key: message.key!.toString(),
              partition,
              offset: message.offset,
              event: decodeClickEvent(message.value!),
            });
            if (out.length >= want) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
    await consumer.disconnect();
    return out.sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset));
  }

  return {
    readAll,
    async drop() {
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    },
  };
}

export interface CatalogueFixture {
  advertiserId: string;
  apiKey: string;
  ads: Array<{ adId: string; redirectUrl: string }>;
}

/** One advertiser with `n` ads, written straight to PostgreSQL. */
export async function createAdvertiserWithAds(
  pool: pg.Pool,
  n: number,
  tag: string = randomUUID(),
): Promise<CatalogueFixture> {
  const apiKey = generateApiKey();
  const a = await pool.query<{ advertiser_id: string }>(
    'insert into advertisers (name, api_key_hash) values ($1, $2) returning advertiser_id',
    [`test ${tag}`, hashApiKey(apiKey)],
  );
  const advertiserId = a.rows[0]!.advertiser_id;
  const ads: CatalogueFixture['ads'] = [];
  for (let i = 0; i < n; i++) {
    const redirectUrl = `https://advertiser.example/${tag}/${i}?utm=x`;
    const r = await pool.query<{ ad_id: string }>(
      'insert into ads (advertiser_id, redirect_url, name) values ($1, $2, $3) returning ad_id',
      [advertiserId, redirectUrl, `ad ${i}`],
    );
    ads.push({ adId: r.rows[0]!.ad_id, redirectUrl });
  }
  return { advertiserId, apiKey, ads };
}

/** A spool file in a fresh temporary folder, so each test's click service starts with an empty spool. */
/** A valid click event of ad 42 (advertiser 7), now, with a new event id and its salt. */
export function validClickEvent(): ClickEvent {
  const eventId = randomUUID();
  return {
    v: 1,
    eventId,
    adId: '42',
    advertiserId: '7',
    ts: Date.now(),
    status: 'valid',
    salt: saltOf(eventId, 8),
  };
}

export const tempSpoolPath = (name = 'spool-0.log'): string =>
  join(tmpdir(), `adclick-test-${randomUUID()}`, name);

export interface LocalSystem {
  /** The base URL users see: the click process, which hands non-click requests to the API process. */
  url: string;
  click: ClickService;
  close(): Promise<void>;
}

/**
 * The API process's app and a click worker in front of it, wired as apps/click.ts wires them (the
 * proxy to the API), on ephemeral ports: the whole HTTP surface of `npm start` in one test process.
 */
export async function startLocalSystem(opts: {
  topic: string;
  kafka: Kafka;
  pool: pg.Pool;
  spoolPath?: string;
  /** Over the API process's defaults (keys, rate limits, stores). */
  api?: Partial<ApiDeps>;
  /** Over the click worker's defaults. */
  click?: Partial<ClickServiceOptions>;
}): Promise<LocalSystem> {
  const api = await listen(
    createApiApp({ pool: opts.pool, speedStore: new PostgresSpeedStore(opts.pool), ...opts.api }),
    0,
    '127.0.0.1',
  );
  const click = await startClickWorker({
    ...opts.click,
    port: 0,
    topic: opts.topic,
    kafka: opts.kafka,
    pool: opts.pool,
    spoolPath: opts.spoolPath ?? tempSpoolPath(),
    apiUrl: api.url,
  });
  return {
    url: click.url,
    click,
    close: async () => {
      await click.close();
      await new Promise<void>((resolve) => {
        api.server.close(() => resolve());
        api.server.closeAllConnections();
      });
    },
  };
}

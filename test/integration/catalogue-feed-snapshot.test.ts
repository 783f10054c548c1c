// The catalogue feed's bootstrap snapshot (ingest/catalogue-feed.ts) on the real PostgreSQL and
// Kafka, in a private database: a copy that takes longer than the pool's statement deadline is still
// a snapshot (the click process's pool has a 10 s deadline, and 10M ads take about a minute to copy:
// before, every fresh click host of a large catalogue fell back to the topic, and to whatever part of
// the catalogue the relay had published so far), while a copy that receives nothing for the stall
// time is given up and the replica is built from the topic. A held lock on `ads` makes the copy wait
// as long as the test needs, without a catalogue of millions.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, migrate } from '../../common/db.js';
import { adChangesTopicSpec, createKafka, ensureTopics } from '../../common/kafka.js';
import { startCatalogueFeed } from '../../ingest/catalogue-feed.js';
import { CatalogueReplica } from '../../ingest/catalogue-replica.js';
import { databasePool, databaseUrl as dbUrl } from '../support/database.js';

const DB = `adclick_t_${randomUUID().slice(0, 8)}`;
const ADS = 500;
/** The deadline of the pool the feed is given, far shorter than the lock below. */
const STATEMENT_TIMEOUT_MS = 300;
const LOCK_MS = 1500;

describe('catalogue feed: the bootstrap snapshot', () => {
  const topic = `ad-changes-snapshot-test-${randomUUID()}`;
  const kafka = createKafka('catalogue-feed-snapshot-test');
  const dirs: string[] = [];
  let root: pg.Pool;
  let owner: pg.Pool;
  let pool: pg.Pool;
  const adIds: string[] = [];

  beforeAll(async () => {
    root = databasePool('postgres', 1);
    await root.query(`create database ${DB}`);
    owner = databasePool(DB, 2);
    await migrate(owner);
    const { rows } = await owner.query<{ ad_id: string }>(
      `insert into ads (advertiser_id, redirect_url)
       select 1, 'https://snapshot.example/' || i from generate_series(1, $1::int) i returning ad_id`,
      [ADS],
    );
    adIds.push(...rows.map((r) => r.ad_id));
    // The pool a click process hands the feed, with a statement deadline the copy will outlast.
    pool = createPool(2, { statementTimeoutMs: STATEMENT_TIMEOUT_MS, connectionString: dbUrl(DB) });
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [adChangesTopicSpec(topic)]);
    await admin.disconnect();
  });

  afterAll(async () => {
    await pool?.end();
    await owner?.end();
    await root?.query(`drop database if exists ${DB} with (force)`);
    await root?.end();
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Holds an exclusive lock on `ads` for `ms` once taken; resolves when it is taken. */
  async function lockAds(ms: number): Promise<{ released: Promise<void> }> {
    const client = await owner.connect();
    await client.query('begin');
    await client.query('lock table ads in access exclusive mode');
    const released = new Promise<void>((resolve) => setTimeout(resolve, ms)).then(async () => {
      await client.query('commit');
      client.release();
    });
    return { released };
  }

  /** Bootstraps a fresh replica while `ads` is locked; what it holds and how it was built. */
  async function bootstrap(snapshotStallMs?: number) {
    const dir = join(tmpdir(), `adclick-snapshot-test-${randomUUID()}`);
    dirs.push(dir);
    const replica = CatalogueReplica.open(dir);
    const logged: string[] = [];
    const lock = await lockAds(LOCK_MS);
    const feed = startCatalogueFeed({
      replica,
      kafka,
      topic,
      pool,
      log: (m) => logged.push(m),
      ...(snapshotStallMs !== undefined && { snapshotStallMs }),
    });
    try {
      await feed.caughtUp;
      await lock.released;
      return {
        source: feed.status().bootstrap?.source,
        missing: adIds.filter((id) => replica.get(id) === undefined).length,
        log: logged.join('\n'),
      };
    } finally {
      await feed.stop();
      await replica.close();
    }
  }

  it("a copy that outlasts the pool's statement deadline is still a snapshot: the replica holds every ad", async () => {
    const r = await bootstrap();
    expect(r.log).not.toMatch(/snapshot from PostgreSQL failed/);
    expect(r.source).toBe('snapshot');
    expect(r.missing).toBe(0);
    // The pool's own deadline is back for everything else: a statement that outlasts it is cancelled.
    await expect(pool.query(`select pg_sleep(${(STATEMENT_TIMEOUT_MS * 3) / 1000})`)).rejects.toThrow(
      /statement timeout/,
    );
  });

  it('a copy that receives nothing for the stall time is given up: the replica is built from the topic', async () => {
    const r = await bootstrap(400);
    expect(r.log).toMatch(/snapshot from PostgreSQL failed \(PostgreSQL sent no rows for 400 ms\)/);
    expect(r.source).toBe('topic');
    // The topic of this test holds no ad: the snapshot's were cleared with it.
    expect(r.missing).toBe(ADS);
  });
});

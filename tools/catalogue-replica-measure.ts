// `npx tsx tools/catalogue-replica-measure.ts relay|bootstrap [--from snapshot|topic] [--dir DIR]`:
// the numbers of docs/catalogue-replica.md. `relay` publishes the whole outbox of DATABASE_URL to
// ADCLICK_AD_CHANGES_TOPIC and prints the rate; `bootstrap` builds a replica in an empty DIR as the
// click primary does (snapshot + topic, or the topic alone) and prints the time to catch up, the
// process's peak RSS and the replica's size on disk.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { config } from '../common/config.js';
import { createPool } from '../common/db.js';
import { createKafka } from '../common/kafka.js';
import { startCatalogueFeed } from '../ingest/catalogue-feed.js';
import { startCatalogueRelay } from '../catalogue/relay.js';
import { CatalogueReplica } from '../ingest/catalogue-replica.js';
import { sleep } from '../common/wait.js';

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1]!;
};
const mode = process.argv[2];
const topic = config.ADCLICK_AD_CHANGES_TOPIC;
const pool = createPool(2);
const kafka = createKafka('adclick-catalogue-measure');

if (mode === 'relay') {
  const count = async () =>
    Number((await pool.query<{ n: string }>('select count(*) as n from ad_changes_outbox')).rows[0]!.n);
  const total = await count();
  const started = performance.now();
  const relay = startCatalogueRelay({ pool, kafka, topic, batch: 20_000 });
  while ((await count()) > 0) await sleep(2000);
  const s = (performance.now() - started) / 1000;
  await relay.stop();
  console.log(
    JSON.stringify({
      relayed: relay.published(),
      outboxAtStart: total,
      seconds: s,
      perSecond: Math.round(relay.published() / s),
    }),
  );
} else if (mode === 'bootstrap') {
  const dir = arg('--dir', '/tmp/adclick-replica-measure');
  rmSync(dir, { recursive: true, force: true });
  const replica = CatalogueReplica.open(dir);
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 200);
  const started = performance.now();
  const feed = startCatalogueFeed({
    replica,
    kafka,
    topic,
    pool,
    bootstrapFrom: arg('--from', 'snapshot') as 'snapshot' | 'topic',
    log: (m) => console.error(`[feed] ${m}`),
  });
  await feed.caughtUp;
  const s = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const du = execFileSync('du', ['-sh', dir], { encoding: 'utf8' }).split('\t')[0];
  console.log(
    JSON.stringify({
      from: arg('--from', 'snapshot'),
      ads: replica.count,
      secondsToCatchUp: s,
      peakRssMiB: Math.round(peakRss / 2 ** 20),
      disk: du,
      bootstrap: feed.status().bootstrap,
    }),
  );
  await feed.stop();
  await replica.close();
} else {
  console.error(
    'usage: tools/catalogue-replica-measure.ts relay | bootstrap [--from snapshot|topic] [--dir DIR]',
  );
  process.exitCode = 2;
}
await pool.end();

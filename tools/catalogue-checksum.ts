// `npm run catalogue:checksum [-- --replica DIR]`: compares a click process's catalogue replica
// (default ADCLICK_CATALOGUE_DIR) with the ads in PostgreSQL (DATABASE_URL): the number of ads and a
// checksum over (ad id, advertiser id, redirect URL, state) on each side (ingest/catalogue-checksum.ts).
// On a difference it names the differing ad ids (at most 100), after looking at them again 3 s later
// (a change in flight reaches a live replica within a second, and is not a difference). Exit code 0:
// equal; 1: different; 2: could not compare. The replica may be read while its click process runs.
import type pg from 'pg';
import { config } from '../common/config.js';
import { copyOut, createPool } from '../common/db.js';
import { parseCopyLine } from '../ingest/catalogue-feed.js';
import { adLine, bucketOf, differingIds, Fold } from '../ingest/catalogue-checksum.js';
import { CatalogueReplica, type ReplicaAd } from '../ingest/catalogue-replica.js';
import { sleep } from '../common/wait.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
};

/** Streams every ad of PostgreSQL to `each`. */
async function eachPgAd(pool: pg.Pool, each: (adId: string, ad: ReplicaAd) => void): Promise<void> {
  const client = await pool.connect();
  try {
    const stream = copyOut(client, 'copy (select a.ad_id, to_jsonb(a) from ads a) to stdout');
    let rest = '';
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        const row = parseCopyLine(line);
        if (row) each(row[0], row[1]);
      }
    }
    const last = parseCopyLine(rest);
    if (last) each(last[0], last[1]);
  } finally {
    client.release();
  }
}

async function differing(pool: pg.Pool, replica: CatalogueReplica, buckets: Set<number>): Promise<string[]> {
  const inPg = new Map<string, string>();
  const inReplica = new Map<string, string>();
  await eachPgAd(pool, (id, ad) => {
    if (buckets.has(bucketOf(id))) inPg.set(id, adLine(id, ad));
  });
  for (const [id, ad] of replica.entries()) if (buckets.has(bucketOf(id))) inReplica.set(id, adLine(id, ad));
  return differingIds(inPg, inReplica);
}

async function main(): Promise<number> {
  const dir = arg('--replica') ?? config.ADCLICK_CATALOGUE_DIR;
  const replica = CatalogueReplica.open(dir);
  const pool = createPool(1);
  try {
    const started = performance.now();
    const pgFold = new Fold();
    await eachPgAd(pool, (id, ad) => pgFold.add(id, ad));
    const replicaFold = new Fold();
    for (const [id, ad] of replica.entries()) replicaFold.add(id, ad);
    const buckets = pgFold.differingBuckets(replicaFold);
    console.log(
      `PostgreSQL: ${pgFold.total} ads, checksum ${pgFold.digest()}\n` +
        `replica ${dir}: ${replicaFold.total} ads, checksum ${replicaFold.digest()}`,
    );
    if (buckets.size === 0) {
      console.log(`equal (${((performance.now() - started) / 1000).toFixed(1)} s)`);
      return 0;
    }
    const first = await differing(pool, replica, buckets);
    await sleep(3000);
    const again = new Set(await differing(pool, replica, new Set(first.map(bucketOf))));
    const ids = first.filter((id) => again.has(id));
    if (ids.length === 0) {
      console.log('equal (the differences seen first were changes in flight)');
      return 0;
    }
    console.log(
      `DIFFERENT: ${ids.length} ad(s) differ: ${ids.slice(0, 100).join(' ')}${ids.length > 100 ? ' …' : ''}`,
    );
    return 1;
  } finally {
    await pool.end();
    await replica.close();
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    console.error(`catalogue:checksum failed: ${e.message}`);
    process.exit(2);
  },
);
